"""The full width at half maximum of a peak on a sampled curve (the chi' peak of Sec. 3 / App. J). Pure numpy."""

import math
from typing import NamedTuple

import numpy as np


class Peak(NamedTuple):
    x: float  # where the curve is largest
    height: float  # its value there
    left: float  # x where the curve falls to height / 2 on the left (linear interpolation), NaN if it never does
    right: float  # the same on the right
    fwhm: float  # right - left; NaN when either side does not fall to half inside the sampled range


def fwhm(x: np.ndarray, y: np.ndarray) -> Peak:
    """The highest peak of y(x) (x ascending, NaN points ignored) and its full width at half maximum.

    Half maximum is height / 2 with the baseline at zero (chi' oscillates around zero away from c_crit); the
    crossings are interpolated linearly between the samples on each side of the peak. A peak with height <= 0 has no
    width (all NaN but x and height).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x {x.shape} and y {y.shape} must be 1-d arrays of the same length")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size == 0:
        return Peak(math.nan, math.nan, math.nan, math.nan, math.nan)
    if np.any(np.diff(x) <= 0):
        raise ValueError("x must be strictly ascending")
    top = int(np.argmax(y))
    height = float(y[top])
    if not height > 0:
        return Peak(float(x[top]), height, math.nan, math.nan, math.nan)
    half = height / 2.0

    def crossing(indices: np.ndarray) -> float:
        """x where y first drops to half walking from the peak through `indices` (peak excluded)."""
        previous = top
        for i in indices:
            if y[i] <= half:
                return float(np.interp(half, [y[i], y[previous]], [x[i], x[previous]]))
            previous = i
        return math.nan

    left = crossing(np.arange(top - 1, -1, -1))
    right = crossing(np.arange(top + 1, x.size))
    return Peak(float(x[top]), height, left, right, right - left)
