"""Phase diagram of one experiment from the tracking store: tables and figures to play with.

    MLFLOW_TRACKING_URI=sqlite:///out/demo/mlruns.db python analysis/phase_diagram.py --experiment demo

Prints the per-(d, w) summary, writes the figures (phase_diagram_*.png, relations_*.png, barrier_*.png) and their
CSV tables in --out (default out/<experiment>) without logging an analysis run (pass --log for one). In a notebook:
`constants = diagram.finished_searches("demo"); summary, fits = diagram.summarize(constants, "width")`.
"""

import argparse

import pandas as pd

from phasediag.reports import diagram
from phasediag.vocabulary import DIAGRAM_AXES

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--experiment", default="demo")
parser.add_argument("--x", default="auto", choices=DIAGRAM_AXES, help="y axis: 1/w (width) or d (depth)")
parser.add_argument("--out", default=None)
parser.add_argument("--log", action="store_true", help="also log the files as an analysis run")
args = parser.parse_args()

constants = diagram.finished_searches(args.experiment)  # one row per (config, seed)
x = diagram.choose_x(constants, args.x)
summary, fits = diagram.summarize(constants, x)  # per (d, w): mean, q25, q75, n; quadratic fits per panel
with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
    print(summary[[*diagram.group_keys(constants, x)[0], *(f"{c}_mean" for c in diagram.CONSTANTS), "c_loss_n"]])
result = diagram.diagram(args.experiment, x, args.out, log=args.log)
print("\n".join(str(p) for p in result.files))
