"""The run, Hessian, search and batched paths on a CUDA device, against the CPU (run by `make gpu-check`)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from phasediag.physics import hessian
from phasediag.physics.losses import mse
from phasediag.run import batched, runner
from phasediag.run.config import RunConfig
from phasediag.search.study import SearchConfig, search
from phasediag.vocabulary import CONSTANTS
from test_batched import CASES, SMALL, TINY, _same_history

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(autouse=True)
def full_precision():
    """No TF32: the comparisons below are with float32 on the CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _pair(case: str) -> tuple[runner.Initialization, runner.Initialization]:
    config = RunConfig(**{**SMALL, **CASES[case][0]})
    return runner.initialize(dataclasses.replace(config, accelerator="cpu")), runner.initialize(dataclasses.replace(config, accelerator="gpu"))


@pytest.mark.parametrize("case", ["fcn-sp-mse", "fcn-ntp-xent", "cnn", "uv"])
def test_a_run_on_the_gpu_follows_the_cpu_run(case):
    cpu, gpu = _pair(case)
    assert gpu.device.type == "cuda" and gpu.lambda0.value == pytest.approx(cpu.lambda0.value, rel=1e-3)
    c = CASES[case][1][1]
    a, b = runner.train(cpu, c, barrier=True), runner.train(gpu, c, barrier=True)
    assert a.diverged == b.diverged
    np.testing.assert_allclose(b.history["loss"], a.history["loss"], rtol=1e-3)
    np.testing.assert_allclose(b.history["sharpness"], a.history["sharpness"], rtol=1e-2)
    assert b.barrier == pytest.approx(a.barrier, rel=1e-2, abs=1e-5)


def test_lanczos_on_the_gpu_matches_the_dense_hessian():
    _, gpu = _pair("fcn-sp-mse")
    inputs, targets = gpu.data.measurement_set
    eigen = hessian.top_eigenvalue(gpu.model, mse, inputs.cuda(), targets.cuda(), tol=1e-6, max_iter=200,
                                   generator=torch.Generator("cuda").manual_seed(0))  # fmt: skip
    dense = torch.linalg.eigvalsh(hessian.dense_hessian(gpu.model.cpu(), mse, inputs, targets))[-1].item()
    assert eigen.value == pytest.approx(dense, rel=1e-4)


@pytest.mark.parametrize("case", ["fcn-sp-mse", "fcn-ntp-xent", "cnn", "uv"])
def test_batched_equals_sequential_on_the_gpu(case):
    _, gpu = _pair(case)
    cs = CASES[case][1]
    sequential = [runner.train(gpu, c, barrier=True) for c in cs]
    for seq, bat in zip(sequential, batched.train_batched(gpu, cs, barrier=True)):
        assert seq.diverged == bat.diverged
        # Batched and single matrix products round differently on the GPU, and a diverging copy amplifies that
        # (fcn-ntp-xent at c = 512, loss x1000 per step: 2.6e-4 apart at L = 5e7; with logits of order 1e4 the
        # saturated softmax puts the sharpness 1 % apart at L = 2e4). Compared while the loss is below 1e3.
        sane = (seq.history["loss"] < 1e3) & (bat.history["loss"] < 1e3)
        _same_history(dataclasses.replace(seq, history=seq.history[sane]), dataclasses.replace(bat, history=bat.history[sane]),
                      gpu.config.sharpness_tol, rtol=1e-3)  # fmt: skip


def test_a_search_on_the_gpu_finds_the_cpu_constants(store):
    on = {"cpu": search(SearchConfig.from_strings({**TINY, "experiment": "cpu", "accelerator": "cpu"})),
          "gpu": search(SearchConfig.from_strings({**TINY, "experiment": "gpu", "accelerator": "gpu", "batch_c": "4"}))}  # fmt: skip
    for name in CONSTANTS:  # within one grid step (0.1 in log2 c)
        value, other = on["cpu"].constants[name], on["gpu"].constants[name]
        assert math.isnan(value) == math.isnan(other) and (math.isnan(value) or abs(math.log2(value / other)) <= 0.1 + 1e-9)
