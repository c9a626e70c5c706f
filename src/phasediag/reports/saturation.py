"""The intermediate saturation regime (Sec. 3, Def. 4, App. I): <lambda_tau / lambda_0> against c, and c_crit.

For each seed (initialisation, batch order and measurement set computed once) and each c = 2^x on a grid, train to
tau + h steps with tau = round(tau_constant / c) (200 for mse, 100 for xent; or a fixed tau, 100 for the uv model,
App. B.2), measure the sharpness ONLY at t in [tau - h, tau + h] (h = 5) and average it, normalise by lambda_0.
A diverged run gives NaN and is left out of the mean. With run.loss_schedule=with_sharpness, L_t is evaluated only
in that window and at the last step (the mini-batch loss checks divergence in between). The mean over seeds is
smoothed with Savitzky-Golay (critical.saturation_derivatives): chi = -d/dc, chi' = -d^2/dc^2 as Def. 4 writes
them (or, with variable=log2c, in x = log2 c), and c_crit is the grid c at the maximum of chi'.
The derivatives use the grid only below the first c where any seed diverged, and up to x_fit_max (by default the
paper's c <= 3.5 for the uv model, no limit otherwise).

One MLflow run (tag phasediag.kind=saturation) holds the params, the metric c_crit and the artifacts
saturation.csv (one row per seed and c), saturation_curve.csv (the averaged curve) and saturation.png (Fig. 5).
No child run per c: the per-(seed, c) results are in saturation.csv.
"""

import dataclasses
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phasediag import progress
from phasediag.reports import output_files
from phasediag.physics import critical
from phasediag.reports.config import SaturationConfig

log = logging.getLogger(__name__)
FILES = ("saturation.csv", "saturation_curve.csv", "saturation.png")


@dataclass
class SaturationResult:
    table: pd.DataFrame  # one row per (seed, c)
    curve: pd.DataFrame  # one row per c
    c_crit: float
    files: dict[str, Path]
    seconds: dict[str, float]
    run_id: str | None = None

    @property
    def n_diverged(self) -> int:
        return int(self.table["diverged"].sum())


def measure(init, config: SaturationConfig, c: float) -> dict[str, Any]:
    """One (seed, c): train to tau + h steps, sharpness only in the window, lambda_tau / lambda_0 (NaN if diverged)."""
    from phasediag.run import runner

    tau = config.tau(c)
    steps = config.window_steps(tau)
    start = time.perf_counter()
    at_c = dataclasses.replace(init, config=dataclasses.replace(init.config, c=c, steps=steps[-1]))
    result = runner.train(at_c, c, sharpness=True, measure_at=lambda t: steps[0] <= t <= steps[-1], barrier=False)
    sharp = result.history[result.curvature].reindex(list(steps)).to_numpy(float)  # adam: lambda_max(P^-1 H)
    measured = int(np.isfinite(sharp).sum())
    lambda_tau = float(np.nanmean(sharp)) if measured and not result.diverged else math.nan
    return {
        "c": c, "tau": tau, "t_first": steps[0], "t_last": steps[-1], "diverged": bool(result.diverged),
        "steps_trained": int(result.history.index.max()), "lambda0": init.lambda0.value, "lambda_tau": lambda_tau,
        "ratio": lambda_tau / init.lambda0.value, "measured": measured, "hvps": result.hvps,
        "seconds": time.perf_counter() - start,
    }  # fmt: skip


def scan(config: SaturationConfig, first_init=None) -> pd.DataFrame:
    """Every seed at every c of the grid: one row per (seed, c) with lambda_tau / lambda_0 ('ratio')."""
    from phasediag.run import runner

    rows = []
    xs = config.x
    with progress.bar(total=len(config.seeds) * len(xs), desc="saturation", unit="run") as bar:
        for i, seed in enumerate(config.seeds):
            start = time.perf_counter()
            init = first_init if (i == 0 and first_init is not None) else runner.initialize(dataclasses.replace(config.run, seed=seed))
            for x in xs:
                rows.append({"seed": seed, "x": float(x), **measure(init, config, float(2.0**x))})
                bar.update()
            mine = pd.DataFrame(rows[-len(xs) :])
            div = mine.loc[mine["diverged"], "c"]
            log.info("seed %d: lambda0=%.6g, %d values of c in %.1f s, hvps=%d, %s", seed, init.lambda0.value, len(mine),
                     time.perf_counter() - start, int(mine["hvps"].sum()),
                     f"diverged at {len(div)} c (first c={div.min():.4g})" if len(div) else "none diverged")  # fmt: skip
    return pd.DataFrame(rows)


def curve(table: pd.DataFrame, config: SaturationConfig) -> tuple[pd.DataFrame, float]:
    """Mean and std over seeds of lambda_tau / lambda_0 per c (diverged runs left out), chi, chi' and c_crit.

    The derivatives (and so c_crit) use the grid points below the first c where any seed diverged and, when given,
    x <= fit_max; chi and chi' are NaN elsewhere. c_crit is NaN when fewer than polyorder + 2 points remain.
    """
    by_x = table.groupby("x", sort=True)
    frame = pd.DataFrame(
        {
            "c": by_x["c"].first(),
            "tau": by_x["tau"].first(),
            "mean": by_x["ratio"].mean(),  # NaN (diverged) left out
            "std": by_x["ratio"].std(ddof=0),
            "n": by_x["ratio"].count(),
            "diverged": by_x["diverged"].sum().astype(int),
        }
    ).reset_index()
    x = frame["x"].to_numpy(float)
    fit = np.isfinite(frame["mean"].to_numpy(float))
    if frame["diverged"].any():
        fit &= x < x[frame["diverged"].to_numpy() > 0].min()
    if config.fit_max is not None:
        fit &= x <= config.fit_max + 1e-9
    # contiguous from the lowest x: a gap (a failed measurement) ends the fit range too
    fit &= np.cumprod(fit).astype(bool)
    frame["in_fit"] = fit
    frame["chi"], frame["chi_prime"] = math.nan, math.nan
    c_crit = math.nan
    if fit.sum() >= config.polyorder + 2:
        derivative = (config.window, config.polyorder, config.variable)
        chi, chi_prime = critical.saturation_derivatives(x[fit], frame["mean"][fit], *derivative)
        frame.loc[fit, "chi"], frame.loc[fit, "chi_prime"] = chi, chi_prime
        c_crit = critical.c_crit(x[fit], frame["mean"][fit], *derivative)
    frame["c_crit"] = c_crit
    frame = frame.assign(**uncertainty(table, x[fit], frame["mean"][fit].to_numpy(float), c_crit, config))
    return frame[[*CURVE_COLUMNS, *UNCERTAINTY_COLUMNS]], c_crit


CURVE_COLUMNS = ["x", "c", "tau", "mean", "std", "n", "diverged", "in_fit", "chi", "chi_prime", "c_crit"]
UNCERTAINTY_COLUMNS = [*(f"c_crit_sg{w}" for w in critical.SAVGOL_WINDOWS), "c_crit_support", "c_crit_low",
                       "c_crit_high", "c_crit_supported"]  # fmt: skip


def uncertainty(table: pd.DataFrame, x_fit: np.ndarray, mean: np.ndarray, c_crit: float,
                config: SaturationConfig) -> dict[str, float]:  # fmt: skip
    """c_crit for each Savitzky-Golay window of critical.SAVGOL_WINDOWS, and the seeds' support for the chosen one
    (critical.c_crit_bootstrap: the fraction of seed redraws whose chi' argmax lies within one grid step, and a 95 %
    interval). c_crit_supported is 1 when the support reaches critical.SUPPORT_NEEDED, 0 below it, NaN when there is
    nothing to redraw (one seed, or no c_crit)."""
    out = {f"c_crit_sg{w}": math.nan for w in critical.SAVGOL_WINDOWS}
    out.update(c_crit_support=math.nan, c_crit_low=math.nan, c_crit_high=math.nan, c_crit_supported=math.nan)
    if not math.isfinite(c_crit):
        return out
    out.update({f"c_crit_sg{w}": v for w, v in critical.c_crit_windows(x_fit, mean, config.polyorder, config.variable).items()})
    per_seed = table[table["x"].isin(x_fit)].pivot_table(index="seed", columns="x", values="ratio", aggfunc="mean", dropna=False)
    per_seed = per_seed.reindex(columns=x_fit).to_numpy(float)
    support, low, high = critical.c_crit_bootstrap(x_fit, per_seed, c_crit, config.window, config.polyorder, config.variable)
    out.update(c_crit_support=support, c_crit_low=low, c_crit_high=high)
    if math.isfinite(support):
        out["c_crit_supported"] = float(support >= critical.SUPPORT_NEEDED)
    return out


def write(table: pd.DataFrame, frame: pd.DataFrame, c_crit: float, config: SaturationConfig) -> dict[str, Path]:
    from phasediag.plots import saturation as saturation_plots

    files = output_files(config.out, FILES)
    table.to_csv(files["saturation.csv"], index=False)
    frame.to_csv(files["saturation_curve.csv"], index=False)
    r = config.run
    tau = f"tau = {config.tau_fixed}" if config.tau_fixed is not None else f"c tau = {config.tau_const:g}"
    title = (f"{r.arch} d={r.depth} w={r.width} {r.dataset} {r.loss}, {tau}, {len(config.seeds)} seeds: "
             f"$c_{{crit}}$ = {c_crit:.3g}")  # fmt: skip
    saturation_plots.saturation(frame, c_crit, files["saturation.png"], title=title, table=table,
                                variable=config.variable)
    return files


def run_saturation(config: SaturationConfig) -> SaturationResult:
    """The scan, the curve, the files in config.out and (with config.log) one MLflow run holding them."""
    from phasediag.run import runner

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    # The first seed's data and lambda_0 before any run exists: missing data fails with no run left behind.
    first = runner.initialize(dataclasses.replace(config.run, seed=config.seeds[0]))
    seconds["init_first"] = time.perf_counter() - start

    def compute(run_id: str | None = None) -> SaturationResult:
        begin = time.perf_counter()
        table = scan(config, first)
        seconds["scan"] = time.perf_counter() - begin
        frame, c_crit = curve(table, config)
        begin = time.perf_counter()
        files = write(table, frame, c_crit, config)
        seconds["write"] = time.perf_counter() - begin
        return SaturationResult(table, frame, c_crit, files, seconds, run_id)

    if not config.log:
        return compute()
    from phasediag import tracking

    r = config.run
    name = f"saturation {r.arch} d={r.depth} w={r.width} {r.loss}"
    with tracking.run(r.experiment, "saturation", config.params(), run_name=name) as run_id:
        result = compute(run_id)
        begin = time.perf_counter()
        spread = result.curve[UNCERTAINTY_COLUMNS].iloc[0].to_dict() if len(result.curve) else {}
        metrics = {"c_crit": result.c_crit, **spread, "runs": float(len(result.table)), "diverged_runs": float(result.n_diverged),
                   "fit_points": float(result.curve["in_fit"].sum()), "hvps": float(result.table["hvps"].sum()),
                   "scan_seconds": seconds["scan"]}  # fmt: skip
        tracking.log_metrics(run_id, {k: v for k, v in metrics.items() if math.isfinite(v)})
        with tempfile.TemporaryDirectory() as folder:  # only this scan's files, whatever else lies in `out`
            for path in result.files.values():
                shutil.copy(path, folder)
            tracking.log_artifacts(run_id, folder)
        seconds["log"] = time.perf_counter() - begin
    return result
