"""One tracked run: what it logs, that it is reproducible, that divergence is a result, that bad input leaves no run."""

import copy
import dataclasses
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, history, runs_of
from phasediag import cli
from phasediag.physics import hessian
from phasediag.run import runner
from phasediag.run.callbacks import DivergenceStop, Measurements, interpolated_losses
from phasediag.run.config import RunConfig
from phasediag.physics.losses import mse

SMALL = ["--arch", "fcn", "--depth", "3", "--width", "16", "--dataset", "synthetic:1x4x4:128", "--measure_examples", "64",
         "--batch_size", "32", "--steps", "10", "--seed", "0"]  # fmt: skip
RUN_PARAMS = ("arch depth width param dataset subset loss c seed batch_size steps measure_examples sharpness_method "
              "sharpness_tol bias output output_scale barrier experiment").split()  # fmt: skip


def run_cli(*argv: str) -> int:
    return cli.main(["run", *SMALL, *argv])


def test_one_run_logs_params_histories_and_lambda0(store):
    assert run_cli("--c", "2", "--experiment", "e") == 0
    (run,) = runs_of(store, "e")
    assert set(RUN_PARAMS) <= set(run.data.params)
    assert run.data.tags["phasediag.kind"] == "run" and run.info.status == "FINISHED"
    for name in ("loss", "loss_ratio", "sharpness", "sharpness_ratio", "eta_sharpness", "accuracy"):
        assert len(history(store, run.info.run_id, name)) == 11, name
    assert len(history(store, run.info.run_id, "batch_loss")) == 10
    for name in ("lambda0", "eta", "diverged", "max_loss_ratio", "max_sharpness_ratio", "hvps"):
        assert name in run.data.metrics
    # lambda0 against the dense Hessian of the same network on the same measurement set.
    init = runner.initialize(_config())
    dense = torch.linalg.eigvalsh(hessian.dense_hessian(init.model, mse, *init.data.measurement_set))[-1].item()
    assert run.data.metrics["lambda0"] == pytest.approx(dense, rel=1e-3)
    assert run.data.metrics["eta"] == pytest.approx(2 / run.data.metrics["lambda0"])
    assert history(store, run.info.run_id, "sharpness")[0] == pytest.approx(run.data.metrics["lambda0"])


def _config(**changes) -> RunConfig:
    values = {k.removeprefix("--"): v for k, v in zip(SMALL[::2], SMALL[1::2])}
    return RunConfig.from_strings({**values, **changes})


def test_loss_schedule_measures_l_t_on_its_steps_and_still_stops_a_divergence():
    """loss_schedule=paper: L_t and the accuracy at the schedule's steps, the last step and wherever the sharpness is
    measured, equal to the every-step run's there; the mini-batch loss at every step; a divergence between two
    measurements is seen in the mini-batch loss, at most one step later."""
    changes = {"subset": "32", "measure_examples": "32", "batch_size": "8", "steps": "60", "schedule": "every_step"}
    init = runner.initialize(_config(**changes))  # 4 steps per epoch
    sparse_init = dataclasses.replace(init, config=dataclasses.replace(init.config, loss_schedule="paper"))
    dense, sparse = runner.train(init, 1.0), runner.train(sparse_init, 1.0, measure_at=lambda t: t in (13, 30))
    keep = [t for t in range(61) if t <= 10 or t in (13, 30) or t % 4 == 0 and t // 4 >= 10 or t == 60]
    assert sparse.history["loss"].dropna().index.tolist() == keep == sparse.history["accuracy"].dropna().index.tolist()
    assert np.allclose(sparse.history.loc[keep, "loss"], dense.history.loc[keep, "loss"], rtol=1e-6)
    assert sparse.history["batch_loss"].iloc[1:].notna().all()
    assert np.allclose(sparse.history["batch_loss"], dense.history["batch_loss"], equal_nan=True)
    assert sparse.summary()["max_loss_ratio"] == pytest.approx(dense.history.loc[keep[1:], "loss_ratio"].max())

    hot = runner.train(init, 300.0, sharpness=False)
    measurements = Measurements(init.data.measurement_set, mse, init.lambda0, sharpness=False, loss_schedule=lambda t: False)
    divergence = DivergenceStop(measurements)
    runner.fit(init, runner.EarlyTraining(copy.deepcopy(init.model), mse, hot.eta), [measurements, divergence])
    assert hot.diverged and divergence.diverged and [row["step"] for row in measurements.rows if "loss" in row] == [0]
    assert hot.history.index[-1] <= measurements.rows[-1]["step"] <= hot.history.index[-1] + 1 < 60


def test_same_command_twice_gives_identical_histories(store):
    assert run_cli("--c", "3", "--experiment", "a") == 0
    assert run_cli("--c", "3", "--experiment", "b") == 0
    (a,), (b,) = runs_of(store, "a"), runs_of(store, "b")
    for name in ("loss", "sharpness", "batch_loss"):
        assert history(store, a.info.run_id, name) == history(store, b.info.run_id, name)


def test_divergence_is_a_result(store, capsys):
    assert run_cli("--c", "1000", "--experiment", "d") == 0
    (run,) = runs_of(store, "d")
    assert run.data.metrics["diverged"] == 1 and run.info.status == "FINISHED"
    losses = history(store, run.info.run_id, "loss")
    assert len(losses) < 11 and not (losses[-1] < 1e5)  # stopped at the first L_t > K
    assert "diverged" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--arch", "mlp"], ["arch='mlp'", "fcn"]),
        (["--arch", "cnn", "--depth", "6", "--dataset", "synthetic:1x8x8:64"], ["depth=6", "5, 7, 10"]),
        (["--width", "0"], ["width=0", ">= 1"]),
        (["--c", "0"], ["c=0.0", "> 0"]),
        (["--c", "-1"], ["c=-1.0"]),
        (["--steps", "0"], ["steps=0"]),
        (["--loss", "hinge"], ["loss='hinge'", "mse"]),
        (["--param", "mu"], ["param='mu'", "ntp, mup"]),
        (["--output", "big"], ["output='big'", "centered"]),
        (["--dataset", "imagenet"], ["dataset='imagenet'", "fashion_mnist"]),
        (["--measure_examples", "1000"], ["measure_examples=1000", "128"]),
        (["--dataset", "mnist", "--data_dir", "."], ["mnist", "train-images-idx3-ubyte", "MNIST/raw"]),
        (["--dataset", "cifar10", "--data_dir", "."], ["cifar10", "data_batch_1", "cifar-10-batches-py"]),
        (["--dataset", "mnist", "--data_dir", "nowhere"], ["data_dir='nowhere'", "no such folder"]),
    ],
)
def test_bad_input_fails_fast_with_one_line_and_no_run(store, capsys, argv, words):
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("phasediag: error:")
    for word in words:
        assert word in err
    assert runs_of(store) == []


def test_unreachable_tracking_server_leaves_nothing(store, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert run_cli() == 2
    assert "unreachable" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/missing/dir/mlruns.db")
    assert run_cli() == 2
    assert not (tmp_path / "missing").exists()


def test_first_sgd_step_is_theta_minus_eta_grad(store):
    """The module's update against a hand computation on the first minibatch."""
    init = runner.initialize(_config())
    batch_inputs, batch_targets = next(iter(init.data.train_dataloader()))
    model = init.model
    grads = torch.autograd.grad(mse(model(batch_inputs), batch_targets), list(model.parameters()))
    eta = 1.5 / init.lambda0.value
    expected = {n: p.detach() - eta * g for (n, p), g in zip(model.named_parameters(), grads)}
    one_step = runner.train(dataclasses.replace(init, config=_config(steps="1")), 1.5, sharpness=False)
    for name, value in expected.items():
        torch.testing.assert_close(one_step.final_state[name], value, rtol=1e-5, atol=1e-6)


def test_barrier_matches_interpolation_of_logged_checkpoints(store):
    init = runner.initialize(_config())
    for c in (0.5, 6.0):
        result = runner.train(init, c, sharpness=False, barrier=True)
        start = {n: p.detach() for n, p in init.model.named_parameters()}
        model = copy.deepcopy(init.model)
        model.load_state_dict(result.final_state)
        curve = interpolated_losses(model, start, mse, *init.data.measurement_set, np.linspace(0, 1, 101))
        if result.diverged:
            assert result.barrier == math.inf
        else:
            assert result.barrier == pytest.approx(curve.max() - curve[0], abs=1e-7)
            assert result.barrier >= 0
    small = runner.train(init, 0.25, sharpness=False, barrier=True)
    assert small.barrier == 0.0  # a small step only descends along the straight path


@pytest.mark.parametrize("changes", [dict(param="sp"), dict(param="ntp", bias=True), dict(output_scale=0.5),
                                     dict(arch="cnn", depth=5, width=4, dataset="synthetic:1x8x8:128")])
def test_interpolated_losses_match_the_loss_at_each_interpolated_point(changes, monkeypatch):
    """The FCN's fast path (its first layer's outputs interpolated, not recomputed) and the generic path both give
    L((1 - s) theta_0 + s theta_T) as a model holding those parameters computes it, on data of several chunks."""
    from phasediag.run import callbacks

    monkeypatch.setattr(callbacks, "EVAL_CHUNK", 48)  # 128 examples: chunks of 48, 48, 32
    init = runner.initialize(dataclasses.replace(_config(), **changes))
    inputs, targets = init.data.training_set
    end = runner.train(init, 4.0, sharpness=False).final_state
    model = copy.deepcopy(init.model)
    model.load_state_dict(end)
    grid = np.linspace(0, 1, 11)
    curve = interpolated_losses(model, init.initial_state, mse, inputs, targets, grid)
    for s, value in zip(grid, curve):
        point = copy.deepcopy(init.model)
        with torch.no_grad():
            for name, p in point.named_parameters():
                p.copy_((1 - s) * init.initial_state[name] + s * end[name])
            assert value == pytest.approx(mse(point(inputs), targets).item(), rel=1e-5)


def test_sharpness_is_measured_on_the_measurement_set_only(store):
    """Same measurement set for every c; the batch order is fixed by the seed."""
    init = runner.initialize(_config())
    first = [b[0] for b in init.data.train_dataloader()]
    again = [b[0] for b in init.data.train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    other = runner.initialize(_config(seed="1"))
    assert not torch.equal(other.data.measurement_set[0], init.data.measurement_set[0])


@pytest.mark.slow
def test_mlflow_run_entry_point_leaves_one_run(store, tmp_path):
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    params = ["-P", "dataset=synthetic:1x4x4:128", "-P", "depth=3", "-P", "measure_examples=64",
              "-P", "c=1000", "-P", "batch_size=32", "-P", f"data_dir={tmp_path}"]  # fmt: skip
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "mlflow"), "run", REPO, "--env-manager", "local",
                           "--experiment-name", "proj", *params, "-P", "width=16", "-P", "optimizer=momentum", "-P", "momentum=0.5",
                           "-P", "warmup_steps=1", "-P", "eta_curvature=update"], env=env, capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = runs_of(store, "proj")
    assert run.data.metrics["diverged"] == 1 and run.data.tags["phasediag.kind"] == "run"
    assert {k: run.data.params[k] for k in ("optimizer", "momentum", "warmup_steps", "eta_curvature")} == {
        "optimizer": "momentum", "momentum": "0.5", "warmup_steps": "1", "eta_curvature": "update"}
    assert run.data.metrics["eta_curvature"] != run.data.metrics["lambda0"]
    bad = subprocess.run([os.path.join(os.path.dirname(sys.executable), "mlflow"), "run", REPO, "--env-manager", "local",
                          "--experiment-name", "proj", *params, "-P", "width=0"], env=env, capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert bad.returncode != 0 and "width=0" in bad.stderr
    runs = {r.info.run_id: r for r in runs_of(store, "proj")}
    assert len(runs) == 2 and runs[run.info.run_id].info.status == "FINISHED"  # the good run untouched
    (failed,) = [r for r in runs.values() if r.info.run_id != run.info.run_id]  # MLflow's own run for the bad call
    assert failed.info.status == "FAILED" and "width=0" in failed.data.tags["phasediag.end_reason"]


# ---- fidelity to the paper: L_t on the training set, lambda0's estimator, Lanczos residuals, output scale

def test_loss_is_on_the_training_set_and_sharpness_on_the_measurement_set():
    init = runner.initialize(_config())
    inputs, targets = init.data.training_set
    assert len(inputs) == 128 and len(init.data.measurement_set[0]) == 64
    result = runner.train(init, 1.0, sharpness=False)
    with torch.no_grad():
        assert result.history["loss"].iloc[0] == pytest.approx(mse(init.model(inputs), targets).item(), rel=1e-6)
        final = copy.deepcopy(init.model)
        final.load_state_dict(result.final_state)
        assert result.history["loss"].iloc[-1] == pytest.approx(mse(final(inputs), targets).item(), rel=1e-6)
    # the measurement-set loss stays available as an option
    on_m = runner.initialize(_config(loss_set="measure"))
    with torch.no_grad():
        expected = mse(on_m.model(on_m.data.measurement_set[0]), on_m.data.measurement_set[1]).item()
    assert runner.train(on_m, 1.0, sharpness=False).history["loss"].iloc[0] == pytest.approx(expected, rel=1e-6)


def test_power_method_measures_lambda0_with_power_iteration_too():
    init = runner.initialize(_config(sharpness_method="power"))
    inputs, targets = init.data.measurement_set
    again = hessian.top_eigenvalue(init.model, mse, inputs, targets, method="power",
                                   generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert init.lambda0.hvps == 20 and init.lambda0.value == pytest.approx(again.value, rel=1e-6)
    dense = torch.linalg.eigvalsh(hessian.dense_hessian(init.model, mse, inputs, targets))[-1].item()
    assert init.lambda0.value <= dense * (1 + 1e-5)  # a Rayleigh quotient: never above the top eigenvalue


def test_unconverged_lanczos_is_logged_and_warned_once_per_run():
    from phasediag.run.callbacks import LanczosNotConverged

    with pytest.warns(LanczosNotConverged) as caught:
        init = runner.initialize(_config(sharpness_tol="1e-15", steps="4"))
        result = runner.train(init, 1.0)
    messages = [str(w.message) for w in caught if issubclass(w.category, LanczosNotConverged)]
    assert sum("lambda0" in m for m in messages) == 1 and sum("step" in m for m in messages) == 1, messages
    residuals = result.history["sharpness_residual"]
    assert residuals.notna().all() and (residuals > 1e-15).any()
    assert result.summary()["sharpness_residual_max"] == pytest.approx(residuals.max())


def test_output_norm_sets_the_initial_output_norm_to_s():
    """App. H.1: f_s = s f / ||f(theta_0)||, ||.|| the per-example norm averaged over the measurement set."""
    from phasediag.models.wrappers import mean_output_norm

    plain = runner.initialize(_config())
    scaled = runner.initialize(_config(output_norm="0.3"))
    inputs = scaled.data.measurement_set[0]
    assert mean_output_norm(scaled.model, inputs) == pytest.approx(0.3, rel=1e-5)
    ratio = 0.3 / mean_output_norm(plain.model, inputs)
    with torch.no_grad():
        torch.testing.assert_close(scaled.model(inputs), ratio * plain.model(inputs), rtol=1e-5, atol=1e-7)
    assert scaled.lambda0.value == pytest.approx(ratio**2 * plain.lambda0.value, rel=0.2)  # H ~ alpha^2 J J^T at f ~ 0


@pytest.mark.parametrize(
    "changes, words",
    [({"output_norm": "0"}, ["output_norm=0.0", "> 0"]), ({"output_norm": "1", "output": "centered"}, ["output_norm", "plain"]),
     ({"loss_set": "test"}, ["loss_set='test'", "train, measure"])],
)  # fmt: skip
def test_new_fields_are_validated(changes, words):
    from phasediag.run.config import ConfigError

    with pytest.raises(ConfigError) as error:
        _config(**changes)
    assert all(word in str(error.value) for word in words)
