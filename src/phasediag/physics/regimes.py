"""The four training regimes of Fig. 1 (Sec. 1), located on a measured sharpness curve by a fixed rule. Pure numpy.

(i) early transient, (ii) intermediate saturation, (iii) progressive sharpening, (iv) edge of stability. On the
measured points (t >= 1, finite sharpness lambda_t) of one run at learning rate eta:

* t_saturation, the end of (i): the first measured t from which the sharpness stays within a factor 1 +/- settle
  of lambda_t over one octave of time, i.e. at every measured s in [t, 2t] and at the next measured point after t
  (the schedule thins out with time, so an octave may hold no point).
* t_sharpening, the end of (ii): the sharpness rises above (1 + rise) times its running minimum since t_saturation;
  the regime starts at the last measured point before that at which the sharpness was still within 1 + settle of
  its running minimum (the last point of the plateau, robust to noise on it).
* t_eos, the end of (iii): the first measured t >= t_sharpening with eta lambda_t >= 2 (1 - eos), the sharpness
  within eos of 2 / eta.

A regime the curve does not reach has its boundary NaN (and so have the later ones, except t_eos, which the
sharpness may reach without a separate sharpening phase: then t_sharpening is NaN and t_eos is the first time after
t_saturation at the threshold).
"""

import math
from typing import NamedTuple

import numpy as np

REGIMES = ("early transient", "intermediate saturation", "progressive sharpening", "edge of stability")
SETTLE = 0.1  # (i) -> (ii): within 10 % of lambda_t for an octave of time
RISE = 0.2  # (ii) -> (iii): 20 % above the running minimum
EOS = 0.1  # (iii) -> (iv): eta lambda_t >= 1.8


class Boundaries(NamedTuple):
    t_saturation: float  # start of (ii)
    t_sharpening: float  # start of (iii)
    t_eos: float  # start of (iv)


def _measured(steps: np.ndarray, sharpness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps, sharpness = np.asarray(steps, dtype=float), np.asarray(sharpness, dtype=float)
    if steps.shape != sharpness.shape:
        raise ValueError(f"steps {steps.shape} and sharpness {sharpness.shape} differ in shape")
    keep = (steps >= 1) & np.isfinite(sharpness) & (sharpness > 0)
    order = np.argsort(steps[keep])
    return steps[keep][order], sharpness[keep][order]


def boundaries(
    steps: np.ndarray, sharpness: np.ndarray, eta: float, settle: float = SETTLE, rise: float = RISE, eos: float = EOS
) -> Boundaries:
    """The starts of regimes (ii), (iii), (iv) on one run's measured sharpness (see the module docstring)."""
    t, lam = _measured(steps, sharpness)
    nan = math.nan
    n = len(t)
    t_sat = nan
    for i in range(n):
        ahead = (t >= t[i]) & (t <= 2 * t[i])
        ahead[min(i + 1, n - 1)] = True
        if i + 1 < n and np.all(np.abs(lam[ahead] / lam[i] - 1.0) <= settle):
            t_sat = t[i]
            break
    if math.isnan(t_sat):
        return Boundaries(nan, nan, nan)
    after = t >= t_sat
    t_after, lam_after = t[after], lam[after]
    running_min = np.minimum.accumulate(lam_after)
    up = np.nonzero(lam_after > (1.0 + rise) * running_min)[0]
    t_sharp = nan
    if up.size:
        on_plateau = np.nonzero(lam_after[: up[0]] <= (1.0 + settle) * running_min[: up[0]])[0]
        t_sharp = float(t_after[on_plateau[-1]])
    start = t_sat if math.isnan(t_sharp) else t_sharp
    at_edge = np.nonzero((t >= start) & (eta * lam >= 2.0 * (1.0 - eos)))[0]
    t_eos = float(t[at_edge[0]]) if at_edge.size else nan
    return Boundaries(float(t_sat), t_sharp, t_eos)


def label(steps: np.ndarray, bounds: Boundaries) -> np.ndarray:
    """The regime index 0-3 of each step (index into REGIMES), -1 for t = 0; a regime never reached is skipped."""
    steps = np.asarray(steps, dtype=float)
    regime = np.full(steps.shape, -1, dtype=int)
    if math.isnan(bounds.t_saturation):
        return np.where(steps >= 1, 0, -1)
    regime[steps >= 1] = 0
    for index, start in enumerate(bounds, start=1):
        if not math.isnan(start):
            regime[steps >= start] = index
    return regime
