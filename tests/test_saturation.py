"""`phasediag saturation` (Sec. 3, Def. 4, App. I; uv model App. B.2): lambda_tau / lambda_0 against c and c_crit."""

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, runs_of
from phasediag import cli
from phasediag.physics import critical
from phasediag.run import runner
from phasediag.physics import uvmodel
from phasediag.run.config import RunConfig
from phasediag.reports.saturation import SaturationConfig, curve, run_saturation

UV = ["--arch", "uv", "--depth", "2", "--dataset", "uv", "--batch_size", "0", "--accelerator", "cpu"]
FCN = ["--arch", "fcn", "--depth", "3", "--width", "16", "--dataset", "synthetic:1x4x4:128", "--measure_examples", "64",
       "--batch_size", "32", "--accelerator", "cpu"]  # fmt: skip


def uv_config(width: int, seeds, **changes) -> SaturationConfig:
    run = RunConfig(arch="uv", depth=2, width=width, dataset="uv", batch_size=0, accelerator="cpu")
    values = {"tau_fixed": 100, "x_min": 0.5, "x_max": 1.8, "x_step": 0.1, **changes}
    return SaturationConfig(run=run, seeds=tuple(seeds), **values)


@pytest.mark.parametrize("width", [32, 512])
def test_uv_c_crit_is_near_2(tmp_path, width):
    """App. B.2 / Fig. 10: c_crit = 2 for every width (here 3 inits, c <= 3.5 as in the paper)."""
    result = run_saturation(uv_config(width, range(3), x_min=0.7, window=5, out=str(tmp_path), log=False))
    assert 2**0.85 <= result.c_crit <= 2**1.15, result.curve
    below = result.curve[result.curve["c"] < 1.7]
    assert (below["mean"] > 0.9).all()  # stage (1): flat below c = 2
    assert result.curve["mean"].iloc[-1] < 0.2  # stage (2): a sharp drop above it


def test_uv_ratio_equals_closed_form_over_the_window(tmp_path):
    """The trained uv model against uvmodel's exact GD: <lambda_t / lambda_0> over t in [tau - 5, tau + 5]."""
    config = uv_config(64, [3], x_min=0.0, x_max=1.7, tau_fixed=30, out=str(tmp_path), log=False)  # 18 points, tau = 30: quick
    result = run_saturation(config)
    init = runner.initialize(RunConfig(arch="uv", depth=2, width=64, dataset="uv", batch_size=0, seed=3))
    state = uvmodel.state_from_vectors(init.model.u.detach().double().numpy(), init.model.v.detach().double().numpy())
    lambda0 = float(uvmodel.sharpness(state, 64))
    assert init.lambda0.value == pytest.approx(lambda0, rel=1e-5)
    c = result.table["c"].to_numpy()
    sharp = uvmodel.run(state, c / lambda0, 64, 35, ("sharpness",))["sharpness"]
    exact = sharp[:, 25:36].mean(axis=1) / lambda0
    np.testing.assert_allclose(result.table["ratio"], exact, rtol=2e-3)


def test_sharpness_is_measured_only_in_the_window(tmp_path, monkeypatch):
    """tau = round(tau_constant / c); sharpness (and so HVPs) only at t in [tau - 5, tau + 5], never before."""
    trained = []
    real_train = runner.train

    def spy(*args, **kwargs):
        trained.append(real_train(*args, **kwargs))
        return trained[-1]

    monkeypatch.setattr(runner, "train", spy)
    run = RunConfig.from_strings({k.removeprefix("--"): v for k, v in zip(FCN[::2], FCN[1::2])})
    config = SaturationConfig(run=run, seeds=(0,), x_min=0.0, x_max=2.0, x_step=0.5, tau_constant=20, window=3,
                              polyorder=2, out=str(tmp_path), log=False)  # fmt: skip
    result = run_saturation(config)
    table = result.table
    assert list(table["tau"]) == [20, 14, 10, 7, 5]  # round(20 / 2^x), x = 0, 0.5, ..., 2
    assert list(table["t_first"]) == [15, 9, 5, 2, 1] and list(table["t_last"]) == [25, 19, 15, 12, 10]
    for row, res in zip(table.itertuples(), trained):
        measured = res.history["sharpness"].iloc[1:].dropna().index.tolist()  # t = 0 is lambda_0 itself
        if row.diverged:
            assert math.isnan(row.ratio) and set(measured) <= set(range(row.t_first, row.t_last + 1))
            continue
        assert measured == list(range(row.t_first, row.t_last + 1))
        assert res.history.index.max() == row.t_last  # trained to tau + 5 steps, not further
        assert row.measured == len(measured) and row.hvps == res.hvps > 0
        assert row.ratio == pytest.approx(res.history.loc[measured, "sharpness"].mean() / row.lambda0)
    # the speed lever: the same run measured at every step spends many more HVPs
    first = table.iloc[0]
    init = runner.initialize(run)
    every = real_train(dataclasses.replace(init, config=dataclasses.replace(run, steps=25)), first.c)
    assert every.history["sharpness"].iloc[1:].notna().sum() == 25
    assert every.hvps > 2 * first.hvps

    # L_t only where the sharpness is measured (the paper-size specs' loss_schedule=with_sharpness): the same scan
    trained.clear()
    sparse = run_saturation(dataclasses.replace(config, run=dataclasses.replace(run, loss_schedule="with_sharpness")))
    columns = ["c", "diverged", "steps_trained", "ratio", "measured", "hvps"]
    pd.testing.assert_frame_equal(sparse.table[columns], table[columns])
    for row, res in zip(sparse.table.itertuples(), trained):
        loss_steps = res.history["loss"].dropna().index.tolist()
        window = [t for t in range(row.t_first, row.t_last + 1) if t <= row.steps_trained]
        assert loss_steps == [0, *window] or row.diverged


def test_divergence_gives_nan_and_ends_the_fit():
    """Diverged runs are NaN, left out of the mean; the fit uses only c below the first c where any seed diverged."""
    x = np.round(np.arange(0.0, 2.01, 0.1), 10)
    rows = []
    for seed in (0, 1):
        for xi in x:
            diverged = xi >= (1.9 if seed == 0 else 1.7)
            ratio = math.nan if diverged else 1.0 / (1.0 + np.exp((xi - 1.2) * 8)) + 0.01 * seed
            rows.append({"seed": seed, "x": xi, "c": 2**xi, "tau": 100, "diverged": diverged, "ratio": ratio})
    config = uv_config(8, (0, 1), x_min=0.0, x_max=2.0)
    frame, c_crit = curve(pd.DataFrame(rows), config)
    assert list(frame.loc[frame["x"] >= 1.7, "n"]) == [1, 1, 0, 0]
    assert not frame.loc[frame["x"] >= 1.7, "in_fit"].any() and frame.loc[frame["x"] < 1.7, "in_fit"].all()
    assert frame.loc[~frame["in_fit"], "chi_prime"].isna().all()
    fit = frame[frame["in_fit"]]
    assert c_crit == critical.c_crit(fit["x"], fit["mean"], config.window, config.polyorder)
    frame, c_crit = curve(pd.DataFrame(rows), uv_config(8, (0, 1), x_min=0.0, x_max=2.0, x_fit_max=1.25))
    assert frame.loc[frame["in_fit"], "x"].max() == pytest.approx(1.2)
    # cut inside the drop: the edge points, where the filter extrapolates, are not candidates
    fitted = frame.loc[frame["in_fit"], "c"].to_numpy()
    assert c_crit in fitted[config.window // 2 : len(fitted) - config.window // 2]


def test_cli_logs_one_run_whose_csv_equals_the_metric(store, capsys, tmp_path):
    argv = [*UV, "--width", "64", "--seeds", "0", "1", "--tau_fixed", "100", "--x_min", "0.5", "--x_max", "2.2",
            "--x_fit_max", "1.8", "--out", str(tmp_path / "out"), "--experiment", "sat"]  # fmt: skip
    assert cli.main(["saturation", *argv]) == 0
    printed = capsys.readouterr().out
    assert "c_crit=" in printed and "diverged: NaN, left out of the mean" in printed
    (run,) = runs_of(store)  # one parent run, no child runs
    assert run.data.tags["phasediag.kind"] == "saturation" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["seeds"] == "0,1" and params["tau_fixed"] == "100" and params["x_fit_max"] == "1.8"
    assert params["arch"] == "uv" and params["width"] == "64" and "c" not in params and "steps" not in params
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    names = {f.path for f in MlflowClient(store).list_artifacts(run.info.run_id)}
    assert names == {"saturation.csv", "saturation_curve.csv", "saturation.png"}
    folder = download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "dl"), tracking_uri=store)
    table = pd.read_csv(os.path.join(folder, "saturation.csv"))
    frame = pd.read_csv(os.path.join(folder, "saturation_curve.csv"))
    assert len(table) == 2 * 18 and set(table["seed"]) == {0, 1}
    assert table.loc[table["diverged"], "ratio"].isna().all() and table["diverged"].any()  # c >= 4.29 diverges
    fit = frame[frame["in_fit"]]
    metric = run.data.metrics["c_crit"]
    assert metric == pytest.approx(critical.c_crit(fit["x"], fit["mean"], critical.SAVGOL_WINDOW, 3)) == pytest.approx(frame["c_crit"].iloc[0])
    assert 2**0.85 <= metric <= 2**1.15
    means = table.groupby("x")["ratio"].mean()
    np.testing.assert_allclose(frame.set_index("x")["mean"], means, rtol=1e-12)
    assert fit["c"].max() <= 3.5 and run.data.metrics["diverged_runs"] == table["diverged"].sum()
    with open(os.path.join(folder, "saturation.png"), "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--x_min", "2", "--x_max", "1"], ["x_max=1.0", "x_min=2.0"]),
        (["--x_min", "1", "--x_max", "1"], ["x_max=1.0"]),
        (["--seeds"], ["seeds is empty"]),
        (["--seeds", ""], ["seeds is empty"]),
        (["--seeds", "a", "b"], ["seeds='a'", "list of int"]),
        (["--seeds", "1", "1"], ["repeats"]),
        (["--x_step", "0"], ["x_step=0.0"]),
        (["--window", "6"], ["window=6", "odd"]),
        (["--polyorder", "11"], ["polyorder=11"]),
        (["--tau_fixed", "0"], ["tau_fixed=0"]),
        (["--tau_fixed", "ten"], ["tau_fixed='ten'"]),
        (["--tau_constant", "-5"], ["tau_constant=-5.0"]),
        (["--x_min", "0", "--x_max", "0.3"], ["4 points", "window=7"]),
        (["--variable", "ln"], ["variable='ln'", "c, log2c"]),
        (["--width", "0"], ["width=0"]),
    ],
)
def test_bad_input_fails_with_one_line_and_no_run(store, capsys, tmp_path, argv, words):
    out = tmp_path / "never"
    assert cli.main(["saturation", *UV, "--width", "8", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("phasediag: error:"), err
    for word in words:
        assert word in err
    database = Path(store.removeprefix("sqlite:///"))
    assert not out.exists() and (not database.exists() or runs_of(store) == [])


def test_tau_and_seed_parsing():
    run = RunConfig(arch="uv", depth=2, width=8, dataset="uv", batch_size=0)
    assert SaturationConfig(run=run).tau(0.5) == 400 and SaturationConfig(run=run).tau(16.0) == 13  # 12.5 -> 13
    xent = SaturationConfig(run=RunConfig(loss="xent"))
    assert xent.tau(2.0) == 50 and xent.window_steps(xent.tau(16.0)) == range(1, 12)
    assert SaturationConfig(run=run, tau_fixed=100).tau(3.0) == 100
    assert list(SaturationConfig(run=run).x[[0, 20, -1]]) == [-1.0, 1.0, 4.0] and len(SaturationConfig(run=run).x) == 51
    # the fit range: the paper's c <= 3.5 for the uv model (App. B), none for networks unless given
    assert SaturationConfig(run=run).fit_max == pytest.approx(math.log2(3.5))
    assert SaturationConfig(run=run, x_fit_max=1.5).fit_max == 1.5 and SaturationConfig(run=RunConfig()).fit_max is None
    assert SaturationConfig(run=run).params()["variable"] == "c"
    uv = {"arch": "uv", "depth": 2, "width": 8, "dataset": "uv", "batch_size": 0}
    assert SaturationConfig.from_strings({**uv, "seeds": "0..4"}).seeds == (0, 1, 2, 3, 4)
    assert SaturationConfig.from_strings({**uv, "seeds": "0, 2 5"}).seeds == (0, 2, 5)


@pytest.mark.slow
def test_mlflow_run_entry_point_leaves_one_run(store, tmp_path):
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    params = ["-P", "arch=uv", "-P", "depth=2", "-P", "width=16", "-P", "dataset=uv", "-P", "batch_size=0",
              "-P", "seeds=0 1", "-P", "tau_fixed=20", "-P", "x_min=0", "-P", "x_max=1", "-P", "accelerator=cpu",
              "-P", f"out={tmp_path / 'out'}"]  # fmt: skip
    done = subprocess.run([mlflow, "run", REPO, "-e", "saturation", "--env-manager", "local", "--experiment-name", "proj",
                           *params], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = runs_of(store, "proj")
    assert run.data.tags["phasediag.kind"] == "saturation" and "c_crit" in run.data.metrics
    assert (tmp_path / "out" / "saturation_curve.csv").is_file()
