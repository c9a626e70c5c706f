"""The uv-model job (Sec. 5, App. B): critical constants per (width, init), first-step loss, saturation, figures.

Everything is computed in closed form by uvmodel; this module turns it into tables, figures and one MLflow run.
"""

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phasediag.physics import critical
from phasediag.plots import uv as uv_plots
from phasediag.physics import uvmodel

X_MIN, X_MAX = -1.0, 4.0  # c = 2^x up to 16: every init diverges by then (c <= 1.5 k and k > 4 diverges)
TAU = 100  # Fig. 10: sharpness measured after 100 steps
TRAJECTORIES = {"widths": (512, 2), "c": (0.5, 2.5)}  # Fig. 8
CONSTANTS = ("c_loss", "c_sharp", "c_max", "k_loss", "k_trace", "k_max", "k_frob")
CENSORED = ("c_loss_censored", "c_sharp_censored", "k_loss_censored", "k_trace_censored", "k_frob_censored")
BENCH_WIDTHS = [2**n for n in range(1, 10)]  # the widths of Fig. 7


def critical_table(widths: list[int], inits: int, seed: int, grid: np.ndarray, steps: int) -> pd.DataFrame:
    """One row per (width, init): lambda0, trace0, the seven critical constants (Fig. 7) and the censored flags."""
    rows = []
    for width in widths:
        state0 = uvmodel.sample(width, inits, seed)
        rows.append(
            pd.DataFrame(
                {
                    "width": width,
                    "init": np.arange(inits),
                    "lambda0": uvmodel.sharpness(state0, width),
                    "trace0": uvmodel.trace(state0, width),
                    **uvmodel.critical_constants(state0, width, grid, steps),
                }
            )[["width", "init", "lambda0", "trace0", *CONSTANTS, *CENSORED]]
        )
    return pd.concat(rows, ignore_index=True)


def first_step_table(widths: list[int], inits: int, seed: int, k: np.ndarray) -> pd.DataFrame:
    """<L1/L0> against k, simulated (mean, std over inits) and from Eq. (16) (Fig. 11 a, b)."""
    rows = []
    for width in widths:
        ratio = uvmodel.first_step_loss_ratio(uvmodel.sample(width, inits, seed), width, k)
        eq16 = uvmodel.mean_first_step_loss_ratio(k, width)
        columns = {"mean_loss_ratio": ratio.mean(0), "std_loss_ratio": ratio.std(0), "eq16": eq16}
        rows.append(pd.DataFrame({"width": width, "k": k, **columns}))
    return pd.concat(rows, ignore_index=True)


def saturation_table(
    widths: list[int], inits: int, seed: int, c: np.ndarray, window: int = critical.SAVGOL_WINDOW,
    variable: str = "c",
) -> pd.DataFrame:  # fmt: skip
    """<lambda_tau / lambda_0> against c with chi, chi' (in `variable`) and c_crit per width (Fig. 10)."""
    rows = []
    x = np.log2(c)
    for width in widths:
        ratio = uvmodel.normalised_sharpness(uvmodel.sample(width, inits, seed), width, c, TAU)
        mean = np.nanmean(ratio, axis=0)
        chi, chi_prime = critical.saturation_derivatives(x, mean, window, variable=variable)
        rows.append(
            pd.DataFrame(
                {
                    "width": width,
                    "c": c,
                    "mean_ratio": mean,
                    "std_ratio": np.nanstd(ratio, axis=0),
                    "chi": chi,
                    "chi_prime": chi_prime,
                    "c_crit": critical.c_crit(x, mean, window, variable=variable),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def trajectory_table(seed: int, steps: int) -> pd.DataFrame:
    """tr(H), weight correlation and loss along GD from init 0, for the widths and c of Fig. 8."""
    rows = []
    for width in TRAJECTORIES["widths"]:
        state0 = uvmodel.sample(width, 1, seed)
        for c in TRAJECTORIES["c"]:
            history = uvmodel.sweep(state0, width, np.array([c]), "c", steps, ("trace", "correlation", "loss"))
            columns = {name: values[0, 0] for name, values in history.items()}
            rows.append(pd.DataFrame({"width": width, "c": c, "t": np.arange(steps + 1), **columns}))
    return pd.concat(rows, ignore_index=True)


def width_means(constants: pd.DataFrame, saturation: pd.DataFrame) -> dict[str, float]:
    """Metrics named like c_loss_mean_w8 (mean over inits), c_sharp_censored_mean_w8 (the fraction censored) and
    c_crit_w8."""
    means = constants.groupby("width")[[*CONSTANTS, *CENSORED]].mean()
    metrics = {f"{name}_mean_w{w}": float(value) for w, row in means.iterrows() for name, value in row.items()}
    c_crit = saturation.groupby("width")["c_crit"].first()
    return metrics | {f"c_crit_w{w}": float(value) for w, value in c_crit.items()}


def run_uv(
    widths: list[int],
    inits: int = 500,
    seed: int = 0,
    c_step: float = 0.1,
    steps: int = 10,
    out: Path = Path("out/uv"),
    experiment: str = "uv",
    log: bool = True,
    c_fit_max: float = uvmodel.C_FIT_MAX,
    window: int = critical.SAVGOL_WINDOW,
    variable: str = "c",
) -> dict[str, Any]:
    """Tables (CSV) and figures (PNG) of Figs. 7, 8, 10, 11 in `out`; with `log`, one MLflow run holding them.
    Fig. 10's derivatives use c <= c_fit_max, a Savitzky-Golay `window` and d/d`variable` (vocabulary.DERIVATIVE_VARIABLES)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    widths = sorted(int(w) for w in widths)
    grid = uvmodel.log2_grid(X_MIN, X_MAX, c_step)
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    tables = {
        "uv_critical": critical_table(widths, inits, seed, grid, steps),
        "uv_first_step": first_step_table(widths, inits, seed, grid),
        "uv_saturation": saturation_table(widths, inits, seed, grid[grid <= c_fit_max * (1 + 1e-12)], window, variable),
        "uv_trajectories": trajectory_table(seed, steps),
    }
    tables["uv_phase_diagram"] = critical.aggregate(tables["uv_critical"], ["width"], list(CONSTANTS))
    seconds["compute"] = time.perf_counter() - start

    start = time.perf_counter()
    files = {name: out / f"{name}.csv" for name in tables}
    for name, table in tables.items():
        table.to_csv(files[name], index=False)
    files |= {
        "fig7": uv_plots.phase_diagrams(tables["uv_phase_diagram"], out / "uv_fig7_phase_diagrams.png"),
        "fig8": uv_plots.trajectories(tables["uv_trajectories"], out / "uv_fig8_trajectories.png"),
        "fig10": uv_plots.saturation(tables["uv_saturation"], out / "uv_fig10_saturation.png", variable),
        "fig11": uv_plots.first_step(tables["uv_first_step"], tables["uv_critical"], out / "uv_fig11_first_step.png"),
    }
    seconds["write"] = time.perf_counter() - start

    means = width_means(tables["uv_critical"], tables["uv_saturation"])
    run_id = None
    if log:
        from phasediag import tracking  # MLflow only when logging

        start = time.perf_counter()
        params = {"widths": ",".join(map(str, widths)), "inits": inits, "seed": seed, "c_step": c_step, "steps": steps,
                  "x_min": X_MIN, "x_max": X_MAX, "tau": TAU, "c_fit_max": c_fit_max, "window": window,
                  "variable": variable}
        run_id = tracking.log_artifact_run(experiment, "uv", params, means, out, run_name="uv model")
        seconds["log"] = time.perf_counter() - start
    return {"run_id": run_id, "out": out, "files": files, "means": means, "seconds": seconds}


def bench_uv() -> dict[str, float]:
    """Seconds for the full Fig. 7 computation (widths 2..512, 500 inits, c step 0.1), best of 3, and its parts."""
    grid = uvmodel.log2_grid(X_MIN, X_MAX, 0.1)

    def best(fn) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    states = {w: uvmodel.sample(w, 500, 0) for w in BENCH_WIDTHS}
    return {
        "uv_sample_s": best(lambda: [uvmodel.sample(w, 500, 0) for w in BENCH_WIDTHS]),
        "uv_constants_s": best(lambda: [uvmodel.critical_constants(states[w], w, grid) for w in BENCH_WIDTHS]),
        "uv_fig7_total_s": best(lambda: critical_table(BENCH_WIDTHS, 500, 0, grid, 10)),
        "uv_grid_points": float(len(grid)),
    }
