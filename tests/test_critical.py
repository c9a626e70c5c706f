"""Critical constants from hand-built trajectories and grids (DESIGN.md section 6)."""

import math

import numpy as np
import pandas as pd
import pytest

from phasediag.physics import critical
from phasediag.vocabulary import CONSTANTS
from phasediag.physics.critical import (
    DIVERGENCE_LOSS,
    aggregate,
    c_crit,
    constants_on_grid,
    diverged,
    increased,
    polyfit_curve,
    saturation_derivatives,
    trial_answers,
    trial_margins,
)

nan, inf = np.nan, np.inf


# ---------------------------------------------------------------- increased / diverged


@pytest.mark.parametrize(
    "ratios, eps, expected",
    [
        ([0.9, 1.0, 1.004], 0.0, False),  # rounds to 1.0
        ([0.9, 1.0049], 0.0, False),
        ([1.006], 0.0, True),  # rounds to 1.01
        ([1.0, 1.01], 0.0, True),
        ([0.5, 0.99, 1.0], 0.0, False),
        ([nan, nan], 0.0, False),  # NaN is "no"
        ([nan, 1.02], 0.0, True),
        ([1.05], 0.05, False),  # needs > 1 + eps after rounding
        ([1.054], 0.05, False),
        ([1.056], 0.05, True),
        ([1.06], 0.05, True),
        ([1.03, 1.04], 0.05, False),
    ],
)
def test_increased(ratios, eps, expected):
    assert bool(increased(np.array(ratios), eps)) is expected


def test_increased_over_last_axis():
    ratios = np.array([[[1.0, 1.004], [0.9, 1.006]], [[1.02, 0.5], [nan, 1.0]]])
    np.testing.assert_array_equal(increased(ratios), [[False, True], [True, False]])


@pytest.mark.parametrize(
    "losses, expected",
    [
        ([2.3, 5.0, 1e4], False),
        ([2.3, 99999.0], False),
        ([2.3, DIVERGENCE_LOSS], True),  # Def. 1: no divergence means L_t < K for all t
        ([2.3, 2e5, 1.0], True),
        ([2.3, inf], True),
        ([2.3, -inf], True),
        ([2.3, nan, 1.0], True),
    ],
)
def test_diverged(losses, expected):
    assert bool(diverged(np.array(losses))) is expected


def test_diverged_over_last_axis():
    losses = np.array([[1.0, 2.0], [1.0, nan], [inf, 1.0]])
    np.testing.assert_array_equal(diverged(losses), [False, True, True])
    assert bool(diverged(np.array([1.0, 20.0]), bound=10.0))


# ---------------------------------------------------------------- trial_answers


def test_trial_answers_quiet_run():
    answers = trial_answers(
        np.array([1.0, 0.9, 1.004]), np.array([1.0, 0.8, 1.003]), np.array([2.3, 2.1, 2.3]), barrier=0.0
    )
    assert answers == {"max": False, "loss": False, "sharp": False, "barrier": False}


def test_trial_answers_increases():
    answers = trial_answers(
        np.array([1.0, 1.006, 0.5]), np.array([1.0, 1.2, 0.4]), np.array([2.3, 2.31, 1.0]), barrier=1e-3
    )
    assert answers == {"max": False, "loss": True, "sharp": True, "barrier": True}


def test_trial_answers_exclude_init():
    answers = trial_answers(np.array([1.5, 0.9]), np.array([1.5, 0.9]), np.array([2.3, 2.0]))
    assert answers["loss"] is False and answers["sharp"] is False


def test_trial_answers_sharpness_eps():
    kwargs = dict(loss_ratio=np.array([1.0, 0.9]), losses=np.array([2.3, 2.0]), eps=0.05)
    assert trial_answers(sharpness_ratio=np.array([1.0, 1.05]), **kwargs)["sharp"] is False
    assert trial_answers(sharpness_ratio=np.array([1.0, 1.06]), **kwargs)["sharp"] is True


@pytest.mark.parametrize("bad", [nan, inf, 2e5])
def test_trial_answers_diverged_counts_as_yes(bad):
    answers = trial_answers(
        np.array([1.0, 0.9, 0.8]), np.array([1.0, 0.9, 0.5]), np.array([2.3, 2.0, bad]), barrier=-1.0
    )
    assert answers == {"max": True, "loss": True, "sharp": True, "barrier": True}
    # even when the sharpness was never measured after init
    answers = trial_answers(np.array([1.0, 0.9]), np.array([1.0, nan]), np.array([2.3, bad]))
    assert answers["sharp"] is True and answers["barrier"] is None


def test_trial_answers_not_measured_is_none():
    answers = trial_answers(np.array([1.0, 0.9]), None, np.array([2.3, 2.0]))
    assert answers["sharp"] is None and answers["barrier"] is None
    assert answers["loss"] is False and answers["max"] is False
    answers = trial_answers(np.array([1.0, 0.9]), np.array([1.0, nan, nan]), np.array([2.3, 2.0]))
    assert answers["sharp"] is None
    # a non-finite barrier (the interpolation blew up) is a barrier
    assert trial_answers(np.array([1.0, 0.9]), None, np.array([2.3, 2.0]), barrier=nan)["barrier"] is True


@pytest.mark.parametrize("largest", [0.5, 0.99, 1.004, 1.0049, 1.0051, 1.006, 1.2, 3.0])
def test_trial_margins_lean_like_the_rounded_answer(largest):
    """The margin is > 0 exactly when the rounded ratio shows an increase (away from float ties at x.xx5)."""
    loss_ratio = np.array([5.0, 0.3, largest, 0.2])  # t = 0 is left out
    margin = trial_margins(loss_ratio, None, diverged=False)["loss"]
    assert margin == pytest.approx(np.log(largest / 1.005))
    assert (margin > 0) == bool(increased(loss_ratio[1:]))


def test_trial_margins_sharpness_threshold_uses_eps_and_skips_unmeasured_steps():
    sharpness_ratio = np.array([1.0, nan, 1.04, nan])
    margins = trial_margins(np.array([1.0, 0.9]), sharpness_ratio, diverged=False, eps=0.05)
    assert margins["sharp"] == pytest.approx(np.log(1.04 / 1.055)) and margins["sharp"] < 0
    assert trial_margins(np.array([1.0, 0.9]), np.array([1.0, nan]), diverged=False)["sharp"] is None


def test_trial_margins_are_none_for_a_diverged_or_unmeasured_run():
    assert trial_margins(np.array([1.0, 1e30, inf]), np.array([1.0, 50.0]), diverged=True) == {"loss": None, "sharp": None}
    assert trial_margins(np.array([1.0, 0.9]), None, diverged=False)["sharp"] is None


# ---------------------------------------------------------------- constants_on_grid

C = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])


def _grid(loss, sharp, div, barrier=None):
    answers = {"loss": np.array(loss, bool), "sharp": np.array(sharp, bool), "max": np.array(div, bool)}
    if barrier is not None:
        answers["barrier"] = np.array(barrier, bool)
    return constants_on_grid(C, answers)


def _assert_constants(result, censored=(), **expected):
    """The constants, and the censored flags: 1 for the names in `censored`, 0 for the others."""
    flags = {f"c_{k}_censored" for k in expected if k != "max"}
    assert set(result) == {f"c_{k}" for k in expected} | flags
    for key, value in expected.items():
        np.testing.assert_array_equal(result[f"c_{key}"], value, err_msg=key)
    for key in expected.keys() - {"max"}:
        np.testing.assert_array_equal(result[f"c_{key}_censored"], float(key in censored), err_msg=f"{key} flag")


def test_grid_ordinary():
    result = _grid(
        loss=[0, 0, 1, 1, 1, 1], sharp=[0, 1, 1, 1, 1, 1], div=[0, 0, 0, 0, 1, 1], barrier=[0, 0, 0, 1, 1, 1]
    )
    _assert_constants(result, loss=3.0, sharp=2.0, max=4.0, barrier=4.0)


def test_grid_barrier_optional():
    result = _grid(loss=[0, 0, 1, 1, 1, 1], sharp=[0, 1, 1, 1, 1, 1], div=[0, 0, 0, 0, 1, 1])
    _assert_constants(result, loss=3.0, sharp=2.0, max=4.0)


def test_grid_stops_at_first_divergence():
    # the only loss increase lies past the first divergent c (3): no catapult phase, both censored to c_max
    result = _grid(loss=[0, 0, 0, 0, 0, 1], sharp=[0, 0, 0, 0, 0, 1], div=[0, 0, 1, 0, 0, 0])
    _assert_constants(result, censored=("loss", "sharp"), loss=2.0, sharp=2.0, max=2.0)
    # a non-monotone divergence: the scan never sees the later one
    result = _grid(loss=[0, 1, 1, 1, 1, 1], sharp=[0, 0, 0, 0, 0, 0], div=[0, 0, 1, 0, 1, 1])
    _assert_constants(result, censored=("sharp",), loss=2.0, sharp=2.0, max=2.0)


def test_grid_non_monotone_indicator_gives_first_yes():
    result = _grid(loss=[0, 1, 0, 1, 1, 1], sharp=[1, 0, 1, 0, 0, 0], div=[0, 0, 0, 0, 0, 1])
    _assert_constants(result, loss=2.0, sharp=1.0, max=5.0)


def test_grid_constants_not_reached():
    result = _grid(loss=[0] * 6, sharp=[0] * 6, div=[0] * 6, barrier=[0, 0, 0, 0, 1, 1])
    _assert_constants(result, loss=nan, sharp=nan, max=nan, barrier=5.0)
    result = _grid(loss=[0, 0, 1, 1, 1, 1], sharp=[0] * 6, div=[0] * 6)
    _assert_constants(result, loss=3.0, sharp=nan, max=nan)


def test_grid_first_point_divergent():
    # diverged at the smallest c: no c_max inside the grid, and every constant censored to it
    result = _grid(loss=[0] * 6, sharp=[0] * 6, div=[1, 1, 1, 1, 1, 1], barrier=[0] * 6)
    _assert_constants(result, censored=("loss", "sharp", "barrier"), loss=nan, sharp=nan, max=nan, barrier=nan)


# ---------------------------------------------------------------- censoring: one rule, three paths


def test_censor_on_floats_replaces_only_the_divergent_first_yes():
    got = critical.censor({"c_loss": 2.5, "c_sharp": 1.5, "c_max": 2.0, "c_barrier": 2.5}, 2.5)
    assert got == {"c_loss": 2.0, "c_sharp": 1.5, "c_max": 2.0, "c_barrier": 2.0, "c_loss_censored": 1.0,
                   "c_sharp_censored": 0.0, "c_barrier_censored": 1.0}  # fmt: skip
    # nothing diverged: nothing censored, NaN stays NaN
    got = critical.censor({"c_loss": 2.5, "c_sharp": nan, "c_max": nan}, nan)
    assert got["c_loss"] == 2.5 and np.isnan(got["c_sharp"]) and got["c_loss_censored"] == got["c_sharp_censored"] == 0.0


def test_diverged_first_init_is_censored_alike_on_grid_and_bisection():
    """An initialisation whose loss and sharpness never rise before its divergence at x = 1.5 (and its barrier only
    there): c_loss = c_sharp = c_barrier = c_max = 2^1.4, all flagged, by the grid scan and by the bisection."""
    from phasediag.search.ledger import Ledger

    x = np.round(np.arange(-1.0, 4.0001, 0.1), 10)
    div = x >= 1.5
    answers = {"loss": div, "sharp": div, "max": div, "barrier": div}
    grid = constants_on_grid(2.0**x, answers)
    ledger = Ledger(len(x), "bisect", start=20)
    while not ledger.complete:
        k = ledger.next_point()
        ledger.record(k, {q: bool(a[k]) for q, a in answers.items()})
    bisection = ledger.constants(lambda k: x[k])
    for constants in (grid, bisection):
        for q in ("loss", "sharp", "barrier"):
            assert float(constants[f"c_{q}"]) == pytest.approx(2**1.4) and constants[f"c_{q}_censored"] == 1.0
        assert float(constants["c_max"]) == pytest.approx(2**1.4)


def test_diverged_first_uv_inits_are_censored_to_c_max():
    """uv model, w = 2: about a quarter of the inits diverge before their sharpness rises (the issue measured 27%
    uncensored c_sharp > c_max at 500 inits). Checked against the raw trajectories of each censored init."""
    from phasediag.physics import uvmodel

    width, grid = 2, uvmodel.log2_grid(-1.0, 4.0, 0.1)
    state0 = uvmodel.sample(width, 200, 0)
    got = uvmodel.critical_constants(state0, width, grid)
    assert np.all(got["c_sharp"] <= got["c_max"]) and np.all(got["c_loss"] <= got["c_max"])
    censored = got["c_sharp_censored"] == 1
    assert 0.15 < censored.mean() < 0.4
    np.testing.assert_array_equal(got["c_sharp"][censored], got["c_max"][censored])
    for i in np.flatnonzero(censored)[:10]:
        one = uvmodel.State(*(v[i : i + 1] for v in state0))
        history = uvmodel.sweep(one, width, grid, "c", 10, ("loss", "sharpness"))
        ratio = history["sharpness"][0, :, 1:] / history["sharpness"][0, :, :1]
        first_div = int(np.argmax(diverged(history["loss"][0])))
        assert grid[first_div - 1] == got["c_max"][i]
        assert not increased(ratio[:first_div]).any()  # no sharpness catapult below the divergence


def test_grid_vectorised_over_seeds():
    loss = np.array([[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1], [0] * 6], bool)
    sharp = np.array([[0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [0] * 6], bool)
    div = np.array([[0, 0, 0, 0, 1, 1], [0, 0, 1, 0, 0, 0], [0] * 6], bool)
    result = constants_on_grid(C, {"loss": loss, "sharp": sharp, "max": div})
    for key in ("c_loss", "c_sharp", "c_max"):
        assert result[key].shape == (3,)
    np.testing.assert_array_equal(result["c_loss"], [3.0, 2.0, nan])  # seed 1 diverged first: censored to c_max
    np.testing.assert_array_equal(result["c_sharp"], [2.0, 2.0, nan])
    np.testing.assert_array_equal(result["c_sharp_censored"], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(result["c_max"], [4.0, 2.0, nan])
    # each row agrees with the one-seed computation, also with two leading axes
    stacked = constants_on_grid(C, {"loss": np.stack([loss, loss]), "sharp": np.stack([sharp, sharp]), "max": np.stack([div, div])})
    assert stacked["c_max"].shape == (2, 3)
    for i in range(3):
        one = constants_on_grid(C, {"loss": loss[i], "sharp": sharp[i], "max": div[i]})
        for key in one:
            np.testing.assert_array_equal(one[key], result[key][i])
            np.testing.assert_array_equal(stacked[key][1, i], result[key][i])


def test_grid_on_log_grid_from_trajectories():
    """From raw histories: x = log2 c on [0, 1] step 0.1, loss ratios rising with c, divergence at c >= 2^0.8."""
    x = np.round(np.arange(0.0, 1.0001, 0.1), 10)
    c = 2.0**x
    loss_ratio = np.ones((len(x), 5))
    loss_ratio[:, 2] = 1.0 + 0.012 * x  # 1.0048 at x = 0.4 (rounds to 1.0), 1.006 at x = 0.5
    losses = np.full((len(x), 5), 2.3)
    losses[x >= 0.75, 3] = nan
    answers = {
        "loss": increased(loss_ratio[:, 1:]),
        "sharp": np.zeros(len(x), bool),
        "max": diverged(losses),
    }
    result = constants_on_grid(c, answers)
    assert result["c_loss"] == pytest.approx(2**0.5)
    assert result["c_max"] == pytest.approx(2**0.7)
    assert result["c_sharp"] == pytest.approx(2**0.7) and result["c_sharp_censored"] == 1  # divergence came first


# ---------------------------------------------------------------- aggregate / polyfit


def test_aggregate_against_pandas_by_hand():
    rng = np.random.default_rng(0)
    rows = []
    for depth in (2, 3):
        for width in (64, 128):
            for seed in range(5):
                rows.append({"depth": depth, "width": width, "seed": seed, "c_loss": rng.uniform(1, 4), "c_max": rng.uniform(4, 16)})
    frame = pd.DataFrame(rows)
    frame.loc[3, "c_max"] = nan  # a constant not reached for one seed
    table = aggregate(frame, ["depth", "width"], ["c_loss", "c_max"])
    assert list(table.columns[:2]) == ["depth", "width"]
    assert len(table) == 4
    assert {f"{col}_{stat}" for col in ("c_loss", "c_max") for stat in ("mean", "q25", "q75", "n")} <= set(table.columns)
    for _, row in table.iterrows():
        group = frame[(frame.depth == row.depth) & (frame.width == row.width)]
        for col in ("c_loss", "c_max"):
            values = group[col].dropna().to_numpy()
            assert row[f"{col}_mean"] == pytest.approx(values.mean())
            assert row[f"{col}_q25"] == pytest.approx(np.quantile(values, 0.25))
            assert row[f"{col}_q75"] == pytest.approx(np.quantile(values, 0.75))
            assert row[f"{col}_n"] == len(values)
    first = table[(table.depth == 2) & (table.width == 64)].iloc[0]
    assert first["c_max_n"] == 4 and first["c_loss_n"] == 5


def test_polyfit_recovers_quadratic_ignoring_nan():
    w = np.array([16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0])
    x = 1.0 / w
    y = 3.0 - 20.0 * x + 150.0 * x**2
    x_holes, y_holes = x.copy(), y.copy()
    y_holes[1] = nan
    x_holes[4] = nan
    curve = polyfit_curve(x_holes, y_holes)
    np.testing.assert_allclose(curve.coeffs, [150.0, -20.0, 3.0], rtol=1e-6)
    assert curve(1 / 48) == pytest.approx(3.0 - 20.0 / 48 + 150.0 / 48**2)
    # a wildly wrong value at a NaN x changes nothing
    y_bad = y.copy()
    y_bad[2] = 1e6
    x_bad = x.copy()
    x_bad[2] = nan
    np.testing.assert_allclose(polyfit_curve(x_bad, y_bad).coeffs, [150.0, -20.0, 3.0], rtol=1e-6)
    # too few points: the degree drops
    line = polyfit_curve(np.array([1.0, 2.0, nan]), np.array([1.0, 3.0, 7.0]))
    np.testing.assert_allclose(line.coeffs, [2.0, -1.0], atol=1e-9)


# ---------------------------------------------------------------- c_crit


X = np.round(np.arange(-1.0, 4.0001, 0.1), 10)  # the paper's grid x = log2 c


def step(x, a):
    """1 - tanh-step centred at x = 1 (c = 2), from 1 down to 0."""
    return 0.5 * (1.0 - np.tanh(a * (x - 1.0)))


@pytest.mark.parametrize("a", [1.0, 2.0, 3.0])
def test_c_crit_in_log2c_on_tanh_step(a):
    y = step(X, a)
    # -y'' = -a^2 f (1 - f^2) with f = tanh(a (x - 1)), largest at f = -1/sqrt(3)
    x_star = 1.0 + np.arctanh(-1.0 / np.sqrt(3.0)) / a
    found = c_crit(X, y, window=11, variable="log2c")
    assert abs(np.log2(found) - x_star) <= 0.1 + 1e-9
    assert found in set(2.0**X)  # a grid point
    chi, chi_prime = saturation_derivatives(X, y, window=11, variable="log2c")
    assert chi.shape == chi_prime.shape == X.shape
    assert X[np.argmax(chi)] == pytest.approx(1.0)  # chi = -y' peaks at the centre
    assert chi.max() == pytest.approx(a / 2, rel=0.1)


@pytest.mark.parametrize("a", [1.0, 2.0])
def test_c_crit_in_c_on_a_step_in_c(a):
    """Def. 4 as written: y = (1 - tanh(a (c - 2))) / 2 sampled on the log2 grid; -y'' in c peaks at
    c* = 2 + artanh(-1/sqrt 3) / a, and c_crit (default variable c, chain rule) is the grid point nearest it."""
    c = 2.0**X
    y = 0.5 * (1.0 - np.tanh(a * (c - 2.0)))
    c_star = 2.0 + np.arctanh(-1.0 / np.sqrt(3.0)) / a
    found = c_crit(X, y)
    assert abs(np.log2(found) - np.log2(c_star)) <= 0.05 + 1e-9


def test_saturation_derivatives_match_analytic_in_both_variables():
    a = 1.0
    y = step(X, a)
    f = np.tanh(a * (X - 1.0))
    chi, chi_prime = saturation_derivatives(X, y, window=7, variable="log2c")
    np.testing.assert_allclose(chi, a * (1 - f**2) / 2, atol=0.01)
    np.testing.assert_allclose(chi_prime, -(a**2) * f * (1 - f**2), atol=0.02)
    # in c = 2^x: -dy/dc = (-dy/dx) / (c ln 2), -d2y/dc2 = (-y_xx + ln 2 y_x) / (c ln 2)^2, from the exact y_x, y_xx
    c, ln2 = 2.0**X, np.log(2.0)
    y_x, y_xx = -a * (1 - f**2) / 2, a**2 * f * (1 - f**2)
    chi_c, chi_prime_c = saturation_derivatives(X, y, window=7)
    interior = slice(3, -3)  # the filter's ends extrapolate
    np.testing.assert_allclose(chi_c[interior], (-y_x / (c * ln2))[interior], atol=0.01)
    np.testing.assert_allclose(chi_prime_c[interior], (-(y_xx - ln2 * y_x) / (c * ln2) ** 2)[interior], atol=0.02)


def test_saturation_derivatives_short_grid():
    x = np.round(np.arange(0.0, 0.55, 0.1), 10)  # 6 points: the window shrinks to 5
    chi, chi_prime = saturation_derivatives(x, 1.0 - x**2, variable="log2c")
    np.testing.assert_allclose(chi, 2 * x, atol=1e-9)
    np.testing.assert_allclose(chi_prime, 2.0, atol=1e-9)
    # y = 1 - c^2 on the same grid, in c: a cubic in x fits it to within 0.3% (ends included)
    c = 2.0**x
    chi, chi_prime = saturation_derivatives(x, 1.0 - c**2)
    np.testing.assert_allclose(chi, 2 * c, rtol=3e-3)
    np.testing.assert_allclose(chi_prime[1:-1], 2.0, rtol=2e-2)  # within 8% at the two ends


def test_uv_c_crit_is_2_at_every_width_with_the_default_window():
    """App. B.2: c_crit = 2 at all widths (500 inits, tau = 100, c <= 3.5). The default (d/dc, window 7) gives it;
    d/dlog2 c gives 2.14 at small widths (README, Decisions)."""
    from phasediag.physics import uvmodel

    grid = uvmodel.log2_grid(-1.0, 4.0, 0.1)
    c = grid[grid <= uvmodel.C_FIT_MAX]
    for width in (8, 512):
        mean = np.nanmean(uvmodel.normalised_sharpness(uvmodel.sample(width, 500, 0), width, c, 100), axis=0)
        assert c_crit(np.log2(c), mean) == pytest.approx(2.0)
    assert c_crit(np.log2(c), mean, window=11) == pytest.approx(2**0.9)  # 1.87: the window matters
    with pytest.raises(ValueError, match="variable='ln'"):
        saturation_derivatives(np.log2(c), mean, variable="ln")


def test_each_question_answers_one_constant():
    """The ledger names the constant of question q c_q: the two vocabularies must line up."""
    assert [f"c_{q}" for q in critical.QUESTIONS] == list(CONSTANTS)


def test_c_crit_bootstrap_supports_a_clear_peak_and_not_noise():
    """Seeds that share a sharp step at x = 1 put chi''s argmax there in (nearly) every redraw; seeds of pure noise
    scatter it, and the support falls below critical.SUPPORT_NEEDED."""
    rng = np.random.default_rng(0)
    x = np.round(np.arange(-1, 3.01, 0.1), 10)
    step = 1 - 0.8 / (1 + np.exp(-(x - 1) / 0.15))
    clear = step + rng.normal(0, 0.002, (6, len(x)))
    c = critical.c_crit(x, clear.mean(axis=0))
    support, low, high = critical.c_crit_bootstrap(x, clear, c)
    assert support >= 0.9 and low <= c <= high
    noise = 0.5 + rng.normal(0, 0.05, (6, len(x)))
    c_noise = critical.c_crit(x, noise.mean(axis=0))
    support_noise, low_noise, high_noise = critical.c_crit_bootstrap(x, noise, c_noise)
    assert support_noise < critical.SUPPORT_NEEDED and high_noise / low_noise > high / low
    assert all(math.isnan(v) for v in critical.c_crit_bootstrap(x, clear[:1], c))  # one seed: nothing to redraw
    windows = critical.c_crit_windows(x, clear.mean(axis=0))
    assert windows == {w: critical.c_crit(x, clear.mean(axis=0), w) for w in critical.SAVGOL_WINDOWS}
