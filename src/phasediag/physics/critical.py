"""Critical learning-rate constants (Sec. 2, Defs. 1-4) from trajectories. Pure numpy/pandas/scipy.

Conventions, shared by the grid scan, the bisection search and the uv model:
* a trajectory "increased" when round(ratio_t, 2) > 1 + eps for some t in [1, T1] (the paper rounds to two decimals);
* a diverged run (L_t >= K or not finite) counts as an increase of loss, sharpness and barrier: the catapult
  ran away;
* the grid is scanned upward and stops at the first divergence (the paper's protocol), so c_loss, c_sharp and
  c_barrier are the first "yes" at or below the first divergent c, and c_max is the grid point just below it;
* censoring (`censor`, the one rule for grid, bisection and uv model): a constant whose first "yes" is the
  divergence itself (no increase or barrier seen below it) is c_max, and flagged c_<q>_censored = 1: its phase has
  zero width (App. B.6; the authors' notebook does the same for c_barrier). So c_loss, c_sharp, c_barrier <= c_max;
* a constant not reached inside the range is NaN (c_max too, when nothing diverged).
"""

import math

import numpy as np
import pandas as pd
from scipy.signal import savgol_filter

from phasediag.physics.grid import SAVGOL_WINDOW
from phasediag.vocabulary import DERIVATIVE_VARIABLES

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


CENSORABLE = ("loss", "sharp", "barrier")


def censor(constants: dict, c_divergence) -> dict:
    """Apply the censoring rule to first 'yes' values: where c_q equals the first divergent c, c_q becomes c_max and
    c_q_censored is 1 (else 0). `constants` holds c_max and any of c_loss, c_sharp, c_barrier (floats or arrays
    of one shape); c_divergence is NaN where nothing diverged. Returns a new dict with the flags added."""
    c_div = np.asarray(c_divergence, dtype=float)
    result = dict(constants)
    for q in CENSORABLE:
        name = f"c_{q}"
        if name in constants:
            value = np.asarray(constants[name], dtype=float)
            censored = np.isfinite(c_div) & (value == c_div)
            result[name] = _like(constants[name], np.where(censored, constants["c_max"], value))
            result[f"{name}_censored"] = _like(constants[name], censored.astype(float))
    return result


def _like(template, value: np.ndarray):
    """A float where the input was a Python number (the ledger's constants), else the array."""
    return value if isinstance(template, np.ndarray) else float(value)


def constants_on_grid(c_grid: np.ndarray, answers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The paper's upward scan. answers[q] is bool (..., n_c) for q in QUESTIONS ('barrier' optional).

    Returns c_loss, c_sharp, c_max (and c_barrier) with the leading shape, censored (`censor`), with the flags.
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
    for q in CENSORABLE:
        if q in answers:
            yes = (np.asarray(answers[q], dtype=bool) | div) & scanned
            result[f"c_{q}"] = first_yes(c_grid, yes)
    return censor(result, first_yes(c_grid, div))


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
    x: np.ndarray, order_parameter: np.ndarray, window: int = SAVGOL_WINDOW, polyorder: int = 3, variable: str = "c"
) -> tuple[np.ndarray, np.ndarray]:
    """chi = -d/dc and chi' = -d^2/dc^2 of <lambda_tau / lambda_0> (Def. 4), from a Savitzky-Golay fit on the
    uniform grid x = log2 c; with variable='log2c', -d/dx and -d^2/dx^2 instead.

    d/dc follows from d/dx by the chain rule (c = 2^x, dc/dx = c ln 2), on the same points, without resampling:
    dy/dc = y_x / (c ln 2), d^2y/dc^2 = (y_xx - ln 2 y_x) / (c ln 2)^2.
    """
    if variable not in DERIVATIVE_VARIABLES:
        raise ValueError(f"variable={variable!r} is not allowed: use one of {', '.join(DERIVATIVE_VARIABLES)}")
    x = np.asarray(x, dtype=float)
    y = np.asarray(order_parameter, dtype=float)
    delta = float(np.mean(np.diff(x)))
    window = min(window, len(y) - (1 - len(y) % 2))
    y_x = savgol_filter(y, window, polyorder, deriv=1, delta=delta)
    y_xx = savgol_filter(y, window, polyorder, deriv=2, delta=delta)
    if variable == "log2c":
        return -y_x, -y_xx
    dc_dx = 2.0**x * math.log(2.0)
    return -y_x / dc_dx, -(y_xx - math.log(2.0) * y_x) / dc_dx**2


def c_crit(
    x: np.ndarray, order_parameter: np.ndarray, window: int = SAVGOL_WINDOW, polyorder: int = 3, variable: str = "c"
) -> float:
    """Def. 4: c_crit = argmax_c chi'_tau, on the grid x = log2 c. The last window // 2 points at each end are left
    out of the argmax: there the filter extrapolates, and next to the divergent phase its chi' peaks on noise."""
    _, chi_prime = saturation_derivatives(x, order_parameter, window, polyorder, variable)
    x = np.asarray(x, dtype=float)
    edge = min(window, len(x) - (1 - len(x) % 2)) // 2
    interior = chi_prime[edge : len(chi_prime) - edge] if len(x) > 2 * edge else chi_prime
    return float(2.0 ** x[int(np.nanargmax(interior)) + (edge if len(x) > 2 * edge else 0)])


SAVGOL_WINDOWS = (5, 7, 9, 11)  # the Savitzky-Golay windows c_crit is reported for, beside the chosen one
BOOTSTRAP_REDRAWS = 200
SUPPORT_NEEDED = 0.9  # supported: this fraction of seed redraws put chi''s argmax within a grid step (pure noise: ~0.7)


def c_crit_windows(x: np.ndarray, order_parameter: np.ndarray, polyorder: int = 3, variable: str = "c",
                   windows: tuple[int, ...] = SAVGOL_WINDOWS) -> dict[int, float]:  # fmt: skip
    """c_crit for each Savitzky-Golay window (NaN where the curve is shorter than the window)."""
    x = np.asarray(x, dtype=float)
    return {w: c_crit(x, order_parameter, w, polyorder, variable) if len(x) >= w and w > polyorder else math.nan
            for w in windows}  # fmt: skip


def c_crit_bootstrap(x: np.ndarray, per_seed: np.ndarray, c_crit_value: float, window: int = SAVGOL_WINDOW,
                     polyorder: int = 3, variable: str = "c", n_boot: int = BOOTSTRAP_REDRAWS,
                     seed: int = 0) -> tuple[float, float, float]:  # fmt: skip
    """How well the seeds support c_crit: redraw the seeds (rows of per_seed, one column per x) with replacement,
    take chi''s argmax on each redrawn mean curve, and return (support, low, high): the fraction of redraws whose
    c_crit lies within one grid step of c_crit_value, and the 2.5 / 97.5 % quantiles of the redrawn c_crit.
    With fewer than two seeds there is nothing to redraw: (NaN, NaN, NaN)."""
    x = np.asarray(x, dtype=float)
    per_seed = np.asarray(per_seed, dtype=float)
    if per_seed.ndim != 2 or per_seed.shape[0] < 2 or not math.isfinite(c_crit_value) or len(x) <= polyorder + 1:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    step = float(np.mean(np.diff(x)))
    redrawn = []
    for _ in range(n_boot):
        drawn = per_seed[rng.integers(0, per_seed.shape[0], per_seed.shape[0])]
        counts = np.isfinite(drawn).sum(axis=0)  # a seed's missing point is left out of that point's mean, as in curve()
        if counts.all():
            mean = np.nansum(drawn, axis=0) / counts
            redrawn.append(math.log2(c_crit(x, mean, window, polyorder, variable)))
    if not redrawn:
        return math.nan, math.nan, math.nan
    redrawn = np.array(redrawn)
    support = float(np.mean(np.abs(redrawn - math.log2(c_crit_value)) <= step * (1 + 1e-6)))
    low, high = 2.0 ** np.quantile(redrawn, [0.025, 0.975])
    return support, float(low), float(high)
