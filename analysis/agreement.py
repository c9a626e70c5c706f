"""The default search against the paper's grid scan, seed by seed: do they find the same constants, at what cost?

    python analysis/agreement.py --setting clean --seeds 0..9 --out agreement -- --depth 4 --width 128
    python analysis/agreement.py --summary agreement                         # the table, from the saved scans
    python analysis/agreement.py --summary agreement --x_start 1 --gallop 1 --close 0   # another search option

Everything after `--` is a `phasediag search` parameter. For each seed the grid scan is trained once, with the
paper's protocol (every point x_min, x_min + 0.1, ... up to the first divergence, sharpness at every step, barrier
at every point), without tracking; its answers give the grid's constants (`critical.constants_on_grid`) and the
search is replayed on them (`ledger.replay`: runs are deterministic, so it trains exactly the points and finds
exactly the constants that `phasediag search` with the same initialisation does). Each scan is saved as
<out>/<setting>-s<seed>.json, so other search settings are compared without training again.

The summary gives, per setting and constant, the seeds on which the search found the grid's value (within 0.1 in
log2 c, or NaN on both); the seeds whose scan has non-monotone answers (a 'yes' below a 'no'); each disagreement
with the answer sequence that caused it and whether the search flagged the seed (`non_monotone`, reported on its parent run) or not (silent); and the runs and wall time of each protocol
(the search's wall: the scan's time of the points it trains, an upper bound since a search measures less there).
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from phasediag.physics.critical import QUESTIONS, constants_on_grid
from phasediag.run import runner
from phasediag.search.config import SearchConfig
from phasediag.search.ledger import measured_trial, replay
from phasediag.search.study import sharpness_until
from phasediag.vocabulary import CONSTANTS


def items(text: str) -> list[str]:
    """'0 1 2', '0,1,2' or '0..9' (inclusive)."""
    out = []
    for token in text.replace(",", " ").split():
        low, dots, high = token.partition("..")
        out += [str(i) for i in range(int(low), int(high) + 1)] if dots else [token]
    return out


def scan(config: SearchConfig) -> dict:
    """The paper's grid scan of one seed, every point up to the first divergence: per point its answers, its margins
    as a search trial records them, and its wall time."""
    init = runner.initialize(config.run)
    points = []
    for k in range(config.n_points):
        start = time.perf_counter()
        # what the answers need, as a search's trial measures it: the sharpness until it increased, the barrier until
        # it shows (the grid's own answers are the same; its figures' full trajectories are not needed here)
        result = runner.train(init, 2.0 ** config.x(k), sharpness=True, barrier=True, full_barrier=False,
                              sharpness_until=sharpness_until(config))  # fmt: skip
        history = result.history
        answers, margins = measured_trial(history["loss_ratio"].to_numpy(), history["sharpness_ratio"].to_numpy(),
                                          history["loss"].to_numpy(), result.barrier, config.sharp_eps)  # fmt: skip
        points.append({"k": k, "answers": answers, "margins": margins, "seconds": time.perf_counter() - start})
        if answers["max"]:
            break
    return {"points": points, "x_min": config.x_min, "resolution": config.resolution, "x_max": config.x_max}


def compare(saved: dict, search: SearchConfig) -> dict:
    """Grid constants, the search's constants, runs and seconds of both, and the answer sequences, of one scan."""
    points = saved["points"]
    trials = {p["k"]: (p["answers"], p["margins"]) for p in points}
    c_grid = 2.0 ** np.array([search.x(p["k"]) for p in points])
    grid = {name: float(v) for name, v in constants_on_grid(c_grid, {q: np.array([p["answers"][q] for p in points]) for q in QUESTIONS}).items()}
    ledger = replay(search.empty_ledger(), trials)
    seconds = {p["k"]: p["seconds"] for p in points}
    return {
        "grid": grid, "search": ledger.constants(search.x), "non_monotone": ledger.non_monotone(),
        "grid_runs": len(points), "search_runs": len(ledger.done), "grid_seconds": sum(seconds.values()),
        "search_seconds": sum(seconds.get(k, 0.0) for k in ledger.done), "trained": sorted(ledger.done),
        "sequences": {q: "".join("y" if p["answers"][q] else "n" if p["answers"][q] is False else "." for p in points) for q in QUESTIONS},
    }  # fmt: skip


def non_monotone(sequence: str) -> bool:
    """A 'yes' below a 'no' in a scan's answers: what the search may not see."""
    return "y" in sequence and "n" in sequence[sequence.index("y") :]


def same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(math.log2(a) - math.log2(b)) <= 0.1 + 1e-9


QUESTION_OF = {"c_loss": "loss", "c_sharp": "sharp", "c_max": "max", "c_barrier": "barrier"}


def summary(folder: str, search: SearchConfig) -> str:
    by_setting: dict[str, list[tuple[int, dict]]] = {}
    for path in sorted(Path(folder).glob("*.json"), key=lambda p: (p.stem.rsplit("-s", 1)[0], int(p.stem.rsplit("-s", 1)[1]))):
        setting, seed = path.stem.rsplit("-s", 1)
        saved = json.loads(path.read_text())
        config = SearchConfig(search.run, x_min=saved["x_min"], x_max=saved["x_max"], resolution=saved["resolution"],
                              x_start=search.x_start, gallop=search.gallop, gallop_near=search.gallop_near, close=search.close)  # fmt: skip
        by_setting.setdefault(setting, []).append((int(seed), compare(saved, config)))
    lines = ["| setting | seeds | " + " | ".join(CONSTANTS) + " | seeds with non-monotone answers | seeds flagged | "
             "runs search / grid | wall s search / grid |", "|---" * (len(CONSTANTS) + 6) + "|"]  # fmt: skip
    notes = []
    for setting, rows in by_setting.items():
        cells = []
        for c in CONSTANTS:
            agree = 0
            for seed, r in rows:
                if same(r["search"][c], r["grid"][c]):
                    agree += 1
                    continue
                q = QUESTION_OF[c]
                flag = f"flagged non_monotone={','.join(r['non_monotone'])}" if r["non_monotone"] else "SILENT"
                notes.append(f"{setting} seed {seed} {c}: grid {r['grid'][c]:.4g}, search {r['search'][c]:.4g} ({flag}); "
                             f"answers from x_min: {r['sequences'][q]}; search trained k = {r['trained']}")  # fmt: skip
            cells.append(f"{agree}/{len(rows)}")
        flagged = sum(bool(r["non_monotone"]) for _, r in rows)
        seen = [(seed, q) for seed, r in rows for q in QUESTIONS if non_monotone(r["sequences"][q])]
        notes += [f"{setting} seed {seed}: non-monotone {q} answers {r['sequences'][q]} "
                  f"({'flagged' if q in r['non_monotone'] else 'not flagged'})" for seed, r in rows for q in QUESTIONS
                  if non_monotone(r["sequences"][q])]  # fmt: skip
        runs = [sum(r[f"{m}_runs"] for _, r in rows) for m in ("search", "grid")]
        walls = [sum(r[f"{m}_seconds"] for _, r in rows) for m in ("search", "grid")]
        lines.append(f"| {setting} | {len(rows)} | {' | '.join(cells)} | {len({seed for seed, _ in seen})} | {flagged} "
                     f"| {runs[0]} / {runs[1]} ({runs[0] / runs[1]:.3f}) | {walls[0]:.0f} / {walls[1]:.0f} |")  # fmt: skip
    return "\n".join(lines + [""] + notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default="default", help="a name for this configuration in the table")
    parser.add_argument("--seeds", default="0..9", help="e.g. 0..9 or '0 1 2'")
    parser.add_argument("--out", default="agreement", help="folder of the saved scans")
    parser.add_argument("--summary", action="store_true", help="only print the table of the scans saved in --out")
    split = sys.argv.index("--") if "--" in sys.argv else len(sys.argv)
    args = parser.parse_args(sys.argv[1:split])
    search_args = sys.argv[split + 1 :]
    params = {key.removeprefix("--"): value for key, value in zip(search_args[::2], search_args[1::2])}
    config = SearchConfig.from_strings(params)
    if not args.summary:
        os.makedirs(args.out, exist_ok=True)
        for seed in items(args.seeds):
            path = Path(args.out) / f"{args.setting}-s{seed}.json"
            if not path.exists():  # a scan is deterministic: kept once trained
                seeded = SearchConfig.from_strings({**params, "seed": seed})
                path.write_text(json.dumps(scan(seeded)))
                print(f"{path}: trained", flush=True)
    print(summary(args.out, config))


if __name__ == "__main__":
    main()
