"""Critical learning-rate constants (Sec. 2, Defs. 1-4) from trajectories. Pure numpy/pandas/scipy.

Conventions, shared by the grid scan, the bisection search and the uv model:
* a trajectory "increased" when round(ratio_t, 2) > 1 + eps for some t in [1, T1] (the paper rounds to two decimals);
* a diverged run (L_t >= K or not finite) counts as an increase of loss, sharpness and barrier: the catapult
  ran away;
* the grid is scanned upward and stops at the first divergence (the paper's protocol), so c_loss, c_sharp and
  c_barrier are the first "yes" at or below the first divergent c, and c_max is the grid point just below it;
* a constant not reached inside the range is NaN (c_max too, when nothing diverged).
"""

import math

import numpy as np
import pandas as pd
from scipy.signal import savgol_filter

from phasediag.physics.grid import SAVGOL_WINDOW

DIVERGENCE_LOSS = 1e5  # K of Def. 1
QUESTIONS = ("loss", "sharp", "max", "barrier")  # one yes/no per trial: increase of L, of lambda, divergence, U > 0


def increased(ratios: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """round(r_t, 2) > 1 + eps for some t, over the last axis; t = 0 must be excluded by the caller. NaN is 'no'."""
    rounded = np.round(np.asarray(ratios, dtype=float), 2)
    with np.errstate(invalid="ignore"):
        return np.any(rounded > 1.0 + eps + 1e-12, axis=-1)


def diverged(losses: np.ndarray, bound: float = DIVERGENCE_LOSS) -> np.ndarray:
    """L_t >= K or not finite for some t, over the last axis."""
    losses = np.asarray(losses, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.any(~np.isfinite(losses) | (losses >= bound), axis=-1)


def first_yes(c_grid: np.ndarray, yes: np.ndarray) -> np.ndarray:
    """Smallest c on the (ascending) grid where yes is true, over the last axis; NaN where never."""
    yes = np.asarray(yes, dtype=bool)
    c_grid = np.asarray(c_grid, dtype=float)
    index = np.argmax(yes, axis=-1)
    return np.where(yes.any(axis=-1), c_grid[index], np.nan)


def constants_on_grid(c_grid: np.ndarray, answers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The paper's upward scan. answers[q] is bool (..., n_c) for q in QUESTIONS ('barrier' optional).

    Returns c_loss, c_sharp, c_max (and c_barrier) with the leading shape.
    """
    c_grid = np.asarray(c_grid, dtype=float)
    div = np.asarray(answers["max"], dtype=bool)
    seen = np.cumsum(div, axis=-1)
    # The scan stops at the first divergence: later points do not exist for it.
    scanned = (seen == 0) | ((seen == 1) & div)
    below = np.concatenate([[np.nan], c_grid[:-1]])
    div_index = np.argmax(div, axis=-1)
    c_max = np.where(div.any(axis=-1), below[div_index], np.nan)
    result = {"c_max": c_max}
    for q in ("loss", "sharp", "barrier"):
        if q in answers:
            yes = (np.asarray(answers[q], dtype=bool) | div) & scanned
            result[f"c_{q}"] = first_yes(c_grid, yes)
    return result


def trial_answers(
    loss_ratio: np.ndarray,
    sharpness_ratio: np.ndarray | None,
    losses: np.ndarray,
    barrier: float | None = None,
    eps: float = 0.0,
) -> dict[str, bool | None]:
    """The four yes/no answers of one run from its histories (index 0 = init). None = not measured."""
    div = bool(diverged(losses))
    answers: dict[str, bool | None] = {"max": div, "loss": div or bool(increased(loss_ratio[1:]))}
    answers["sharp"] = None
    if sharpness_ratio is not None:
        sharp_yes = bool(increased(sharpness_ratio[1:], eps))
        measured = np.isfinite(np.asarray(sharpness_ratio[1:], dtype=float)).any()
        answers["sharp"] = True if (div or sharp_yes) else (False if measured else None)
    answers["barrier"] = None if barrier is None else bool(div or not np.isfinite(barrier) or barrier > 0)
    return answers


def trial_margins(
    loss_ratio: np.ndarray, sharpness_ratio: np.ndarray | None, diverged: bool, eps: float = 0.0
) -> dict[str, float | None]:
    """How far a run's largest loss and sharpness ratios (t >= 1) were from an increase: log(max_t r_t) minus the
    log of the smallest ratio that rounds above 1 + eps; > 0 leans 'yes'. None when not measured, or for a diverged
    run. The search probes where these interpolate to zero; only the answers decide."""

    def margin(ratios: np.ndarray | None, threshold: float) -> float | None:
        values = np.asarray([] if ratios is None or diverged else ratios, dtype=float)[1:]
        values = values[np.isfinite(values) & (values > 0)]
        return math.log(values.max() / threshold) if values.size else None

    return {"loss": margin(loss_ratio, 1.005), "sharp": margin(sharpness_ratio, 1.005 + eps)}


def aggregate(constants: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Mean and 25%/75% quantiles over seeds of each constant column, per group (e.g. by=['depth', 'width'])."""
    grouped = constants.groupby(by)[columns]
    parts = {
        "mean": grouped.mean(),
        "q25": grouped.quantile(0.25),
        "q75": grouped.quantile(0.75),
        "n": grouped.count(),
    }
    table = pd.concat(parts, axis=1)
    table.columns = [f"{col}_{stat}" for stat, col in table.columns]
    return table.reset_index()


def polyfit_curve(x: np.ndarray, y: np.ndarray, degree: int = 2) -> np.poly1d:
    """The paper's smooth curve y = a + b x + c x^2 (x = 1/w or d), ignoring NaN points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    deg = min(degree, max(int(keep.sum()) - 1, 0))
    return np.poly1d(np.polyfit(x[keep], y[keep], deg))


def saturation_derivatives(
    x: np.ndarray, order_parameter: np.ndarray, window: int = SAVGOL_WINDOW, polyorder: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """chi = -d/dx and chi' = -d^2/dx^2 of <lambda_tau / lambda_0> on a uniform grid x = log2 c (Savitzky-Golay)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(order_parameter, dtype=float)
    delta = float(np.mean(np.diff(x)))
    window = min(window, len(y) - (1 - len(y) % 2))
    chi = -savgol_filter(y, window, polyorder, deriv=1, delta=delta)
    chi_prime = -savgol_filter(y, window, polyorder, deriv=2, delta=delta)
    return chi, chi_prime


def c_crit(x: np.ndarray, order_parameter: np.ndarray, window: int = SAVGOL_WINDOW, polyorder: int = 3) -> float:
    """Def. 4: c_crit = argmax_c chi'_tau, with x = log2 c. The last window // 2 points at each end are left out of
    the argmax: there the filter extrapolates, and next to the divergent phase its chi' peaks on noise."""
    _, chi_prime = saturation_derivatives(x, order_parameter, window, polyorder)
    x = np.asarray(x, dtype=float)
    edge = min(window, len(x) - (1 - len(x) % 2)) // 2
    interior = chi_prime[edge : len(chi_prime) - edge] if len(x) > 2 * edge else chi_prime
    return float(2.0 ** x[int(np.nanargmax(interior)) + (edge if len(x) > 2 * edge else 0)])
