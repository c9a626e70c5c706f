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
from phasediag.physics.critical import QUESTIONS, constants_on_grid, increased, trial_answers, trial_margins
from phasediag.search.ledger import Ledger
from phasediag.search.study import SearchConfig

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--experiment", required=True, help="an experiment holding finished grid searches")
parser.add_argument("--x_start", type=float, default=SearchConfig.x_start)
parser.add_argument("--gallop", type=float, default=SearchConfig.gallop)
parser.add_argument("--gallop_near", type=float, default=SearchConfig.gallop_near)
parser.add_argument("--no-margins", dest="margins", action="store_false", help="bisect on the answers alone")
args = parser.parse_args()


def search_config(search: pd.Series) -> SearchConfig:
    """The recorded search's grid, with the bisection settings asked for."""
    return SearchConfig(RunConfig(), mode="bisect", x_min=search.x_min, x_max=search.x_max, resolution=search.resolution,
                        x_start=args.x_start, gallop=args.gallop, gallop_near=args.gallop_near)  # fmt: skip


def recorded_trials(search: pd.Series, config: SearchConfig) -> dict[int, tuple[dict, dict]]:
    """Grid index -> (answers, margins) as a bisection trial would have recorded them (the sharpness stops being
    measured at its first increase, so its margin is the first ratio above the threshold)."""
    children = tracking.runs(args.experiment, parent_run_id=search.run_id, status="FINISHED")
    history = tracking.histories(children.run_id, ["loss", "loss_ratio", "sharpness_ratio"])
    trials = {}
    for child in children.itertuples():
        series = {m: h.sort_values("step")["value"].to_numpy() for m, h in history[history.run_id == child.run_id].groupby("metric")}
        sharpness = series["sharpness_ratio"]
        rises = np.flatnonzero(increased(sharpness[1:, None], search.eps))
        sharpness = sharpness[: rises[0] + 2] if rises.size else sharpness
        barrier = math.inf if child.barrier >= 1e300 else child.barrier  # runner logs an infinite barrier as 1e300
        answers = trial_answers(series["loss_ratio"], sharpness, series["loss"], barrier, search.eps)
        margins = trial_margins(series["loss_ratio"], sharpness, answers["max"], search.eps) if args.margins else {}
        trials[config.k(child.x)] = (answers, margins)
    return trials


def replay(config: SearchConfig, trials: dict[int, tuple[dict, dict]]) -> Ledger:
    ledger = config.empty_ledger()
    diverged = (dict.fromkeys(QUESTIONS, True), {})
    while not ledger.complete:
        k = ledger.next_point()
        plan = ledger.plan(k)
        answers, margins = trials.get(k, diverged)  # the grid stopped at its first divergence
        answers = {**answers, "sharp": answers["sharp"] if plan.sharpness else None,
                   "barrier": answers["barrier"] if plan.barrier else None}  # fmt: skip
        ledger.record(k, answers, {**margins, "sharp": margins.get("sharp") if plan.sharpness else None})
    return ledger


rows = []
for _, search in tracking.searches(args.experiment, mode="grid", status="FINISHED").iterrows():
    config = search_config(search)
    trials = recorded_trials(search, config)
    ledger = replay(config, trials)
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
