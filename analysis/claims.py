"""The paper's claims checked on an experiment's own data (pass / fail / no data, with the measured numbers).

    python analysis/claims.py --experiment demo

Tolerances are constants of phasediag.reports.claims (BAND, XENT_CRIT_BAND, XENT_LOSS_BAND, INEQUALITY_PASS,
SMALL_C_X): change them there, or here before evaluating.
"""

import argparse

from phasediag.reports import claims

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--experiment", default="demo")
parser.add_argument("--saturation_experiment", default=None, help="where the saturation runs (c_crit) are")
parser.add_argument("--uv_experiment", default=None, help="where the uv job's run is")
args = parser.parse_args()

data = claims.load(args.experiment, args.saturation_experiment, args.uv_experiment)
table = claims.evaluate(data.pop("constants"), data.pop("saturation"), **data)
print(claims.to_markdown(table, args.experiment))
