"""The figures #10 adds: Fig. 1's regime rule, the FWHM of chi' (Fig. 5), and the commands that draw Figs. 1, 5, 9, 12."""

import math

import numpy as np
import pytest

from phasediag.physics import peaks, regimes


# --- Fig. 1: the regime rule on synthetic sharpness curves with known boundaries ---------------------------------


def paper_schedule(epochs: int, steps_per_epoch: int) -> np.ndarray:
    """The steps the paper measures at (App. A.3), as run.callbacks.measure_schedule('paper') picks them."""
    from phasediag.run.callbacks import measure_schedule

    keep = measure_schedule("paper", steps_per_epoch)
    return np.array([t for t in range(1, epochs * steps_per_epoch + 1) if keep(t)], dtype=float)


def four_regimes(t: np.ndarray, eta: float, t_settle: float, t_rise: float, t_edge: float, seed: int = 0) -> np.ndarray:
    """lambda_t: a decaying catapult oscillation until t_settle, flat at 1 until t_rise, a power-law rise reaching
    2/eta at t_edge, then flat at 2/eta; 2 % multiplicative noise throughout."""
    edge = 2.0 / eta
    lam = np.ones_like(t)
    early = t < t_settle
    lam[early] = 1.0 + 3.0 * np.abs(np.cos(t[early])) * (1 - t[early] / t_settle) + 0.5
    rising = (t >= t_rise) & (t < t_edge)
    power = math.log(edge) / math.log(t_edge / t_rise)
    lam[rising] = (t[rising] / t_rise) ** power
    lam[t >= t_edge] = edge
    return lam * (1 + 0.02 * np.random.default_rng(seed).standard_normal(t.shape))


@pytest.mark.parametrize("seed", range(5))
def test_regime_rule_finds_known_boundaries(seed):
    t = paper_schedule(epochs=1000, steps_per_epoch=8)
    eta = 2.0 / 6.0  # 2/eta = 6 lambda at saturation
    lam = four_regimes(t, eta, t_settle=8, t_rise=400, t_edge=4000, seed=seed)
    b = regimes.boundaries(t, lam, eta)
    assert 8 <= b.t_saturation <= 16, b  # the first point of the plateau (schedule: every step up to 10, then 80)
    # the rise starts at 400 and leaves the 10 % band at 400 * 1.1^(1/power) ~ 450 (power = ln 6 / ln 10)
    assert 300 <= b.t_sharpening <= 480, b
    # eta lambda = 1.8 at t = 4000 * 0.9^(1/power) ~ 3500, the 2 % noise may cross it a few points (80 steps) early
    assert 3200 <= b.t_eos <= 4000, b
    labels = regimes.label(t, b)
    assert list(np.unique(labels)) == [0, 1, 2, 3]
    assert labels[t == 4000][0] == 3 and labels[t == 160][0] == 1


def test_regime_rule_leaves_unreached_regimes_nan():
    t = paper_schedule(epochs=200, steps_per_epoch=8)
    flat = np.ones_like(t)  # saturates at once, never sharpens, far below 2/eta
    b = regimes.boundaries(t, flat, eta=0.1)
    assert b.t_saturation == 1 and math.isnan(b.t_sharpening) and math.isnan(b.t_eos)
    still_moving = 2.0 ** np.arange(len(t), dtype=float)  # doubles every measurement: never settles
    assert all(math.isnan(v) for v in regimes.boundaries(t, still_moving, eta=0.1))


def test_regime_rule_reaches_edge_without_sharpening_phase():
    """A large eta: the catapult leaves the sharpness at 2/eta already; no rise, but the edge of stability."""
    t = paper_schedule(epochs=50, steps_per_epoch=8)
    lam = np.where(t < 5, 10.0 / t, 1.0)
    b = regimes.boundaries(t, lam, eta=2.0)
    assert b.t_saturation == 5 and math.isnan(b.t_sharpening) and b.t_eos == 5


def test_regime_rule_ignores_unmeasured_points():
    t = np.arange(0, 30, dtype=float)
    lam = np.where(t % 2 == 0, 1.0, np.nan)
    lam[0] = 99.0  # t = 0 is not part of any regime
    assert regimes.boundaries(t, lam, eta=0.1).t_saturation == 2


# --- Fig. 5: the full width at half maximum of chi' ------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.1, 0.25, 0.4])
def test_fwhm_of_a_gaussian(sigma):
    x = np.linspace(-1, 4, 101)
    y = 3.0 * np.exp(-0.5 * ((x - 1.3) / sigma) ** 2) + 0.01 * np.sin(40 * x)
    peak = peaks.fwhm(x, y)
    assert peak.x == pytest.approx(1.3, abs=0.05)
    assert peak.fwhm == pytest.approx(2 * math.sqrt(2 * math.log(2)) * sigma, rel=0.03)
    assert peak.left < 1.3 < peak.right


def test_fwhm_of_a_triangle_is_exact():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.0, 0.0, 2.0, 0.0, -1.0])  # half maximum 1 at x = 1.5 and 2.5
    assert peaks.fwhm(x, y) == peaks.Peak(2.0, 2.0, 1.5, 2.5, 1.0)


def test_fwhm_unresolved_and_degenerate():
    x = np.linspace(0, 1, 11)
    edge = peaks.fwhm(x, 1.0 - x / 4)  # the maximum is at the first point: no left side
    assert math.isnan(edge.left) and math.isnan(edge.fwhm) and edge.x == 0.0
    assert math.isnan(peaks.fwhm(x, -np.ones_like(x)).fwhm)
    nan_inside = np.exp(-((x - 0.5) ** 2) / 0.01)
    nan_inside[3] = np.nan
    assert math.isfinite(peaks.fwhm(x, nan_inside).fwhm)
    with pytest.raises(ValueError, match="ascending"):
        peaks.fwhm(x[::-1], x)
