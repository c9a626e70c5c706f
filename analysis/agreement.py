"""Bisection against the paper's grid scan, seed by seed: do they find the same constants, at what cost?

    python analysis/agreement.py --seeds 0 1 2 3 4 5 6 7 8 9 -- --arch fcn --depth 4 --width 128 --dataset fashion_mnist
    python analysis/agreement.py --seeds 0 1 2 3 4 5 6 7 8 9 -- --arch uv --depth 2 --width 2 --dataset uv --batch_size 0

Everything after `--` is a `phasediag search` parameter. Writes agreement.csv and prints a summary.
"""

import argparse
import math
import sys
import time

import pandas as pd

from phasediag.search.study import SearchConfig, search
from phasediag.vocabulary import CONSTANTS

parser = argparse.ArgumentParser()
parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
parser.add_argument("--out", default="agreement.csv")
split = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
ours, search_args = sys.argv[1:split], sys.argv[split + 1 :]
args = parser.parse_args(ours)
params = {key.removeprefix("--"): value for key, value in zip(search_args[::2], search_args[1::2])}

rows = []
for seed in args.seeds:
    for mode in ("bisect", "grid"):
        config = SearchConfig.from_strings({**params, "seed": str(seed), "mode": mode, "experiment": f"agreement-{mode}"})
        start = time.perf_counter()
        result = search(config)
        rows.append({"seed": seed, "mode": mode, **result.constants, "runs": result.n_runs, "hvps": result.hvps,
                     "seconds": time.perf_counter() - start, "non_monotone": ",".join(result.non_monotone)})  # fmt: skip
        print(rows[-1], flush=True)

table = pd.DataFrame(rows)
table.to_csv(args.out, index=False)
wide = table.pivot(index="seed", columns="mode")
agree = [
    abs(math.log2(wide[(c, "bisect")][s]) - math.log2(wide[(c, "grid")][s])) <= 0.1 + 1e-9
    if math.isfinite(wide[(c, "bisect")][s]) and math.isfinite(wide[(c, "grid")][s])
    else math.isnan(wide[(c, "bisect")][s]) == math.isnan(wide[(c, "grid")][s])
    for c in CONSTANTS
    for s in wide.index
]
print(f"constants that agree within 0.1 in log2 c: {sum(agree)}/{len(agree)} ({100 * sum(agree) / len(agree):.0f}%)")
print(f"runs: bisect {wide[('runs', 'bisect')].sum()} vs grid {wide[('runs', 'grid')].sum()} "
      f"(ratio {wide[('runs', 'bisect')].sum() / wide[('runs', 'grid')].sum():.3f})")  # fmt: skip
print(f"HVPs: bisect {wide[('hvps', 'bisect')].sum()} vs grid {wide[('hvps', 'grid')].sum()}")
