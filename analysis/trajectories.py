"""Loss and sharpness against step (2/eta dashed) and the interpolated loss of one search (Figs. 1, 2).

    python analysis/trajectories.py --experiment demo                       # lists the searches
    python analysis/trajectories.py --experiment demo --search STUDY_OR_RUN_ID --c 1.87 2.83 4 5.66
"""

import argparse

from phasediag.reports import diagram
from phasediag import tracking

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--experiment", default="demo")
parser.add_argument("--search", default=None, help="a study name or parent run id; none: list the searches")
parser.add_argument("--c", type=float, nargs="*", default=None, help="trained c values (default: up to 12 of them)")
parser.add_argument("--out", default=None)
parser.add_argument("--log", action="store_true", help="also log the files as an analysis run")
args = parser.parse_args()

if args.search is None:
    searches = tracking.searches(args.experiment, status="FINISHED")
    print(searches[["study", "run_id", "depth", "width", "seed", "c_loss", "c_sharp", "c_max", "n_runs"]].to_string())
else:
    parent, table, curves = diagram.trajectory_table(args.experiment, args.search, args.c)
    print(table.groupby("c")[["loss_ratio", "sharpness_ratio"]].max().rename(columns=lambda n: f"max {n}"))
    result = diagram.trajectories(args.experiment, args.search, args.c, args.out, log=args.log)
    print("\n".join(str(p) for p in result.files))
