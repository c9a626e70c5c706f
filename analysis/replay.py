"""Replay the bisection on recorded grid searches: what would `mode=bisect` with these settings have trained?

    python analysis/replay.py --experiment agreement-grid
    python analysis/replay.py --experiment agreement-grid --x_start 1.5 --gallop_near 1.0 --no-margins

Runs are deterministic for a given (config, seed, c), so a grid search (all of it measured) answers every point a
bisection can ask about, and points above its first divergence diverge. This is how the search's settings were
chosen (README, benchmark C); a real search with the same settings trains the same points.
"""

import argparse
import math

import numpy as np
import pandas as pd

from phasediag import tracking
from phasediag.run.config import RunConfig
from phasediag.physics.critical import QUESTIONS, constants_on_grid
from phasediag.search.ledger import measured_trial, replay
from phasediag.search.study import SearchConfig

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--experiment", required=True, help="an experiment holding finished grid searches")
parser.add_argument("--x_start", type=float, default=SearchConfig.x_start, help="null: x_min")
parser.add_argument("--gallop", type=float, default=SearchConfig.gallop)
parser.add_argument("--gallop_near", type=float, default=SearchConfig.gallop_near)
parser.add_argument("--close", type=float, default=SearchConfig.close)
parser.add_argument("--no-margins", dest="margins", action="store_false", help="bisect on the answers alone")
args = parser.parse_args()


def search_config(search: pd.Series) -> SearchConfig:
    """The recorded search's grid, with the bisection settings asked for."""
    return SearchConfig(RunConfig(), mode="bisect", x_min=search.x_min, x_max=search.x_max, resolution=search.resolution,
                        x_start=args.x_start, gallop=args.gallop, gallop_near=args.gallop_near, close=args.close)  # fmt: skip


def recorded_trials(search: pd.Series, config: SearchConfig) -> dict[int, tuple[dict, dict]]:
    """Grid index -> (answers, margins) as a bisection trial would have recorded them (the sharpness stops being
    measured at its first increase, so its margin is the first ratio above the threshold)."""
    children = tracking.runs(args.experiment, parent_run_id=search.run_id, status="FINISHED")
    history = tracking.histories(children.run_id, ["loss", "loss_ratio", "sharpness_ratio"])
    trials = {}
    for child in children.itertuples():
        series = {m: h.sort_values("step")["value"].to_numpy() for m, h in history[history.run_id == child.run_id].groupby("metric")}
        barrier = math.inf if child.barrier >= 1e300 else child.barrier  # runner logs an infinite barrier as 1e300
        answers, margins = measured_trial(series["loss_ratio"], series["sharpness_ratio"], series["loss"], barrier, search.eps)
        trials[config.k(child.x)] = (answers, margins if args.margins else {})
    return trials


rows = []
for _, search in tracking.searches(args.experiment, mode="grid", status="FINISHED").iterrows():
    config = search_config(search)
    trials = recorded_trials(search, config)
    ledger = replay(config.empty_ledger(), trials)
    ks = sorted(trials)
    c_grid = 2.0 ** np.array([config.x(k) for k in ks])
    grid = constants_on_grid(c_grid, {q: np.array([trials[k][0][q] for k in ks]) for q in QUESTIONS})
    found = ledger.constants(config.x)
    agree = sum(math.isclose(found[c], float(v)) or (math.isnan(found[c]) and math.isnan(v)) for c, v in grid.items())
    rows.append({"seed": search.seed, "study": search.study, "grid_runs": len(trials), "bisect_runs": len(ledger.done), "agree": agree})
    print(rows[-1], sorted(ledger.done), flush=True)

table = pd.DataFrame(rows)
print(f"bisect {table.bisect_runs.sum()} vs grid {table.grid_runs.sum()} runs (ratio "
      f"{table.bisect_runs.sum() / table.grid_runs.sum():.3f}); constants that agree {table.agree.sum()}/{4 * len(table)}")  # fmt: skip
