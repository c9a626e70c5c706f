"""Optimizers, the pre-conditioned sharpness, warmup and their options: against dense linear algebra, torch.optim and
the stability thresholds on a quadratic loss."""

import dataclasses
import math

import pytest
import torch

from phasediag import cli
from phasediag.physics import hessian
from phasediag.physics.losses import mse
from phasediag.physics.stability import stability_threshold, warmup_factor
from phasediag.run import runner
from phasediag.run.config import ConfigError, RunConfig
from phasediag.run.optimizers import Adam, build_optimizer, warmup
from phasediag.search.config import SearchConfig
from phasediag.search.sweep import SweepSpec

TINY = dict(dataset="synthetic:1x4x4:64", depth=2, width=8, measure_examples=32, batch_size=16, accelerator="cpu",
            steps=4)  # fmt: skip


def tiny_net(dtype=torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).to(dtype)


def test_preconditioned_sharpness_is_the_top_eigenvalue_of_p_half_h_p_half():
    net = tiny_net()
    inputs, targets = torch.randn(20, 4, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64)
    dim = sum(p.numel() for p in net.parameters())
    p = torch.rand(dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.05
    h = hessian.dense_hessian(net, mse, inputs, targets)
    dense = torch.linalg.eigvalsh(p.rsqrt()[:, None] * h * p.rsqrt()[None, :])[-1].item()
    for method, options in (("lanczos", dict(tol=1e-12, max_iter=dim)), ("eigsh", dict(tol=1e-12))):
        eigen = hessian.top_eigenvalue(net, mse, inputs, targets, method=method, preconditioner=p, **options)
        assert eigen.value == pytest.approx(dense, rel=1e-6), method
    plain = hessian.top_eigenvalue(net, mse, inputs, targets, tol=1e-12, max_iter=dim).value
    assert plain == pytest.approx(torch.linalg.eigvalsh(h)[-1].item(), rel=1e-6) and abs(plain - dense) > 1e-3 * plain


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_with_v0_zero_is_torch_adam(optimizer):
    config = RunConfig(optimizer=optimizer, adam_v0="zero", beta1=0.8, beta2=0.95, adam_eps=1e-6, weight_decay=0.1)
    ours, theirs = tiny_net(), tiny_net()
    reference = (torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam)(
        theirs.parameters(), lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)  # fmt: skip
    mine = build_optimizer(config, list(ours.parameters()), 0.01)
    inputs, targets = torch.randn(20, 4, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64)
    for _ in range(5):
        for net, opt in ((ours, mine), (theirs, reference)):
            opt.zero_grad()
            mse(net(inputs), targets).backward()
            opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    v_hat = [s["exp_avg_sq"] / (1 - 0.95**5) for s in reference.state.values()]
    torch.testing.assert_close(mine.preconditioner(), torch.cat([(v.sqrt() + 1e-6).reshape(-1) for v in v_hat]))


def quadratic_run(optimizer: str, c: float, steps: int = 600, beta: float = 0.9) -> tuple[float, float]:
    """(L_0, L_steps) of a linear model under MSE (a quadratic loss), full batch, eta = c / lambda0; Adam with its
    pre-conditioner frozen at P_0 = |g_0| + eps (v0 = g_0^2, beta2 = 1)."""
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(32, 6, generator=generator, dtype=torch.float64), torch.randn(32, 3, generator=generator, dtype=torch.float64)
    model = torch.nn.Linear(6, 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 6, generator=generator, dtype=torch.float64))
    params = list(model.parameters())
    v0 = [g.detach() ** 2 for g in torch.autograd.grad(mse(model(inputs), targets), params)]
    adaptive = optimizer == "adam"
    p0 = torch.cat([(v.sqrt() + 1e-8).reshape(-1) for v in v0]) if adaptive else None
    lambda0 = hessian.top_eigenvalue(model, mse, inputs, targets, tol=1e-12, max_iter=18, preconditioner=p0).value
    eta = c / lambda0
    if adaptive:
        opt = Adam(params, eta, (beta, 1.0), 1e-8, v0=v0)
    else:
        opt = build_optimizer(RunConfig(optimizer=optimizer, **({} if optimizer == "sgd" else {"momentum": beta})), params, eta)
    first = mse(model(inputs), targets).item()
    for _ in range(steps):
        opt.zero_grad()
        mse(model(inputs), targets).backward()
        opt.step()
    return first, mse(model(inputs), targets).item()


@pytest.mark.parametrize("optimizer, beta", [("sgd", 0.0), ("momentum", 0.9), ("momentum", 0.5), ("nesterov", 0.9),
                                             ("adam", 0.9), ("adam", 0.0)])  # fmt: skip
def test_just_below_the_stated_threshold_converges_and_just_above_diverges(optimizer, beta):
    threshold = stability_threshold(optimizer, momentum=beta, beta1=beta)
    below, above = quadratic_run(optimizer, 0.95 * threshold, beta=beta), quadratic_run(optimizer, 1.05 * threshold, beta=beta)
    assert below[1] < below[0] and math.isfinite(below[1])
    assert not above[1] < 1e6 * above[0]  # inf or nan included


def test_stated_thresholds():
    assert stability_threshold("sgd") == 2.0
    assert stability_threshold("momentum", momentum=0.9) == pytest.approx(3.8)
    assert stability_threshold("nesterov", momentum=0.9) == pytest.approx(3.8 / 2.8)
    assert stability_threshold("adamw", beta1=0.9) == pytest.approx(38.0)  # Cohen et al. 2022: 38 / eta


def test_warmup_schedule_values():
    assert [warmup_factor(k, 4) for k in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [warmup_factor(k, 2, 0.5) for k in (1, 2, 3)] == [0.75, 1.0, 1.0]
    assert warmup_factor(1, 0) == 1.0  # the paper's constant eta
    net = tiny_net()
    config = RunConfig(warmup_steps=4, warmup_init=0.2)
    optimizer = build_optimizer(config, list(net.parameters()), 0.5)
    schedule = warmup(optimizer, config)
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([0.5 * (0.2 + 0.8 * k / 4) for k in (1, 2, 3)] + [0.5] * 3)


def test_a_warmed_up_run_trains_with_the_warmup_rates():
    """A run with warmup_steps = 2 at c: its first update is the constant-eta run's at c / 2 (same batch)."""
    init = runner.initialize(RunConfig(**{**TINY, "steps": 1}))
    warm = runner.initialize(RunConfig(**{**TINY, "steps": 1, "warmup_steps": 2}))
    half = runner.train(init, 1.0, sharpness=False).final_state
    warmed = runner.train(warm, 2.0, sharpness=False).final_state
    for name in half:
        torch.testing.assert_close(half[name], warmed[name])


def test_adam_runs_log_the_preconditioned_sharpness_and_the_search_reads_it():
    init = runner.initialize(RunConfig(**TINY, optimizer="adam"))
    p0 = runner.initial_preconditioner(init.second_moment, 1e-8)
    assert init.lambda0.value == pytest.approx(
        hessian.top_eigenvalue(init.model, mse, *init.data.measurement_set, tol=1e-4, preconditioner=p0).value, rel=1e-3)
    result = runner.train(init, 1.0)
    assert result.curvature == "preconditioned_sharpness" and "sharpness" not in result.history
    ratio = result.history["preconditioned_sharpness_ratio"]
    assert ratio.iloc[0] == 1.0 and ratio.iloc[1:].notna().all()
    assert result.eta == pytest.approx(1.0 / init.eta_curvature)  # eta_curvature null: adam's is 'update'
    assert "max_preconditioned_sharpness_ratio" in result.summary()


def test_the_update_curvature_is_u_h_u_over_g_u_from_a_dense_hessian():
    """Adam's first update with v0 = g0^2 is u = g0 / (|g0| + eps) (m_hat = g0); lambda_u = u.Hu / g.u with H and g on
    the measurement set, far below lambda_max(P_0^-1 H)."""
    init = runner.initialize(RunConfig(**TINY, optimizer="adam"))
    model, (inputs, targets) = init.model, init.data.measurement_set
    params = [p for _, p in hessian.trainable_parameters(model)]

    def flat_gradient(x, y):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(mse(model(x), y), params)]).double()

    first = flat_gradient(*next(iter(init.data.train_dataloader())))
    update = first / (first.abs() + 1e-8)
    h = hessian.dense_hessian(model, mse, inputs, targets).double()
    dense = float(update @ h @ update / (flat_gradient(inputs, targets) @ update))
    assert init.eta_curvature == pytest.approx(dense, rel=1e-4)
    assert init.eta_curvature < init.lambda0.value / 10


def linear(*, depth, width, in_shape, num_classes):
    """A factory (arch='test_optimizers:linear'): under MSE its loss is exactly quadratic in the parameters."""
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(in_shape), num_classes, bias=False))


@pytest.mark.parametrize("optimizer, extra", [("sgd", {}), ("nesterov", {"momentum": 0.9}), ("adam", {}),
                                              ("adamw", {"weight_decay": 0.05})])  # fmt: skip
def test_with_eta_by_the_update_curvature_the_first_step_raises_a_quadratic_loss_from_c_2(optimizer, extra):
    config = RunConfig(**{**TINY, "steps": 1}, arch="test_optimizers:linear", loss_set="measure", optimizer=optimizer,
                       eta_curvature="update", **extra)  # fmt: skip
    init = runner.initialize(config)
    below, above = (runner.train(init, c, sharpness=False).history["loss_ratio"].iloc[1] for c in (1.98, 2.02))
    assert below < 1 < above, (below, above)


def test_sgd_keeps_the_paper_learning_rate_and_history():
    init = runner.initialize(RunConfig(**TINY))
    result = runner.train(init, 3.0, sharpness=False)
    assert result.eta == 3.0 / init.lambda0.value and result.curvature == "sharpness" and init.second_moment is None


@pytest.mark.parametrize(
    "values, words",
    [
        ({"optimizer": "rmsprop"}, ["optimizer='rmsprop'", "sgd, momentum, nesterov, adam, adamw"]),
        ({"optimizer": "momentum", "momentum": 1.0}, ["momentum=1.0", "[0, 1)"]),
        ({"optimizer": "adam", "beta1": -0.1}, ["beta1=-0.1", "[0, 1)"]),
        ({"optimizer": "adam", "beta2": 1.0}, ["beta2=1.0", "[0, 1)"]),
        ({"optimizer": "adam", "adam_eps": 0.0}, ["adam_eps=0.0", "> 0"]),
        ({"optimizer": "adam", "adam_v0": "ones"}, ["adam_v0='ones'", "gradient, zero"]),
        ({"weight_decay": -1.0}, ["weight_decay=-1.0", ">= 0"]),
        ({"warmup_steps": -1}, ["warmup_steps=-1", ">= 0"]),
        ({"warmup_steps": 4, "warmup_init": 1.5}, ["warmup_init=1.5", "[0, 1]"]),
        ({"init_scale": 0.0}, ["init_scale=0.0", "> 0"]),
        ({"init": "uniform"}, ["init='uniform'", "normal, orthogonal"]),
        ({"eta_curvature": "top"}, ["eta_curvature='top'", "sharpness, update"]),
        ({"param": "mup", "arch": "resnet", "depth": 18}, ["param='mup'", "arch 'resnet'"]),
        ({"param": "mup", "depth": 1}, ["depth=1", "param='mup'"]),
        ({"arch": "uv", "dataset": "uv", "depth": 2, "init_scale": 1.0}, ["init_scale=1.0", "arch 'uv'"]),
        ({"momentum": 0.5}, ["momentum=0.5", "optimizer='sgd'", "no effect"]),
        ({"beta1": 0.5}, ["beta1=0.5", "no effect"]),
        ({"warmup_init": 0.5}, ["warmup_init=0.5", "warmup_steps=0"]),
    ],
)
def test_bad_values_are_refused_in_one_line(values, words):
    with pytest.raises(ConfigError) as error:
        RunConfig.from_strings({k: str(v) for k, v in values.items()})
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_batched_training_is_refused_for_other_optimizers():
    with pytest.raises(ConfigError, match="batch_c=2 is not allowed with optimizer='momentum'"):
        SearchConfig.from_strings({"optimizer": "momentum", "batch_c": 2})
    with pytest.raises(ConfigError, match="warmup_steps=3"):
        SearchConfig.from_strings({"warmup_steps": 3, "batch_c": 4})


def test_every_option_from_the_cli_a_sweep_yaml_and_python(tmp_path):
    options = {"optimizer": "adamw", "beta1": "0.8", "beta2": "0.99", "adam_eps": "1e-6", "weight_decay": "0.01",
               "adam_v0": "zero", "warmup_steps": "3", "warmup_init": "0.1", "init_scale": "1.5", "init": "orthogonal",
               "param": "mup", "eta_curvature": "sharpness"}  # fmt: skip
    _, from_cli = cli.parse(["search", *(token for k, v in options.items() for token in (f"--{k}", v))])
    spec = tmp_path / "spec.yaml"
    spec.write_text("experiment: e\nfixed: {optimizer: adamw, beta1: 0.8, beta2: 0.99, adam_eps: 1.0e-6, weight_decay: 0.01,"
                    " adam_v0: zero, warmup_init: 0.1, init_scale: 1.5, init: orthogonal, param: mup, eta_curvature: sharpness}\n"
                    "vary: {warmup_steps: [0, 3]}\n")  # fmt: skip
    with pytest.raises(ConfigError, match="warmup_init=0.1"):  # the point with warmup_steps = 0: no effect, refused
        SweepSpec.load(spec)
    spec.write_text(spec.read_text().replace("warmup_init: 0.1, ", "").replace("[0, 3]", "[1, 3]"))
    points = SweepSpec.load(spec).points
    python = RunConfig(optimizer="adamw", beta1=0.8, beta2=0.99, adam_eps=1e-6, weight_decay=0.01, adam_v0="zero",
                       warmup_steps=3, warmup_init=0.1, init_scale=1.5, init="orthogonal", param="mup",
                       eta_curvature="sharpness")  # fmt: skip
    assert from_cli.run == python
    assert [p.run.warmup_steps for p in points] == [1, 3] and points[1].run == dataclasses.replace(python, warmup_init=0.0, experiment="e")


def test_default_options_keep_the_study_names():
    plain = SearchConfig(RunConfig())
    assert not {"optimizer", "momentum", "beta1", "warmup_steps", "init_scale", "init"} & set(plain.identity())
    assert SearchConfig(RunConfig(init_scale=2.0, optimizer="sgd")).study_name == plain.study_name
    adam = SearchConfig(RunConfig(optimizer="adam"))
    assert adam.identity()["optimizer"] == "adam" and adam.study_name != plain.study_name
    assert adam.identity()["eta_curvature"] == "update"  # named, so a study of another normalisation never resumes
    assert SearchConfig(RunConfig(optimizer="adam", eta_curvature="update")).study_name == adam.study_name


def test_a_phase_diagram_against_warmup_steps(tmp_path):
    """Searches at one (d, w) swept over warmup_steps: the default (left out of the identity) comes back as 0, and the
    diagram has warmup_steps as its y axis."""
    import numpy as np
    import pandas as pd

    from phasediag.plots import phase as phase_plots
    from phasediag.reports.diagram import group_keys, summarize, with_default_options

    frame = pd.DataFrame({"depth": 4, "width": 64, "seed": [0, 1] * 3, "warmup_steps": [np.nan, np.nan, 4, 4, 16, 16],
                          "c_loss": [2.0, 2.2, 3.0, 3.2, 6.0, 6.4], "c_sharp": [3.0] * 6, "c_max": [8.0] * 6,
                          "c_barrier": [2.1] * 6})  # fmt: skip
    summary, fits = summarize(with_default_options(frame), "warmup_steps")
    assert summary["warmup_steps"].tolist() == [0, 4, 16] and summary["c_loss_mean"].tolist() == pytest.approx([2.1, 3.1, 6.2])
    _, panel = group_keys(with_default_options(frame), "warmup_steps")
    assert panel == ["depth", "width"]
    phase_plots.save(phase_plots.phase_diagram(summary, fits, "warmup_steps", panel, "warmup"), tmp_path / "w.png")
    assert (tmp_path / "w.png").stat().st_size > 1000


def test_the_c_axis_names_what_eta_was_divided_by():
    import pandas as pd

    from phasediag.plots import phase as phase_plots
    from phasediag.reports.diagram import eta_by, summarize

    assert eta_by(pd.DataFrame({"c_loss": [2.0]})) == "sharpness"  # no such param: the paper's lambda0
    assert eta_by(pd.DataFrame({"eta_curvature": ["update", "update"]})) == "update"
    assert eta_by(pd.DataFrame({"eta_curvature": ["update", None]})) == "mixed"
    frame = pd.DataFrame({"depth": 4, "width": [16, 64, 256], "seed": 0, "c_loss": [7.0, 3.5, 2.0],
                          "c_sharp": [0.9, 1.0, 1.3], "c_max": [37.0, 16.0, 14.0], "c_barrier": [37.0, 9.2, 5.3]})  # fmt: skip
    summary, fits = summarize(frame, "width")
    figure = phase_plots.phase_diagram(summary, fits, "width", ["depth"], "adam", eta_by="update")
    assert "lambda_u" in figure.axes[0].get_xlabel()


def test_an_adam_run_from_python_logs_its_preconditioned_sharpness(store):
    """The Python API takes the options like the CLI; the tracked run holds the pre-conditioned sharpness history and
    the stability threshold."""
    import phasediag
    from phasediag import tracking

    result = phasediag.run(**{k: v for k, v in TINY.items() if k != "steps"}, steps=2, optimizer="adam", c=4.0,
                           experiment="adam")  # fmt: skip
    history = tracking.histories([result.run_id], tracking.PRECONDITIONED_HISTORY_METRICS)
    ratios = history[history["metric"] == "preconditioned_sharpness_ratio"].sort_values("step")
    assert ratios["step"].tolist() == [0, 1, 2] and ratios["value"].iloc[0] == 1.0
    logged = tracking.runs("adam").iloc[0]
    assert logged["optimizer"] == "adam" and logged["stability_threshold"] == pytest.approx(38.0)
