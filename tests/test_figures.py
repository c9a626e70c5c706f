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


# --- the commands, on tiny sizes --------------------------------------------------------------------------------------

TINY_FCN = ["--arch", "fcn", "--depth", "2", "--width", "8", "--dataset", "synthetic:1x4x4:128", "--measure_examples",
            "64", "--batch_size", "32", "--accelerator", "cpu"]  # fmt: skip


def test_longrun_command_measures_on_the_paper_schedule(tmp_path):
    import pandas as pd

    from phasediag import cli
    from phasediag.run.callbacks import measure_schedule

    out = tmp_path / "longrun"
    assert cli.main(["longrun", *TINY_FCN, "--cs", "1", "4", "--epochs", "11", "--out", str(out), "--log", "false"]) == 0
    table = pd.read_csv(out / "longrun.csv")
    found = pd.read_csv(out / "longrun_regimes.csv")
    assert sorted(found["c"]) == [1.0, 4.0] and (found["steps_per_epoch"] == 4).all()
    assert np.allclose(found["eta"] * found["lambda0"], found["c"])
    keep = measure_schedule("paper", 4)
    for c, rows in table.groupby("c"):
        assert rows["step"].max() == 44 and rows["loss"].notna().all()  # loss at every step
        measured = rows.loc[rows["sharpness"].notna(), "step"].tolist()
        assert measured == [t for t in range(45) if t == 0 or keep(t)] == [*range(11), 40, 44]  # T1, epochs 10, 11
        again = regimes.boundaries(rows["step"], rows["sharpness"], float(found.loc[found["c"] == c, "eta"].iloc[0]))
        assert tuple(found.loc[found["c"] == c, list(regimes.Boundaries._fields)].iloc[0]) == pytest.approx(again, nan_ok=True)
        assert (rows["regime"].to_numpy() == regimes.label(rows["step"], again)).all()
    assert (out / "longrun.png").stat().st_size > 10_000

    # L_t on the sharpness's schedule (the Fig. 1 spec's --loss_schedule paper): the same values where measured
    sparse_out = tmp_path / "sparse"
    args = ["longrun", *TINY_FCN, "--cs", "1", "4", "--epochs", "11", "--loss_schedule", "paper", "--out", str(sparse_out)]
    assert cli.main([*args, "--log", "false"]) == 0
    sparse = pd.read_csv(sparse_out / "longrun.csv")
    for c, rows in sparse.groupby("c"):
        dense = table[table["c"] == c].set_index("step")
        assert rows.loc[rows["loss"].notna(), "step"].tolist() == rows.loc[rows["sharpness"].notna(), "step"].tolist()
        kept = rows.dropna(subset="loss").set_index("step")
        assert np.allclose(kept["loss"], dense.loc[kept.index, "loss"], rtol=1e-6)
        assert rows["batch_loss"].iloc[1:].notna().all()
    assert (sparse_out / "longrun.png").stat().st_size > 10_000


def test_an_unsupported_c_crit_says_so_in_the_legend():
    import pandas as pd

    from phasediag.plots.saturation_widths import legend_label

    assert legend_label(64, pd.Series({"c_crit": 1.414, "fwhm": float("nan"), "c_crit_support": 0.45})) == (
        "w = 64: $c_{crit}$ = 1.41, FWHM = nan (unsupported: 45% of seed redraws)", True)  # fmt: skip
    assert legend_label(256, pd.Series({"c_crit": 2.144, "fwhm": 1.03, "c_crit_support": 1.0}))[1] is False
    assert legend_label(256, pd.Series({"c_crit": 2.144, "fwhm": 1.03}))[1] is False  # one seed: no bootstrap


def test_saturation_widths_command_overlays_the_widths(tmp_path):
    import pandas as pd

    from phasediag import cli

    out = tmp_path / "sw"
    args = ["saturation_widths", *TINY_FCN[:4], *TINY_FCN[6:], "--widths", "4", "16", "--seeds", "0", "--x_min", "0.5",
            "--x_max", "1.8", "--window", "5", "--tau_constant", "10", "--out", str(out), "--log", "false"]  # fmt: skip
    assert cli.main(args) == 0
    summary = pd.read_csv(out / "saturation_widths_summary.csv")
    curves = pd.read_csv(out / "saturation_widths.csv")
    assert list(summary["width"]) == [4, 16] and sorted(curves["width"].unique()) == [4, 16]
    for width in (4, 16):
        alone = pd.read_csv(out / f"w{width}" / "saturation_curve.csv")  # each width's own saturation scan
        mine = curves[curves["width"] == width]
        assert np.allclose(alone["mean"], mine["mean"], equal_nan=True)
        peak = peaks.fwhm(alone.loc[alone["in_fit"], "c"], alone.loc[alone["in_fit"], "chi_prime"])
        row = summary[summary["width"] == width].iloc[0]
        assert row["fwhm"] == pytest.approx(peak.fwhm, nan_ok=True) and row["c_crit"] == alone["c_crit"].iloc[0]
    assert (out / "saturation_widths.png").is_file()


def test_uv_figures_command(tmp_path):
    import pandas as pd

    from phasediag import cli
    from phasediag.physics import uvmodel
    from phasediag.reports import uv

    out = tmp_path / "uvf"
    assert cli.main(["uv_figures", "--widths", "2 8", "--inits", "60", "--seed", "3", "--out", str(out), "--log", "false"]) == 0
    fig9 = pd.read_csv(out / "uv_fig9_constants.csv")
    # init 0 of each width, computed again through Fig. 7's table: the same constants
    again = uv.critical_table([2, 512], 1, 3, uvmodel.log2_grid(uv.X_MIN, uv.X_MAX, 0.1), 10)
    merged = fig9.merge(again, on="width", suffixes=("", "_again"))
    for name in ("c_loss", "c_sharp", "c_max"):
        assert np.allclose(merged[name], merged[f"{name}_again"])
    paths = pd.read_csv(out / "uv_fig9_trajectories.csv")
    assert np.allclose(paths.loc[paths["t"] == 0, "sharpness_ratio"], 1.0)
    order = pd.read_csv(out / "uv_fig12_order.csv")
    relations = pd.read_csv(out / "uv_fig12_relations.csv")
    assert list(order["inits"]) == [60, 60] and len(relations) == 120
    w2 = relations[relations["width"] == 2]
    strict = ((w2["c_loss"] <= w2["c_sharp"]) & (w2["c_sharp"] <= w2["c_max"])).mean()
    assert order.loc[order["width"] == 2, "fraction"].iloc[0] == pytest.approx(strict)
    assert (order["fraction_one_step"] >= order["fraction"]).all()
    assert (out / "uv_fig12_relations.png").is_file() and (out / "uv_fig9_trajectories.png").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["longrun", *TINY_FCN, "--cs", "0", "2"], "cs="),
        (["longrun", *TINY_FCN, "--epochs", "0"], "epochs=0"),
        (["saturation_widths", *TINY_FCN[:4], *TINY_FCN[6:], "--widths", "8", "8"], "widths="),
        (["uv_figures", "--widths", "two"], "widths="),
    ],
)
def test_figure_commands_refuse_bad_input(tmp_path, capsys, args, message):
    from phasediag import cli

    assert cli.main([*args, "--out", str(tmp_path / "x"), "--log", "false"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_gallery_copy_fits_the_size_limit(tmp_path):
    from PIL import Image

    from phasediag.plots import subplots
    from phasediag.plots.gallery import fit_png

    fig, ax = subplots(figsize=(12, 9))
    ax.imshow(np.random.default_rng(0).random((300, 400)), cmap="magma")  # noise: a large PNG
    fig.savefig(tmp_path / "big.png", dpi=130)
    big = (tmp_path / "big.png").stat().st_size
    assert big > 250_000
    size = fit_png(tmp_path / "big.png", tmp_path / "docs" / "small.png")
    assert size == (tmp_path / "docs" / "small.png").stat().st_size <= 250_000
    with Image.open(tmp_path / "big.png") as big_image, Image.open(tmp_path / "docs" / "small.png") as small_image:
        (w, h), (w2, h2) = big_image.size, small_image.size
    assert abs(w2 / h2 - w / h) < 0.01  # scaled, not cropped
    assert fit_png(tmp_path / "docs" / "small.png", tmp_path / "same.png") == size  # small enough: copied as is


def test_phase_diagram_marks_censored_points_hatches_small_c_and_offers_a_log2_width_axis():
    """A point where some seeds' c_loss is censored is hollow with 'k/n' beside it; c < 2 is hatched; width_axis=log2
    puts the widths themselves on a log2 axis; a panel along which x does not vary is left out of the diagram."""
    import pandas as pd

    from phasediag.plots import phase
    from phasediag.reports import diagram

    rows = []
    for width in (64, 128, 256):
        for seed in range(3):
            rows.append({"run_id": f"w{width}s{seed}", "depth": 4, "width": width, "seed": seed, "c_loss": 2.5 + seed,
                         "c_sharp": 4.0, "c_max": 8.0, "c_barrier": math.nan, "inv_width": 1 / width,
                         "c_loss_censored": float(width == 64 and seed < 2), "c_sharp_censored": 0.0,
                         "c_barrier_censored": math.nan})  # fmt: skip
    rows.append({**rows[-1], "run_id": "d8", "depth": 8, "width": 256})  # a depth point: a panel of one width
    constants = diagram.panels_along(pd.DataFrame(rows), "width")
    assert set(constants["depth"]) == {4}
    summary, fits = diagram.summarize(constants, "width")
    assert summary.set_index("width").loc[64, "c_loss_censored_count"] == 2
    figure = phase.phase_diagram(summary, fits, "width", ["depth"], "test")
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert texts == ["2/3"]
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "$c < 2$" in labels and any("censored" in label for label in labels)
    log2 = phase.phase_diagram(summary, fits, "width", ["depth"], "test", width_axis="log2")
    assert log2.axes[0].get_yscale() == "log" and log2.axes[0].get_ylim()[0] < 64 < 256 < log2.axes[0].get_ylim()[1]
