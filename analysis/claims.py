"""The paper's claims checked on an experiment's own data (pass / fail / no data, with the measured numbers).

    python analysis/claims.py --experiment demo

Tolerances are constants of phasediag.claims (BAND, INEQUALITY_PASS): change them there, or here before evaluating.
"""

import argparse

from phasediag.reports import claims
from phasediag.reports import diagram
from phasediag import tracking

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--experiment", default="demo")
parser.add_argument("--saturation_experiment", default=None, help="where the saturation runs (c_crit) are")
args = parser.parse_args()

constants = diagram.finished_searches(args.experiment)
saturation = tracking.runs_of_kind(args.saturation_experiment or args.experiment, "saturation", status="FINISHED")
table = claims.evaluate(constants, saturation)
print(claims.to_markdown(table, args.experiment))
