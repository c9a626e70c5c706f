"""K learning rates as one batched model give what K sequential runs give: histories, sharpness, divergence,
barriers, constants; and a batched search logs what a sequential one logs."""

import math

import numpy as np
import pytest
import torch

from conftest import history, runs_of
from phasediag.physics import batched as physics
from phasediag.physics import hessian
from phasediag.physics.critical import constants_on_grid, trial_answers
from phasediag.physics.losses import mse
from phasediag.run import batched, runner
from phasediag.run.config import RunConfig
from phasediag.search.study import SearchConfig, search

# L_t on the measurement set, where these c values were chosen to diverge; fcn-sp-mse-train checks the training set
SMALL = dict(dataset="synthetic:1x4x4:128", measure_examples=64, batch_size=32, steps=6, loss_set="measure")
# (config, c values): the last one diverges at once, except for cnn and the training-set case; except for fcn-sp-xent
# and cnn, the one before it mid-run
CASES = {
    "fcn-sp-mse": (dict(arch="fcn", depth=3, width=16, param="sp", loss="mse"), [2, 16, 90.51, 512]),
    "fcn-sp-mse-train": (dict(arch="fcn", depth=3, width=16, param="sp", loss="mse", loss_set="train"), [2, 16, 90.51, 512]),
    "fcn-ntp-mse": (dict(arch="fcn", depth=3, width=16, param="ntp", loss="mse"), [2, 16, 90.51, 512]),
    "fcn-sp-xent": (dict(arch="fcn", depth=3, width=16, param="sp", loss="xent"), [2, 16, 90.51, 512]),
    "fcn-ntp-xent": (dict(arch="fcn", depth=3, width=16, param="ntp", loss="xent"), [2, 16, 90.51, 512]),
    "cnn": (dict(arch="cnn", depth=5, width=4, dataset="synthetic:1x8x8:128"), [2, 64, 512]),
    "uv": (dict(arch="uv", depth=2, width=8, dataset="uv", batch_size=0, measure_examples=0), [2, 4, 5.66, 32]),
}


def _same_history(seq: runner.RunResult, bat: runner.RunResult, tol: float, rtol: float = 1e-5) -> None:
    assert list(bat.history.index) == list(seq.history.index)
    for column in ("loss", "batch_loss", "accuracy"):
        np.testing.assert_allclose(bat.history[column], seq.history[column], rtol=rtol, err_msg=column)
    # two Lanczos runs stopped at residual tol may differ by about tol (relative)
    np.testing.assert_allclose(bat.history["sharpness"], seq.history["sharpness"], rtol=2 * tol, err_msg="sharpness")


@pytest.mark.parametrize("case", list(CASES))
def test_batched_runs_equal_sequential_runs(case):
    changes, cs = CASES[case]
    init = runner.initialize(RunConfig(**{**SMALL, **changes}))
    sequential = [runner.train(init, c, barrier=True) for c in cs]
    together = batched.train_batched(init, cs, barrier=True)
    assert [r.diverged for r in sequential] == [r.diverged for r in together]
    if case not in ("fcn-sp-mse-train", "cnn"):  # these need not diverge at these c (the Myrtle CNN dies, not diverges)
        assert sequential[-1].diverged and (case == "fcn-sp-xent" or sequential[-2].diverged and len(sequential[-2].history) > 2)
    for seq, bat in zip(sequential, together):
        assert bat.eta == seq.eta
        _same_history(seq, bat, init.config.sharpness_tol)
        assert (bat.barrier == seq.barrier == math.inf) or bat.barrier == pytest.approx(seq.barrier, rel=1e-5, abs=1e-7)
    answers = [[trial_answers(r.history["loss_ratio"].to_numpy(), r.history["sharpness_ratio"].to_numpy(),
                              r.history["loss"].to_numpy(), r.barrier) for r in runs] for runs in (sequential, together)]  # fmt: skip
    constants = [constants_on_grid(np.array(cs), {q: np.array([a[q] for a in runs]) for q in runs[0]}) for runs in answers]
    np.testing.assert_equal(constants[0], constants[1])  # NaN (not reached) equals NaN
    for name in sequential[0].final_state:
        torch.testing.assert_close(together[0].final_state[name], sequential[0].final_state[name], rtol=1e-5, atol=1e-7)


def test_per_copy_plans_and_early_sharpness_stop():
    init = runner.initialize(RunConfig(**SMALL, **CASES["fcn-sp-mse"][0]))
    cs = [2.0, 40.0, 40.0]
    together = batched.train_batched(init, cs, sharpness=[True, True, False], barrier=[False, True, False], sharpness_until=1.0)
    alone = runner.train(init, 40.0, sharpness_until=1.0, barrier=True)
    _same_history(alone, together[1], init.config.sharpness_tol)
    assert together[1].hvps == alone.hvps and together[1].barrier == pytest.approx(alone.barrier, rel=1e-5)
    assert together[2].history["sharpness"].iloc[1:].isna().all() and together[2].hvps == 0
    assert together[0].barrier is None and together[2].barrier is None


def test_batched_lanczos_matches_dense_hessians_per_copy():
    """Each copy's top eigenvalue against the dense Hessian of that copy alone; converged copies leave the batch."""
    init = runner.initialize(RunConfig(**SMALL, **{**CASES["fcn-sp-mse"][0], "width": 5}))
    inputs, targets = init.data.measurement_set
    params = physics.stack(init.model, 3)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in params.values():
            t.mul_(torch.tensor([1.0, 1.3, 0.7]).view(-1, *([1] * (t.dim() - 1))))
            t[1] += 0.05 * torch.randn(t.shape[1:], generator=generator)
    op = physics.BatchedHessian(init.model, mse, inputs, targets, params, chunk_size=48)
    copies = torch.arange(3)
    start = physics.start_vectors(op, [None] * 3, [torch.Generator().manual_seed(k) for k in range(3)])
    eigens = physics.lanczos(op, copies, start, tol=1e-6, max_iter=200)
    for k, eigen in enumerate(eigens):
        model = init.model
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(params[name][k])
        dense = torch.linalg.eigvalsh(hessian.dense_hessian(model, mse, inputs, targets))[-1].item()
        assert eigen.value == pytest.approx(dense, rel=1e-4) and eigen.residual <= 1e-6
    # one copy's products equal the sequential operator's on the same vector
    v = torch.randn(op.dim, generator=generator)
    reference = hessian.HessianOperator(model, mse, inputs, targets, mode="jvp")(v)
    torch.testing.assert_close(op(v[None], torch.tensor([2]))[0], reference, rtol=1e-4, atol=1e-6)


TINY = {"arch": "fcn", "depth": "3", "width": "16", "dataset": "synthetic:1x4x4:128", "measure_examples": "64",
        "batch_size": "32", "x_max": "7", "seed": "0"}  # fmt: skip
PARENT_METRICS = ("lambda0", "c_loss", "c_sharp", "c_max", "c_barrier", "n_runs", "non_monotone")


def _parent_and_children(uri: str, experiment: str):
    runs = runs_of(uri, experiment)
    (parent,) = [r for r in runs if r.data.tags["phasediag.kind"] == "search"]
    kids = {r.data.params["c"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return parent, kids


@pytest.mark.slow
def test_batched_grid_search_logs_what_the_sequential_one_logs(store):
    grid = {**TINY, "mode": "grid", "x_min": "5.5", "x_max": "7", "resolution": "0.2"}  # diverges inside, mid-round
    sequential = search(SearchConfig.from_strings({**grid, "experiment": "s"}))
    together = search(SearchConfig.from_strings({**grid, "experiment": "b", "batch_c": "3"}))
    assert math.isfinite(sequential.constants["c_max"]) and sequential.n_runs % 3 != 0
    assert together.constants == sequential.constants and together.n_runs == sequential.n_runs
    (p_seq, k_seq), (p_bat, k_bat) = _parent_and_children(store, "s"), _parent_and_children(store, "b")
    for name in PARENT_METRICS:
        assert p_bat.data.metrics[name] == p_seq.data.metrics[name], name
    assert p_bat.data.metrics["hvps"] == pytest.approx(p_seq.data.metrics["hvps"], rel=0.05)
    assert set(k_bat) == set(k_seq) and len(k_seq) == sequential.n_runs
    for c, kid in k_seq.items():
        twin = k_bat[c]
        assert {**twin.data.params, "experiment": "s"} == kid.data.params and set(twin.data.metrics) == set(kid.data.metrics)
        assert twin.data.tags["phasediag.x"] == kid.data.tags["phasediag.x"]
        for name in ("loss", "batch_loss"):
            np.testing.assert_allclose(history(store, twin.info.run_id, name), history(store, kid.info.run_id, name), rtol=1e-5)
        artifacts = [sorted(a.path for a in _artifacts(store, r.info.run_id)) for r in (kid, twin)]
        assert artifacts[0] == artifacts[1]


def _artifacts(uri: str, run_id: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found, folders = [], [None]
    while folders:
        for item in client.list_artifacts(run_id, folders.pop()):
            (folders if item.is_dir else found).append(item.path if item.is_dir else item)
    return found


@pytest.mark.slow
def test_batched_bisection_finds_the_same_constants(store):
    sequential = search(SearchConfig.from_strings({**TINY, "experiment": "s"}))
    together = search(SearchConfig.from_strings({**TINY, "experiment": "b", "batch_c": "4"}))
    assert together.constants == sequential.constants
    parent, kids = _parent_and_children(store, "b")
    assert len(kids) == together.n_runs and parent.data.metrics["c_max"] == sequential.constants["c_max"]
    assert all(k.data.tags["phasediag.kind"] == "run" and k.info.status == "FINISHED" for k in kids.values())
