"""Fig. 1: loss, sharpness (with 2 / eta) and accuracy over long training, and the four regimes on them.

One initialisation (data, theta_0, lambda_0, batch order, measurement set), trained at each c for `epochs` epochs
with the paper's measurement schedule (App. A.3: the sharpness at every step of the first epoch, every epoch from 10
to 100, every 10 epochs beyond); loss and accuracy on the loss set (the training set, or with loss_set=measure the
measurement set) at every step, or with loss_schedule=paper on the sharpness's schedule. The regimes are located by
physics.regimes on each run's measured sharpness. A run that diverges stops there and is drawn up to that step.

Files in `out`: longrun.csv (one row per (c, step), with its regime 0-3, -1 at t = 0), longrun_regimes.csv (one row per c: eta, 2/eta and the
regimes' start steps), longrun.png. With `log`, one MLflow run (tag phasediag.kind=longrun) holds them.
"""

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from phasediag.reports import output_files
from phasediag.physics import regimes
from phasediag.reports.config import LongrunConfig

FILES = ("longrun.csv", "longrun_regimes.csv", "longrun.png")
COLUMNS = ("loss", "accuracy", "sharpness", "eta_sharpness", "batch_loss")


@dataclass
class LongrunResult:
    table: pd.DataFrame  # one row per (c, step)
    regimes: pd.DataFrame  # one row per c
    files: dict[str, Path]
    seconds: dict[str, float]
    run_id: str | None = None


def train_all(config: LongrunConfig, progress: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every c from the same initialisation: the histories and, per c, the regimes' boundaries."""
    from phasediag.run import runner

    init = runner.initialize(dataclasses.replace(config.run, schedule="paper"))
    steps_per_epoch = math.ceil(len(init.data.inputs) / init.data.batch_size)
    steps = config.epochs * steps_per_epoch
    init = dataclasses.replace(init, config=dataclasses.replace(init.config, steps=steps, schedule="paper"))
    histories, rows = [], []
    for c in sorted(config.cs):
        start = time.perf_counter()
        result = runner.train(init, c, barrier=False)
        history = result.history.reindex(columns=list(COLUMNS)).rename_axis("step").reset_index()
        history.insert(0, "c", c)
        history["epoch"] = history["step"] / steps_per_epoch
        bounds = regimes.boundaries(history["step"], history["sharpness"], result.eta)
        history["regime"] = regimes.label(history["step"], bounds)
        histories.append(history)
        rows.append({"c": c, "eta": result.eta, "two_over_eta": 2.0 / result.eta, "lambda0": init.lambda0.value,
                     "steps_per_epoch": steps_per_epoch, "steps": int(history["step"].max()),
                     "diverged": bool(result.diverged), **bounds._asdict(), "hvps": result.hvps,
                     "seconds": time.perf_counter() - start})  # fmt: skip
        if progress:
            found = ", ".join(f"{k}={v:g}" for k, v in bounds._asdict().items())
            progress(f"c={c:g}: {rows[-1]['steps']} steps in {rows[-1]['seconds']:.1f} s"
                     + (" (diverged)" if result.diverged else "") + f"; regimes start at {found}")  # fmt: skip
    return pd.concat(histories, ignore_index=True), pd.DataFrame(rows)


def write(table: pd.DataFrame, regime_table: pd.DataFrame, config: LongrunConfig) -> dict[str, Path]:
    from phasediag.plots import longrun as longrun_plots

    files = output_files(config.out, FILES)
    table.to_csv(files["longrun.csv"], index=False)
    regime_table.to_csv(files["longrun_regimes.csv"], index=False)
    r = config.run
    batch = "GD" if r.batch_size == 0 else f"B={r.batch_size}"
    subset = f" (first {r.subset})" if r.subset else ""
    title = f"{r.arch} d={r.depth} w={r.width} {r.param.upper()} on {r.dataset}{subset}, {r.loss}, SGD {batch}, seed {r.seed}"
    loss_set = "measurement set" if r.loss_set == "measure" else "training set"
    longrun_plots.longrun(table, regime_table, files["longrun.png"], title=title, loss_set=loss_set)
    return files


def run_longrun(config: LongrunConfig, progress: Callable[[str], None] | None = None) -> LongrunResult:
    """Train, locate the regimes, write the files in config.out and (with `log`) one MLflow run holding them."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    table, regime_table = train_all(config, progress)
    seconds["train"] = time.perf_counter() - start
    start = time.perf_counter()
    files = write(table, regime_table, config)
    seconds["write"] = time.perf_counter() - start
    run_id = None
    if config.log:
        from phasediag import tracking

        metrics = {f"{name}_c{row.c:g}": float(getattr(row, name)) for row in regime_table.itertuples()
                   for name in regimes.Boundaries._fields if math.isfinite(getattr(row, name))}  # fmt: skip
        run_id = tracking.log_artifact_run(config.run.experiment, "longrun", config.params(), metrics, config.out)
    return LongrunResult(table, regime_table, files, seconds, run_id)
