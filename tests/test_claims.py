"""The trend test and every claim row, on synthetic data and hand-built tables with known answers (fast)."""

import math

import numpy as np
import pandas as pd
import pytest

from phasediag.physics import trends
from phasediag.reports import claims

# --- the statistics ----------------------------------------------------------------------------------------------


def design(slope: float, rng, seeds: int = 10, noise: float = 1.0):
    x = np.repeat([1 / 2048, 1 / 1024, 1 / 512, 1 / 256], seeds) * 256  # 1/w in units of 1/256
    return x, slope * x + rng.normal(0, noise, len(x)), x


def test_bootstrap_slope_is_least_squares_over_every_value():
    x, y, groups = design(0.7, np.random.default_rng(1))
    test = trends.bootstrap_slope(x, y, groups)
    assert test.slope == pytest.approx(np.polyfit(x, y, 1)[0])
    assert test.low < test.slope < test.high and (test.n_values, test.n_groups) == (40, 4)


def test_no_trend_fails_in_at_least_95_percent_of_repetitions():
    rng = np.random.default_rng(0)
    passes = sum(trends.bootstrap_slope(*design(0.0, rng), n_boot=400, seed=i).excludes_zero(+1) for i in range(300))
    assert passes / 300 <= 0.05


def test_no_trend_with_three_seeds_still_fails_in_95_percent():
    rng = np.random.default_rng(5)
    passes = sum(trends.bootstrap_slope(*design(0.0, rng, seeds=3), n_boot=400, seed=i).excludes_zero(+1) for i in range(300))
    assert passes / 300 <= 0.05


def test_a_clear_trend_passes_in_its_direction_only():
    for i in range(20):
        test = trends.bootstrap_slope(*design(2.0, np.random.default_rng(i), noise=0.3), seed=i)
        assert test.excludes_zero(+1) and not test.excludes_zero(-1)


def test_groups_with_one_seed_are_left_out_and_too_few_groups_are_untested():
    test = trends.bootstrap_slope([1, 2, 2, 3, 3], [0.0, 1.0, 1.1, 2.0, 2.1], [1, 2, 2, 3, 3])
    assert test.dropped_groups == 1 and test.n_groups == 2 and test.tested
    untested = trends.bootstrap_slope([1, 2, 2], [0.0, 1.0, 1.1], [1, 2, 2])
    assert not untested.tested and not untested.excludes_zero(+1) and not untested.excludes_zero(-1)


def test_wilson_interval_known_values():
    assert trends.wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert trends.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert all(math.isnan(v) for v in trends.wilson(0, 0))


def test_peak_fwhm_of_a_gaussian_and_of_a_peak_cut_by_the_range():
    x = np.linspace(-3, 3, 601)
    sigma = 0.4
    assert trends.peak_fwhm(x, np.exp(-x**2 / (2 * sigma**2))) == pytest.approx(2 * math.sqrt(2 * math.log(2)) * sigma, rel=1e-3)
    assert math.isnan(trends.peak_fwhm(x, np.exp(-((x - 2.9) ** 2) / 2)))  # does not fall to half on the right
    assert math.isnan(trends.peak_fwhm(x, -np.ones_like(x)))


def saturation_curves(widths: dict, seeds: int = 6, rng=None):
    """Per run: <lambda_tau/lambda_0> a smooth step down at x = 1 whose width grows with `widths[run]`."""
    rng = rng or np.random.default_rng(0)
    x = np.round(np.arange(-1, 3.01, 0.1), 10)
    samples = {run: 1 - 0.8 / (1 + np.exp(-(x - 1) / s)) + rng.normal(0, 0.002, (seeds, len(x))) for run, s in widths.items()}
    return x, samples


def test_bootstrap_curve_slope_sees_a_widening_peak():
    x, samples = saturation_curves({0: 0.15, 1: 0.2, 2: 0.3, 3: 0.4})
    stat = [lambda mean: trends.peak_fwhm(x, np.gradient(np.gradient(mean, x), x) * -1)] * 4
    test = trends.bootstrap_curve_slope([0, 1, 2, 3], list(samples.values()), stat, n_boot=100)
    assert test.excludes_zero(+1)


# --- hand-built tables -------------------------------------------------------------------------------------------

DEPTHS, WIDTHS, SEEDS = (4, 8), (256, 512, 1024, 2048), range(6)


def constants(sign: float = 1.0, **columns) -> pd.DataFrame:
    """Per-seed constants with known trends: log2 c_loss = 1 + sign (300/w + 0.05 d) + noise, c_sharp = 1.5 c_loss,
    log2(c_max/c_loss) = 2 - 150/w - 0.02 d (the gap closes with 1/w and d, c_max grows with d), c_barrier > c_sharp."""
    rng = np.random.default_rng(3)
    rows = []
    for depth in DEPTHS:
        for width in WIDTHS:
            for seed in SEEDS:
                log_loss = 1 + sign * (300 / width + 0.05 * depth) + rng.normal(0, 0.02)
                c_loss = 2.0**log_loss
                rows.append({"run_id": f"d{depth}w{width}s{seed}", "depth": depth, "width": width, "seed": seed,
                             "loss": "mse", "output": "plain", "resolution": 0.1, "c_loss": c_loss,
                             "c_sharp": 1.5 * c_loss, "c_max": c_loss * 2 ** (2 - 150 / width - 0.02 * depth),
                             "c_barrier": 1.6 * c_loss, **columns})  # fmt: skip
    return pd.DataFrame(rows)


def rows_of(table: pd.DataFrame, claim: str, scope: str | None = None) -> pd.DataFrame:
    found = table[table["claim"].str.contains(claim, regex=False)]
    return found if scope is None else found[found["scope"] == scope]


def result(table: pd.DataFrame, claim: str, scope: str | None = None) -> str:
    found = rows_of(table, claim, scope)
    assert len(found) == 1, f"{claim!r} {scope!r}: {len(found)} rows"
    return found["result"].iloc[0]


def test_trends_pass_on_the_paper_direction():
    table = claims.evaluate(constants())
    for scope in ("d=4", "d=8"):
        assert result(table, "log2 c_loss increases with 1/w", scope) == "pass"
        assert result(table, "log2 c_sharp increases with 1/w", scope) == "pass"
        assert result(table, "log2(c_max / c_loss) decreases with 1/w", scope) == "pass"
    for width in WIDTHS:
        assert result(table, "log2 c_loss increases with d", f"w={width}") == "pass"
        assert result(table, "log2 c_max increases with d", f"w={width}") == "pass"
        assert result(table, "log2(c_max / c_loss) decreases with d", f"w={width}") == "pass"
    row = rows_of(table, "log2 c_loss increases with 1/w", "d=4").iloc[0]
    assert row["low"] > 0 and row["measured"] == pytest.approx(300 / math.log(2) * math.log(2), rel=0.05)  # slope 300
    assert rows_of(table, "log2 c_max increases with 1/w").empty  # plain MSE: no direction claimed
    assert rows_of(table, "with log2 B").empty  # one batch size


def test_trends_fail_against_the_paper_direction_and_without_data():
    table = claims.evaluate(constants(sign=-1.0))
    assert result(table, "log2 c_loss increases with 1/w", "d=4") == "fail"
    assert result(table, "log2 c_loss increases with d", "w=256") == "fail"
    empty = constants().assign(c_loss=np.nan)
    table = claims.evaluate(empty)
    assert result(table, "log2 c_loss increases with 1/w", "d=4") == "no data"


def test_cross_entropy_and_output_scale_directions_of_c_max():
    xent = constants(loss="xent")
    xent["c_max"] = xent["c_loss"] * 2 ** (3 - 600 / xent["width"])  # c_max falls with 1/w
    lazy = constants(output_sigma=-0.5)
    lazy["c_max"] = lazy["c_loss"] * 2.0  # c_max grows with 1/w like c_loss
    table = claims.evaluate(pd.concat([xent, lazy], ignore_index=True))
    assert result(table, "log2 c_max decreases with 1/w", "d=4 loss=xent output_sigma=nan") == "pass"
    assert result(table, "log2 c_max increases with 1/w", "d=4 loss=mse output_sigma=-0.5") == "pass"


def test_batch_size_moves_c_sharp():
    parts = []
    for batch, shift in ((128, 0.0), (512, 0.5)):
        part = constants(batch_size=batch)
        part["c_sharp"] = part["c_sharp"] * 2**shift
        parts.append(part)
    table = claims.evaluate(pd.concat(parts, ignore_index=True))
    assert result(table, "log2 c_sharp increases with log2 B", "d=4 w=256") == "pass"
    parts[1]["c_sharp"] = parts[1]["c_sharp"] / 2  # now smaller at B = 512
    table = claims.evaluate(pd.concat(parts, ignore_index=True))
    assert result(table, "log2 c_sharp increases with log2 B", "d=4 w=256") == "fail"


def test_inequality_counts_seeds_with_a_wilson_interval():
    table = constants()
    table.loc[0, ["c_sharp", "c_max"]] = [10.0, 10.0 / 2**0.2]  # two grid steps above c_max: a violation
    table.loc[1, ["c_sharp", "c_max"]] = [10.0, 10.0 / 2**0.1]  # one step: tolerated (divergence = increase)
    table.loc[2, "c_max"] = np.nan  # nothing diverged: c_max above everything
    row = rows_of(claims.evaluate(table), "c_loss <= c_sharp <= c_max per seed").iloc[0]
    assert row["measured"] == pytest.approx(47 / 48) and row["result"] == "pass"
    assert (row["low"], row["high"]) == pytest.approx(trends.wilson(47, 48))
    assert "strict (no grid-step tolerance): 96%" in row["detail"] and "censoring not logged" in row["detail"]
    table["c_sharp"] = table["c_loss"] / 2
    assert result(claims.evaluate(table), "c_loss <= c_sharp <= c_max per seed") == "fail"
    assert result(claims.evaluate(table.assign(c_sharp=np.nan)), "c_loss <= c_sharp <= c_max per seed") == "no data"


def test_barrier_wide_limit_and_zero_outputs():
    table = claims.evaluate(constants())
    assert result(table, "c_sharp <= c_barrier") == "pass"
    wide = rows_of(table, "the loss starts to catapult at c ~ 2").iloc[0]
    assert wide["scope"] == "d=4 w=2048" and wide["result"] == "pass" and wide["low"] <= wide["measured"] <= wide["high"]
    assert result(claims.evaluate(constants().drop(columns="c_barrier")), "c_sharp <= c_barrier") == "no data"
    far = constants().assign(c_loss=lambda f: f["c_loss"] * 4)
    assert result(claims.evaluate(far), "the loss starts to catapult at c ~ 2") == "fail"
    xent = claims.evaluate(constants(loss="xent").assign(c_loss=lambda f: f["c_loss"] * 2.5))
    assert result(xent, "4 <~ c_loss <~ 8") == "pass"
    centered = constants(output="centered").assign(c_loss=2.1)
    assert result(claims.evaluate(centered), "output=centered: 'the average onset") == "pass"
    assert rows_of(claims.evaluate(centered), "log2 c_loss increases").empty  # no trend claimed for zero outputs
    assert result(claims.evaluate(centered.assign(c_loss=4.0)), "output=centered: 'the average onset") == "fail"
    assert result(claims.evaluate(centered.assign(c_loss=np.nan)), "output=centered: 'the average onset") == "no data"


def child_runs(table: pd.DataFrame, ratio: float) -> pd.DataFrame:
    """Two trained runs per search below its c_loss, with the given max sharpness ratio."""
    rows = [{"parent_run_id": r.run_id, "c": r.c_loss * f, "max_sharpness_ratio": ratio, "diverged": 0.0}
            for r in table.itertuples() for f in (0.5, 0.8)]  # fmt: skip
    return pd.DataFrame(rows)


def test_sharpness_direction_below_c_loss():
    plain = constants()
    assert result(claims.evaluate(plain, runs=child_runs(plain, 0.9)), "sharpness only decreases") == "pass"
    assert result(claims.evaluate(plain, runs=child_runs(plain, 1.2)), "sharpness only decreases") == "fail"
    assert result(claims.evaluate(plain), "sharpness only decreases") == "no data"
    zero = constants(output="zero_readout").assign(c_loss=2.0)
    assert result(claims.evaluate(zero, runs=child_runs(zero, 1.03)), "slight increase in sharpness") == "pass"
    assert result(claims.evaluate(zero, runs=child_runs(zero, 1.0)), "slight increase in sharpness") == "fail"
    small = constants(output_norm=0.1)
    assert result(claims.evaluate(small, runs=child_runs(small, 1.5)), "s < 0.5") == "pass"


def test_censored_counts_or_no_data():
    table = constants()
    assert set(rows_of(claims.evaluate(table), "censored at c_max")["result"]) == {"no data"}
    flagged = table.assign(c_loss_censored=0.0, c_sharp_censored=0.0, c_barrier_censored=0.0)
    flagged.loc[[0, 5, 30], "c_sharp_censored"] = 1.0
    rows = claims.evaluate(flagged)
    sharp = rows_of(rows, "seeds with c_sharp censored at c_max").iloc[0]
    assert sharp["measured"] == 3 and sharp["result"] == "count" and "3 of 48" in sharp["detail"]
    inequality = rows_of(rows, "c_loss <= c_sharp <= c_max per seed").iloc[0]
    assert "3 with either censored left out" in inequality["detail"] and inequality["measured"] == 1.0
    assert "45/45" in inequality["detail"]  # only the uncensored seeds are evidence


def test_a_censored_seed_is_no_evidence_for_an_inequality_and_claims_are_evaluated_twice():
    """Censored c_sharp (= c_max) satisfies c_sharp <= c_max by construction: such seeds are left out of the count;
    evaluate_both reports each claim with censored constants as c_max and left out (NaN)."""
    table = constants().assign(c_loss_censored=0.0, c_sharp_censored=0.0, c_barrier_censored=0.0)
    bad = table.index[:20]  # 20 of 48 seeds violate c_sharp <= c_max, but their c_sharp is censored ...
    table.loc[bad, "c_sharp"] = table.loc[bad, "c_max"]
    table.loc[bad, "c_sharp_censored"] = 1.0
    both = claims.evaluate_both(table)
    row = rows_of(both, "c_loss <= c_sharp <= c_max per seed").iloc[0]
    assert "28/28" in row["detail"] and "20 with either censored left out" in row["detail"]
    assert row["result"] == row["result_left_out"] == "pass"
    # the trend of c_sharp is computed on 48 values as c_max, on 28 when censored values are left out
    trend = rows_of(both, "log2 c_sharp increases with 1/w", "d=4").iloc[0]
    assert "0 NaN" in trend["detail"] and f"{len(bad[table.loc[bad, 'depth'] == 4])} NaN" in trend["detail_left_out"]
    assert list(both.columns[:9]) == claims.COLUMNS and {"measured_left_out", "result_left_out"} <= set(both)
    assert len(both) == len(claims.evaluate(table))  # each claim once
    left = claims.left_out(table)
    assert left.loc[bad, "c_sharp"].isna().all() and left["c_loss"].notna().all()
    markdown = claims.to_markdown(both, "x")
    assert "censored left out: measured" in markdown and "Censored left out:" in markdown


def test_an_unsupported_c_crit_peak_is_no_data_not_a_measurement():
    runs, _, _ = saturation_tables(c_crit=2.14)
    supported = runs.assign(c_crit_support=0.9, c_crit_supported=1.0, c_crit_low=1.9, c_crit_high=2.3)
    table = claims.evaluate(pd.DataFrame(), supported)
    rows = rows_of(table, "vicinity of c = 2")
    assert set(rows["result"]) == {"pass"} and rows["low"].iloc[0] == 1.9 and "90% of seed redraws" in rows["detail"].iloc[0]
    unsupported = claims.evaluate(constants().assign(arch="fcn", batch_size=512), runs.assign(c_crit_support=0.2, c_crit_supported=0.0))
    assert set(rows_of(unsupported, "vicinity of c = 2")["result"]) == {"no data"}
    assert "not supported by the seeds" in rows_of(unsupported, "vicinity of c = 2")["detail"].iloc[0]
    assert result(unsupported, "opening of the sharpness reduction phase") == "no data"
    assert "c_crit_sg5" not in set(rows_of(table, "vicinity")["scope"].str.cat())  # window metrics are no extra claims


# --- saturation --------------------------------------------------------------------------------------------------


def saturation_tables(widths=(256, 512, 1024, 2048), widening: bool = True, c_crit=2.14, loss="mse"):
    """One saturation run per width: ratio curves with a step at x = 1 that widens with 1/w (or narrows), and
    lambda_tau at small c falling with 1/w."""
    scale = {w: (0.1 + 40 / w if widening else 0.5 - 40 / w) for w in widths}
    x, samples = saturation_curves({f"run{w}": scale[w] for w in widths})
    runs, seeds, curves = [], [], []
    for w in widths:
        run = f"run{w}"
        runs.append({"run_id": run, "status": "FINISHED", "arch": "fcn", "depth": 4, "width": w, "loss": loss,
                     "batch_size": 512, "c_crit": c_crit, "window": 11, "polyorder": 3})  # fmt: skip
        lambda0 = 50.0 * (1 + 256 / w)
        for s, ratios in enumerate(samples[run]):
            seeds.append(pd.DataFrame({"run_id": run, "seed": s, "x": x, "c": 2.0**x, "ratio": ratios,
                                       "lambda0": lambda0, "lambda_tau": ratios * lambda0 * (w / 2048) ** 0.5}))  # fmt: skip
        curves.append(pd.DataFrame({"run_id": run, "x": x, "c": 2.0**x, "in_fit": True}))
    return pd.DataFrame(runs), pd.concat(seeds, ignore_index=True), pd.concat(curves, ignore_index=True)


def test_chi_prime_peak_widens_and_small_c_sharpness_falls_with_inverse_width(monkeypatch):
    monkeypatch.setattr(claims, "CURVE_BOOT", 60)  # each redraw smooths every curve again: fewer, for speed
    runs, seeds, curves = saturation_tables()
    table = claims.evaluate(pd.DataFrame(), runs, saturation_seeds=seeds, saturation_curves=curves)
    assert result(table, "FWHM of chi' (log2 c) grows with 1/w", "d=4") == "pass"
    assert result(table, "log2 lambda_tau(c <= 1) decreases with 1/w", "d=4") == "pass"
    assert set(rows_of(table, "vicinity of c = 2")["result"]) == {"pass"}
    runs, seeds, curves = saturation_tables(widening=False)
    narrowing = claims.evaluate(pd.DataFrame(), runs, saturation_seeds=seeds, saturation_curves=curves)
    assert result(narrowing, "FWHM of chi' (log2 c) grows with 1/w", "d=4") == "fail"
    assert result(claims.evaluate(pd.DataFrame(), runs), "FWHM of chi'") == "no data"
    assert result(claims.evaluate(pd.DataFrame(), runs.iloc[:1], saturation_seeds=seeds, saturation_curves=curves),
                  "FWHM of chi'") == "no data"  # one run: nothing to compare


def test_c_crit_bands_and_the_gap_with_c_loss():
    runs, _, _ = saturation_tables(c_crit=2.14)
    table = claims.evaluate(constants().assign(arch="fcn", batch_size=512), runs)
    assert result(table, "log2(c_loss / c_crit) increases with 1/w", "d=4") == "pass"
    assert set(rows_of(table, "vicinity of c = 2")["result"]) == {"pass"}
    far = claims.evaluate(pd.DataFrame(), saturation_tables(c_crit=4.5)[0])
    assert set(rows_of(far, "vicinity of c = 2")["result"]) == {"fail"}
    xent = claims.evaluate(pd.DataFrame(), saturation_tables(c_crit=3.5, loss="xent")[0])
    assert set(rows_of(xent, "2 <~ <c_crit> <~ 4")["result"]) == {"pass"}
    assert result(claims.evaluate(constants()), "opening of the sharpness reduction phase") == "no data"


# --- the uv model ------------------------------------------------------------------------------------------------


def uv_table(broken: bool = False) -> pd.DataFrame:
    """Per init; init 0 of each width survives k = 4, so its trace rises at k = 4.3 < k_max without breaking Eq. 1."""
    rng = np.random.default_rng(4)
    rows = []
    for w in (2, 8, 32, 512):
        for init in range(20):
            k_loss = 2 + 2 / w + rng.normal(0, 0.01)
            rows.append({"width": w, "init": init, "lambda0": 1.2, "trace0": 1.0, "k_loss": k_loss,
                         "k_frob": k_loss + 1 / w + abs(rng.normal(0, 0.01)), "k_trace": 4.3 if init == 0 else 4.1, "k_max": 4.6 if init == 0 else 4.0,
                         "c_loss": 1.1 * k_loss, "c_sharp": 1.3 * k_loss, "c_max": 4.8})  # fmt: skip
    frame = pd.DataFrame(rows)
    if broken:
        frame.loc[0, "trace0"] = 2.0  # lambda0 < tr(H0)
        frame.loc[1, "k_trace"] = 2.5  # the trace rose before the divergence
        frame.loc[2, "c_sharp"] = 6.0  # c_sharp > c_max
        frame["k_max"] = 3.0  # and k_trace = 2.5 of init 1 is now below both k_max and 4
    return frame


def test_uv_claims_pass_fail_and_no_data():
    saturation = pd.DataFrame({"width": [2, 512], "c": [2.0, 2.0], "c_crit": [2.0**1.1, 2.0]})
    good = claims.evaluate(pd.DataFrame(), uv=uv_table(), uv_saturation=saturation)
    for claim in ("<k_max> = 4", "lambda_0 >= tr(H_0)", "tr(H) does not increase", "for every random initialization",
                  "k_frob - k_loss increases with 1/w", "log2 k_loss increases with 1/w", "c_crit = 2 for all widths"):
        assert result(good, claim) == "pass", claim
    bad = claims.evaluate(pd.DataFrame(), uv=uv_table(broken=True), uv_saturation=saturation.assign(c_crit=[2.5, 2.0]))
    for claim in ("<k_max> = 4", "lambda_0 >= tr(H_0)", "tr(H) does not increase", "for every random initialization",
                  "c_crit = 2 for all widths"):
        assert result(bad, claim) == "fail", claim
    assert result(claims.evaluate(pd.DataFrame(), uv=uv_table()), "c_crit = 2 for all widths") == "no data"
    assert result(claims.evaluate(pd.DataFrame(), uv=pd.DataFrame()), "uv model") == "no data"


def test_markdown_shows_intervals_and_the_rules():
    table = claims.evaluate_both(constants())
    text = claims.to_markdown(table, "hand")
    assert ("| fig. | claim | scope | censored as c_max: measured [95 % interval] | result | censored left out: measured "
            "[95 % interval] | result | expected | detail |") in text  # fmt: skip
    row = rows_of(table, "log2 c_loss increases with 1/w", "d=4").iloc[0]
    assert f"{row['measured']:.3g} [{row['low']:.3g}, {row['high']:.3g}]" in text
    assert "redraws the seeds within each point" in text


# --- from a tracking store ---------------------------------------------------------------------------------------


def test_load_reads_saturation_and_uv_artifacts_and_the_cli_reports_them(store, tmp_path, monkeypatch, capsys):
    from phasediag import cli, tracking

    monkeypatch.setattr(claims, "CURVE_BOOT", 60)
    runs, seeds, curves = saturation_tables()
    for run in runs.itertuples():
        folder = tmp_path / run.run_id
        folder.mkdir()
        seeds[seeds["run_id"] == run.run_id].drop(columns="run_id").to_csv(folder / "saturation.csv", index=False)
        curves[curves["run_id"] == run.run_id].drop(columns="run_id").to_csv(folder / "saturation_curve.csv", index=False)
        params = {"arch": "fcn", "depth": run.depth, "width": run.width, "loss": "mse", "batch_size": 512, "window": 11,
                  "polyorder": 3}  # fmt: skip
        tracking.log_artifact_run("sat", "saturation", params, {"c_crit": run.c_crit}, folder)
    uv_folder = tmp_path / "uv"
    uv_folder.mkdir()
    uv_table().to_csv(uv_folder / "uv_critical.csv", index=False)
    pd.DataFrame({"width": [2, 512], "c": 2.0, "c_crit": [2.0, 2.0]}).to_csv(uv_folder / "uv_saturation.csv", index=False)
    tracking.log_artifact_run("uv", "uv", {"widths": "2,512"}, {}, uv_folder)

    data = claims.load("sat", uv_experiment="uv")
    assert data["constants"].empty and len(data["saturation"]) == 4
    assert len(data["saturation_seeds"]) == len(seeds) and set(data["saturation_curves"]["run_id"]) == set(data["saturation"]["run_id"])
    assert len(data["uv"]) == len(uv_table())
    assert cli.main(["claims", "--experiment", "sat", "--uv_experiment", "uv", "--out", str(tmp_path / "out"), "--log", "false"]) == 0
    table = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert result(table, "FWHM of chi' (log2 c) grows with 1/w", "d=4") == "pass"
    assert result(table, "log2 lambda_tau(c <= 1) decreases with 1/w", "d=4") == "pass"
    assert result(table, "c_crit = 2 for all widths") == "pass"
    assert "claims.md" in capsys.readouterr().out
