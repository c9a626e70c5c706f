"""Statistics for the paper's claims, pure numpy: a trend test that uses every seed, binomial intervals, peak widths.

    test = bootstrap_slope(x, y, groups)   # least-squares slope of y on x over all per-seed values, with a bootstrap
    test.direction(+1)                     # True when the 95 % interval lies above zero

The bootstrap resamples seeds within each group (a group = one (d, w) point, one saturation run ...), so the
spread between seeds enters the interval and the design (how many seeds at which x) stays fixed.
"""

import math
from dataclasses import dataclass

import numpy as np

from phasediag.physics import peaks

N_BOOT = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Slope:
    slope: float  # least squares over every value
    low: float  # the bootstrap's percentile interval (NaN when there is no data to test)
    high: float
    n_values: int
    n_groups: int
    dropped_groups: int  # groups with fewer than 2 finite values (no spread to resample)

    @property
    def tested(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def excludes_zero(self, sign: int) -> bool:
        """The interval lies wholly on the side of zero that `sign` (+1 or -1) names."""
        return self.tested and (self.low > 0 if sign > 0 else self.high < 0)


def _slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of y (..., n) on x (n,)."""
    dx = x - x.mean()
    return ((y - y.mean(axis=-1, keepdims=True)) * dx).sum(axis=-1) / (dx**2).sum()


def _inflated(values: np.ndarray) -> np.ndarray:
    """The values spread about their mean by sqrt(n / (n - 1)): redrawing n of them with replacement then has the
    unbiased variance of the mean (plain redraws shrink it by (n - 1) / n, which makes a 3-seed test too eager)."""
    mean = values.mean()
    return mean + (values - mean) * math.sqrt(len(values) / (len(values) - 1))


def _welch_dof(parts: list[tuple[np.ndarray, np.ndarray]], xs: np.ndarray) -> float:
    """Welch-Satterthwaite degrees of freedom of the slope's variance sum_g a_g^2 s_g^2 / n_g (the outermost points
    dominate it, so its spread is often known from a few seeds only)."""
    dx2 = ((xs - xs.mean()) ** 2).sum()
    terms = [((x - xs.mean()).sum() / dx2) ** 2 * y.var(ddof=1) / len(y) for x, y in parts]
    dofs = [len(y) - 1 for _, y in parts]
    denominator = sum(v * v / d for v, d in zip(terms, dofs))
    return sum(terms) ** 2 / denominator if denominator > 0 else float(sum(dofs))


def _t_factor(level: float, dof: float) -> float:
    """Widening of a bootstrap interval for a spread estimated from `dof` degrees of freedom (Student's t over the
    normal quantile): with 3 seeds per point the plain bootstrap passes a trendless input far too often."""
    from scipy.stats import norm, t

    return float(t.ppf((1 + level) / 2, max(dof, 1.0)) / norm.ppf((1 + level) / 2))


def bootstrap_slope(x, y, groups, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Slope:
    """Slope of y against x over every finite value, and its bootstrap interval: each replicate redraws, within each
    group, as many values as the group has, with replacement (from the group's values widened by _inflated), and
    the interval about the slope is widened by _t_factor for the Welch-Satterthwaite degrees of freedom. Groups with fewer than 2 finite values are left out
    (a single seed has no spread); fewer than 2 distinct x left gives an untested Slope (NaN interval)."""
    x, y, groups = np.asarray(x, float), np.asarray(y, float), np.asarray(groups)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y, groups = x[keep], y[keep], groups[keep]
    parts, dropped = [], 0
    for g in dict.fromkeys(groups.tolist()):
        mine = groups == g
        if mine.sum() < 2:
            dropped += 1
            continue
        parts.append((x[mine], y[mine]))
    n = sum(len(p[1]) for p in parts)
    if len(parts) < 2 or len({float(v) for p in parts for v in p[0]}) < 2:
        return Slope(math.nan, math.nan, math.nan, n, len(parts), dropped)
    xs = np.concatenate([p[0] for p in parts])
    ys = np.concatenate([p[1] for p in parts])
    rng = np.random.default_rng(seed)
    pools = [_inflated(p[1]) for p in parts]
    drawn = np.concatenate([pool[rng.integers(0, len(pool), (n_boot, len(pool)))] for pool in pools], axis=1)
    slope = float(_slopes(xs, ys))
    quantiles = np.quantile(_slopes(xs, drawn), [(1 - level) / 2, (1 + level) / 2])
    low, high = slope + _t_factor(level, _welch_dof(parts, xs)) * (quantiles - slope)
    return Slope(slope, float(low), float(high), n, len(parts), dropped)


def bootstrap_mean(values, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of the finite values, percentile bootstrap; NaNs when there is no value."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(values.mean()), float(low), float(high)


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial fraction (95 % by default); (NaN, NaN) for n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def peak_fwhm(x, y) -> float:
    """Full width at half maximum of the highest peak of y(x) (physics.peaks.fwhm): half maximum = max / 2, crossings
    interpolated linearly between grid points. NaN when y has no positive maximum or does not fall to half on both
    sides inside the range (the width is then not measured, rather than cut at the edge)."""
    return peaks.fwhm(np.asarray(x, float), np.asarray(y, float)).fwhm


def bootstrap_curve_slope(x, samples, statistics, n_boot: int = 400, level: float = LEVEL, seed: int = 0) -> Slope:
    """Slope against x of a statistic of each group's mean curve (e.g. the width of the chi' peak of a saturation
    run), with a bootstrap that redraws each group's seeds: samples[i] is a (seeds, grid) array for group i and
    statistics[i] maps its mean curve to a number (NaN: not measurable; such replicates are left out). Groups with
    fewer than 2 seeds, or whose statistic is NaN on the data, are left out."""
    x = np.asarray(x, float)
    samples = [np.asarray(s, float) for s in samples]
    keep = [i for i, s in enumerate(samples) if len(s) >= 2 and np.isfinite(x[i])
            and np.isfinite(statistics[i](np.nanmean(s, axis=0)))]  # fmt: skip
    dropped = len(samples) - len(keep)
    xs = x[keep]
    values = np.array([statistics[i](np.nanmean(samples[i], axis=0)) for i in keep])
    n = sum(len(samples[i]) for i in keep)
    if len(keep) < 2 or len(set(xs.tolist())) < 2:
        return Slope(math.nan, math.nan, math.nan, n, len(keep), dropped)
    rng = np.random.default_rng(seed)
    replicates = np.empty((n_boot, len(keep)))
    for b in range(n_boot):
        for j, i in enumerate(keep):
            drawn = samples[i][rng.integers(0, len(samples[i]), len(samples[i]))]
            replicates[b, j] = statistics[i](np.nanmean(drawn, axis=0))
    replicates = replicates[np.isfinite(replicates).all(axis=1)]
    if len(replicates) < n_boot // 2:  # mostly not measurable on redrawn seeds: no interval
        return Slope(float(_slopes(xs, values)), math.nan, math.nan, n, len(keep), dropped)
    low, high = np.quantile(_slopes(xs, replicates), [(1 - level) / 2, (1 + level) / 2])
    return Slope(float(_slopes(xs, values)), float(low), float(high), n, len(keep), dropped)
