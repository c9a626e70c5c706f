"""The grid of learning-rate constants c = 2^x used by searches, saturation scans and the uv model: x from x_min
in steps of `step` up to x_max, rounded so that e.g. x = 1 gives exactly c = 2. Plain Python (no numpy), so that
configuration code can use it."""

import math

UV_C_FIT_MAX = 3.5  # the paper removes larger c before taking Def. 4's derivatives for the uv model (App. B)
SAVGOL_WINDOW = 7  # grid points (0.6 in log2 c at the paper's 0.1 step): gives the paper's c_crit = 2 on the uv model


def n_points(x_min: float, x_max: float, step: float) -> int:
    return int(math.floor((x_max - x_min) / step + 1e-9)) + 1


def x_at(x_min: float, step: float, k: int) -> float:
    return round(x_min + k * step, 10)


def log2_points(x_min: float, x_max: float, step: float) -> tuple[float, ...]:
    """x = x_min, x_min + step, ..., <= x_max."""
    return tuple(x_at(x_min, step, k) for k in range(n_points(x_min, x_max, step)))
