"""The intermediate saturation regime (Sec. 3, Def. 4, App. I): <lambda_tau / lambda_0> against c, and c_crit.

For each seed (initialisation, batch order and measurement set computed once) and each c = 2^x on a grid, train to
tau + h steps with tau = round(tau_constant / c) (200 for mse, 100 for xent; or a fixed tau, 100 for the uv model,
App. B.2), measure the sharpness ONLY at t in [tau - h, tau + h] (h = 5) and average it, normalise by lambda_0.
A diverged run gives NaN and is left out of the mean. The mean over seeds is smoothed with Savitzky-Golay
(critical.saturation_derivatives): chi = -d/dc, chi' = -d^2/dc^2 as Def. 4 writes them (or, with variable=log2c, in
x = log2 c), and c_crit is the grid c at the maximum of chi'.
The derivatives use the grid only below the first c where any seed diverged, and up to x_fit_max (by default the
paper's c <= 3.5 for the uv model, no limit otherwise).

One MLflow run (tag phasediag.kind=saturation) holds the params, the metric c_crit and the artifacts
saturation.csv (one row per seed and c), saturation_curve.csv (the averaged curve) and saturation.png (Fig. 5).
No child run per c: the per-(seed, c) results are in saturation.csv.
"""

import dataclasses
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phasediag.physics import critical, uvmodel
from phasediag.run.config import ConfigError, RunConfig, coerce

TAU_CONSTANT = {"mse": 200.0, "xent": 100.0}  # c tau ~ 200 (Sec. 3), ~ 100 for cross-entropy (App. F)
# RunConfig fields that mean nothing here: c is the grid, steps follow from tau, the sharpness schedule is the window,
# the seed is a list, no barrier and no checkpoints (there are no per-c runs).
RUN_FIELDS_UNUSED = ("c", "steps", "schedule", "seed", "barrier", "log_checkpoints")
FILES = ("saturation.csv", "saturation_curve.csv", "saturation.png")


def parse_seeds(items: list[str] | tuple | str) -> tuple[int, ...]:
    """'0 1 2', '0,1,2', ['0', '1'] or a range '0..4' (inclusive) -> (0, 1, 2, ...)."""
    if isinstance(items, str):
        items = [items]
    seeds: list[int] = []
    try:
        for item in items:
            for token in str(item).replace(",", " ").split():
                if ".." in token:
                    low, high = (int(part) for part in token.split(".."))
                    seeds.extend(range(low, high + 1))
                else:
                    seeds.append(int(token))
    except ValueError:
        raise ConfigError(f"seeds={' '.join(map(str, items))!r} is not a list of integers (e.g. 0 1 2 or 0..4)") from None
    return tuple(seeds)


@dataclass(frozen=True)
class SaturationConfig:
    run: RunConfig  # the model, data and training set-up; its c, steps, schedule, seed, barrier are unused
    seeds: tuple[int, ...] = (0, 1, 2)
    x_min: float = -1.0
    x_max: float = 4.0
    x_step: float = 0.1
    tau_constant: float | None = None  # tau = round(tau_constant / c); None: 200 for mse, 100 for xent
    tau_fixed: int | None = None  # a fixed tau for every c instead (the paper's uv model: 100)
    tau_halfwidth: int = 5  # sharpness averaged over t in [tau - h, tau + h]
    window: int = critical.SAVGOL_WINDOW  # Savitzky-Golay window (grid points, odd)
    polyorder: int = 3  # Savitzky-Golay polynomial order (>= 2: chi' is a second derivative)
    variable: str = "c"  # Def. 4 differentiates in c; "log2c": in x = log2 c
    x_fit_max: float | None = None  # derivatives only for x <= x_fit_max; None: the paper's c <= 3.5 for the uv model
    # (App. B), no limit otherwise
    out: str = "out/saturation"

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("seeds is empty: give at least one seed, e.g. --seeds 0 1 2")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds={' '.join(map(str, self.seeds))!r} repeats a seed")
        if not all(math.isfinite(v) for v in (self.x_min, self.x_max, self.x_step)):
            raise ConfigError("x_min, x_max and x_step must be finite numbers")
        if not self.x_max > self.x_min:
            raise ConfigError(f"x_max={self.x_max!r} is not allowed: it must be > x_min={self.x_min!r}")
        if not 0 < self.x_step <= self.x_max - self.x_min:
            raise ConfigError(f"x_step={self.x_step!r} is not allowed: it must be in (0, x_max - x_min]")
        if self.tau_constant is not None and not (math.isfinite(self.tau_constant) and self.tau_constant > 0):
            raise ConfigError(f"tau_constant={self.tau_constant!r} is not allowed: it must be a finite number > 0")
        if self.tau_fixed is not None and not self.tau_fixed >= 1:
            raise ConfigError(f"tau_fixed={self.tau_fixed!r} is not allowed: it must be an integer >= 1")
        if not self.tau_halfwidth >= 0:
            raise ConfigError(f"tau_halfwidth={self.tau_halfwidth!r} is not allowed: it must be >= 0")
        if self.window < 3 or self.window % 2 == 0:
            raise ConfigError(f"window={self.window!r} is not allowed: it must be an odd integer >= 3")
        if not 2 <= self.polyorder < self.window:
            raise ConfigError(f"polyorder={self.polyorder!r} is not allowed: it must be >= 2 and < window={self.window}")
        if self.variable not in critical.VARIABLES:
            raise ConfigError(f"variable={self.variable!r} is not allowed: use one of {', '.join(critical.VARIABLES)}")
        if self.x_fit_max is not None and not self.x_fit_max > self.x_min:
            raise ConfigError(f"x_fit_max={self.x_fit_max!r} is not allowed: it must be > x_min={self.x_min!r}")
        fit_points = int(np.sum(self.x <= (self.x_max if self.fit_max is None else self.fit_max) + 1e-9))
        if fit_points < self.window:
            raise ConfigError(f"the grid has {fit_points} points to fit, fewer than window={self.window}: "
                              "widen [x_min, x_max] (or x_fit_max) or lower x_step")  # fmt: skip
        if not self.out:
            raise ConfigError("out='' is not allowed: give a folder")

    @property
    def x(self) -> np.ndarray:
        """x = log2 c: x_min, x_min + x_step, ..., <= x_max (rounded so that x = 1 gives exactly c = 2)."""
        n = int(np.floor((self.x_max - self.x_min) / self.x_step + 1e-9)) + 1
        return np.round(self.x_min + self.x_step * np.arange(n), 10)

    @property
    def fit_max(self) -> float | None:
        """The largest x used by the derivatives: x_fit_max, or for the uv model log2 3.5 (App. B)."""
        if self.x_fit_max is None and self.run.arch == "uv":
            return math.log2(uvmodel.C_FIT_MAX)
        return self.x_fit_max

    @property
    def tau_const(self) -> float:
        return self.tau_constant if self.tau_constant is not None else TAU_CONSTANT[self.run.loss]

    def tau(self, c: float) -> int:
        """The measurement time: tau_fixed, or round(tau_constant / c) (halves up), at least 1."""
        if self.tau_fixed is not None:
            return int(self.tau_fixed)
        return max(1, int(math.floor(self.tau_const / c + 0.5)))

    def window_steps(self, tau: int) -> range:
        """The steps t at which the sharpness is measured and averaged: [tau - h, tau + h], t >= 1."""
        return range(max(1, tau - self.tau_halfwidth), tau + self.tau_halfwidth + 1)

    def params(self) -> dict[str, Any]:
        """The parent run's params: the run set-up (without c, steps, schedule, seed...) and the scan."""
        run = {k: v for k, v in self.run.params().items() if k not in RUN_FIELDS_UNUSED}
        return {**run, "seeds": ",".join(map(str, self.seeds)), "x_min": self.x_min, "x_max": self.x_max,
                "x_step": self.x_step, "tau_constant": self.tau_const, "tau_fixed": self.tau_fixed,
                "tau_halfwidth": self.tau_halfwidth, "window": self.window, "polyorder": self.polyorder,
                "variable": self.variable, "x_fit_max": self.x_fit_max}  # fmt: skip

    @classmethod
    def from_strings(cls, values: dict[str, Any]) -> "SaturationConfig":
        """Split CLI strings into run fields and saturation fields."""
        run_fields = {f.name for f in dataclasses.fields(RunConfig)} - set(RUN_FIELDS_UNUSED)
        rest = {k: v for k, v in values.items() if k not in run_fields}
        own = {f.name for f in dataclasses.fields(cls)} - {"run"}
        unknown = set(rest) - own
        if unknown:
            raise ConfigError(f"unknown parameter {sorted(unknown)[0]!r}: allowed are run parameters without "
                              f"{', '.join(RUN_FIELDS_UNUSED)}, and {', '.join(sorted(own))}")  # fmt: skip
        run = RunConfig.from_strings({k: v for k, v in values.items() if k in run_fields})
        seeds = parse_seeds(rest.pop("seeds")) if "seeds" in rest else cls.seeds
        tau_fixed = rest.pop("tau_fixed", None)
        if isinstance(tau_fixed, str):
            if tau_fixed.strip().lower() in ("", "none"):
                tau_fixed = None
            else:
                try:
                    tau_fixed = int(tau_fixed)
                except ValueError:
                    raise ConfigError(f"tau_fixed={tau_fixed!r} is not an integer (or none)") from None
        return cls(run=run, seeds=seeds, tau_fixed=tau_fixed, **coerce(cls, rest))


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
    sharp = result.history["sharpness"].reindex(list(steps)).to_numpy(float)
    measured = int(np.isfinite(sharp).sum())
    lambda_tau = float(np.nanmean(sharp)) if measured and not result.diverged else math.nan
    return {
        "c": c, "tau": tau, "t_first": steps[0], "t_last": steps[-1], "diverged": bool(result.diverged),
        "steps_trained": int(result.history.index.max()), "lambda0": init.lambda0.value, "lambda_tau": lambda_tau,
        "ratio": lambda_tau / init.lambda0.value, "measured": measured, "hvps": result.hvps,
        "seconds": time.perf_counter() - start,
    }  # fmt: skip


def scan(config: SaturationConfig, first_init=None, progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Every seed at every c of the grid: one row per (seed, c) with lambda_tau / lambda_0 ('ratio')."""
    from phasediag.run import runner

    rows = []
    for i, seed in enumerate(config.seeds):
        start = time.perf_counter()
        init = first_init if (i == 0 and first_init is not None) else runner.initialize(dataclasses.replace(config.run, seed=seed))
        for x in config.x:
            rows.append({"seed": seed, "x": float(x), **measure(init, config, float(2.0**x))})
        if progress:
            mine = pd.DataFrame(rows[-len(config.x) :])
            div = mine.loc[mine["diverged"], "c"]
            progress(f"seed {seed}: lambda0={init.lambda0.value:.6g}, {len(mine)} values of c in "
                     f"{time.perf_counter() - start:.1f} s, hvps={int(mine['hvps'].sum())}, "
                     + (f"diverged at {len(div)} c (first c={div.min():.4g})" if len(div) else "none diverged"))  # fmt: skip
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
    return frame[["x", "c", "tau", "mean", "std", "n", "diverged", "in_fit", "chi", "chi_prime", "c_crit"]], c_crit


def write(table: pd.DataFrame, frame: pd.DataFrame, c_crit: float, config: SaturationConfig) -> dict[str, Path]:
    from phasediag.plots import saturation as saturation_plots

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in FILES}
    table.to_csv(files["saturation.csv"], index=False)
    frame.to_csv(files["saturation_curve.csv"], index=False)
    r = config.run
    tau = f"tau = {config.tau_fixed}" if config.tau_fixed is not None else f"c tau = {config.tau_const:g}"
    title = (f"{r.arch} d={r.depth} w={r.width} {r.dataset} {r.loss}, {tau}, {len(config.seeds)} seeds: "
             f"$c_{{crit}}$ = {c_crit:.3g}")  # fmt: skip
    saturation_plots.saturation(frame, c_crit, files["saturation.png"], title=title, table=table,
                                variable=config.variable)
    return files


def run_saturation(config: SaturationConfig, log: bool = True, progress: Callable[[str], None] | None = None) -> SaturationResult:
    """The scan, the curve, the files in config.out and (with `log`) one MLflow run holding them."""
    from phasediag.run import runner

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    # The first seed's data and lambda_0 before any run exists: missing data fails with no run left behind.
    first = runner.initialize(dataclasses.replace(config.run, seed=config.seeds[0]))
    seconds["init_first"] = time.perf_counter() - start

    def compute(run_id: str | None = None) -> SaturationResult:
        begin = time.perf_counter()
        table = scan(config, first, progress)
        seconds["scan"] = time.perf_counter() - begin
        frame, c_crit = curve(table, config)
        begin = time.perf_counter()
        files = write(table, frame, c_crit, config)
        seconds["write"] = time.perf_counter() - begin
        return SaturationResult(table, frame, c_crit, files, seconds, run_id)

    if not log:
        return compute()
    from phasediag import tracking

    r = config.run
    name = f"saturation {r.arch} d={r.depth} w={r.width} {r.loss}"
    with tracking.run(r.experiment, "saturation", config.params(), run_name=name) as run_id:
        result = compute(run_id)
        begin = time.perf_counter()
        metrics = {"c_crit": result.c_crit, "runs": float(len(result.table)), "diverged_runs": float(result.n_diverged),
                   "fit_points": float(result.curve["in_fit"].sum()), "hvps": float(result.table["hvps"].sum()),
                   "scan_seconds": seconds["scan"]}  # fmt: skip
        tracking.log_metrics(run_id, {k: v for k, v in metrics.items() if math.isfinite(v)})
        with tempfile.TemporaryDirectory() as folder:  # only this scan's files, whatever else lies in `out`
            for path in result.files.values():
                shutil.copy(path, folder)
            tracking.log_artifacts(run_id, folder)
        seconds["log"] = time.perf_counter() - begin
    return result
