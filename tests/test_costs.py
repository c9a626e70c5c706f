"""Where a search's time goes (costs.py) counts the right things, the estimates are the counted work, and the GPU
check's steps run (here on CPU)."""

import dataclasses
import math

import pytest
import torch

from phasediag import costs, gpu_check, tracking
from phasediag.run import runner
from phasediag.run.callbacks import Barrier
from phasediag.reports.config import SaturationConfig
from phasediag.run.config import RunConfig
from phasediag.search.study import SearchConfig, search

FCN = dict(arch="fcn", depth=3, width=16, dataset="synthetic:1x4x4:128", measure_examples=64, batch_size=32,
           log_checkpoints=False)  # fmt: skip


def test_unit_flops_follow_the_layer_sizes():
    """A loss evaluation of an FCN is 2 N sum(fan_in * fan_out) matrix-product FLOPs; a barrier is GRID of them, but
    for the first layer, which it computes at the two ends only."""
    init = runner.initialize(RunConfig(**FCN))
    unit = costs.unit_costs(init, rounds=1)
    n = len(runner.loss_examples(init)[0])
    per_example = 2 * (16 * 16 + 16 * 16 + 16 * 10)  # 4x4 inputs, width 16, 10 classes
    assert unit["loss_evaluation"].flops == n * per_example
    first_layer = 2 * 16 * 16
    assert unit["barrier"].flops == n * (len(Barrier.GRID) * (per_example - first_layer) + 2 * first_layer)
    batch = init.config.batch_size
    # forward, the weights' gradients and the inputs' gradients of every layer but the first
    assert unit["sgd_step"].flops == batch * (per_example + per_example + 2 * (16 * 16 + 16 * 10))
    assert unit["hvp"].flops > 0 and all(cost.seconds > 0 for cost in unit.values())


@pytest.mark.slow
def test_search_counts_agree_with_the_logged_runs(store):
    config = RunConfig(**FCN, experiment="counts")
    result = search(SearchConfig(config, x_max=7.0))
    init = runner.initialize(config)
    counts = costs.search_counts("counts", result.parent_run_id, init.lambda0.hvps)
    assert counts["runs"] == result.n_runs and counts["hvp"] == result.hvps + init.lambda0.hvps
    assert counts["loss_evaluation"] == counts["sgd_step"] + counts["runs"]
    children = tracking.runs("counts", parent_run_id=result.parent_run_id)
    trained_in_full = children["diverged"] == 0
    assert counts["sgd_step"] >= config.steps * trained_in_full.sum() and counts["sgd_step"] <= config.steps * len(children)
    # a bisection's barriers stop at their first point above L(theta_0): counted in full barriers, from the points
    measured = children["barrier"].notna() & (children["barrier"] < 1e300)
    assert counts["barrier"] == pytest.approx(children.loc[measured, "barrier_points"].sum() / len(Barrier.GRID))
    assert 0 < counts["barrier"] <= measured.sum() and tracking.interpolations(children["run_id"]).empty
    rows = costs.breakdown(costs.unit_costs(init, rounds=1), counts, wall=100.0)
    assert len(rows) == len(costs.KINDS) + 1 and all(len(row) == len(costs.HEADER) for row in rows)


def test_gpu_check_without_cuda_says_so_in_one_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu_check.main([]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1


@pytest.mark.slow
def test_gpu_check_steps_run_on_cpu(store, tmp_path):
    """The check's new steps are exercised here, so that GPU time is not spent finding a Python error."""
    check = gpu_check.GpuCheck(str(tmp_path), accelerator="cpu", fcn={**FCN, "steps": 4})
    rows = check.breakdown()
    assert rows[0][0].startswith("sequential bisection search") and len(rows) == 1 + len(costs.KINDS) + 1
    auto, old = check.one_search()
    assert auto[0].endswith("K=1 (auto)") and old[0].endswith("K=32 (the CUDA default before 2026-12-06)")  # auto: 1 on CPU
    assert all("c_loss=" in row[2] for row in (auto, old))
    (speed, difference) = check.tf32()
    # on CPU the CUDA flags change nothing: the two passes are the same computation
    assert difference[1] == "loss 0.0e+00, sharpness 0.0e+00" and difference[2].startswith("loss, sharpness and divergence answers equal at 16/16")
    assert math.isfinite(float(speed[1].split(" s vs ")[0]))


def test_estimates_are_the_counted_work():
    """The FCN's forward FLOPs are 2 sum(fan_in fan_out); a search's estimate grows by its loss evaluations times the
    added examples; a saturation scan is its steps, evaluations and sharpness window, per c and seed."""
    run = RunConfig(arch="fcn", depth=3, width=16, dataset="fashion_mnist", loss="mse", measure_examples=64)
    per_example = costs.flops_per_example(run)
    assert per_example["forward"] == 2 * (784 * 16 + 16 * 16 + 16 * 10)
    assert costs.cpu_flop_rate(run, per_example) > 0
    small, large = (costs.search_estimate(SearchConfig(dataclasses.replace(run, subset=n)), per_example, 1e9) for n in (1000, 2000))
    # the FCN's barrier computes its first layer at the two ends only
    first_layer = 2 * 784 * 16
    assert per_example["barrier"] == len(Barrier.GRID) * (per_example["forward"] - first_layer) + 2 * first_layer
    counts = costs.PER_SEARCH["bisect"]
    per_search = counts["runs"] * (run.steps + 1) * per_example["forward"] + counts["barrier"] * per_example["barrier"]
    assert large["flops"] - small["flops"] == pytest.approx(1000 * per_search)
    assert large["cpu_s"] == pytest.approx(large["flops"] / 1e9 + counts["runs"] * costs.CPU_REST_S)

    every_step = dataclasses.replace(run, subset=1000, steps=10, schedule="every_step")
    sharpness = 64 * (per_example["sharpness"] + costs.HVPS_PER_MEASUREMENT * per_example["hvp"])
    assert costs.run_estimate(every_step, per_example, 1e9)["flops"] == pytest.approx(
        11 * 1000 * per_example["forward"] + 10 * run.batch_size * per_example["sgd_step"] + 10 * sharpness)

    paper = dataclasses.replace(run, subset=1000, steps=60, batch_size=100, schedule="paper", loss_schedule="paper")
    # L_t at t = 0, every step of the first epoch (t <= 10), and the last step; the sharpness at t <= 10
    assert costs.run_estimate(paper, per_example, 1e9)["flops"] == pytest.approx(
        (1 + 10 + 1) * 1000 * per_example["forward"] + 60 * 100 * per_example["sgd_step"] + 10 * sharpness)

    scan = SaturationConfig(dataclasses.replace(run, subset=1000), seeds=(0, 1), x_min=0.0, x_max=0.6, x_step=0.1, tau_fixed=3,
                            tau_halfwidth=1)  # fmt: skip
    one_c = 5 * 1000 * per_example["forward"] + 4 * run.batch_size * per_example["sgd_step"] + 3 * sharpness
    assert len(scan.x) == 7 and costs.saturation_estimate(scan, per_example, 1e9)["flops"] == pytest.approx(2 * 7 * one_c)
    sparse_scan = dataclasses.replace(scan, run=dataclasses.replace(scan.run, loss_schedule="with_sharpness"))
    one_c = 4 * 1000 * per_example["forward"] + 4 * run.batch_size * per_example["sgd_step"] + 3 * sharpness  # t = 0, 2, 3, 4
    assert costs.saturation_estimate(sparse_scan, per_example, 1e9)["flops"] == pytest.approx(2 * 7 * one_c)
