"""Your own model (arch = module:factory) and data (dataset = module:loader), written outside the repository into a
folder on PYTHONPATH: every downstream path (HVP modes, Lanczos and power, batched runs, the barrier, searches,
sweeps, diagrams), the checks made before anything is created, seeding, the L0 warning, the tags."""

import hashlib
import math
import os
import subprocess
import textwrap

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import PHASEDIAG, REPO, runs_of
from phasediag import cli, tracking
from phasediag.errors import ConfigError
from phasediag.models import build_model, stem_and_head
from phasediag.models.custom import LargeInitialOutput
from phasediag.physics import hessian
from phasediag.physics.losses import LOSSES
from phasediag.run import checks, data, runner
from phasediag.run.batched import train_batched
from phasediag.run.config import RunConfig
from phasediag.run.user_data import load_user_data
from phasediag.search.config import SearchConfig
from phasediag.search.study import search

MODELS = "byo_user_models"
LOADERS = "byo_user_data"
MODEL_FILE = f'''
import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm, self.linear = nn.LayerNorm(width), nn.Linear(width, width)

    def forward(self, h):
        return h + torch.tanh(self.linear(self.norm(h)))


def small(*, depth, width, in_shape, num_classes):
    """A residual MLP with LayerNorm: flatten, embed, depth residual blocks, readout."""
    size = 1
    for n in in_shape:
        size *= n
    return nn.Sequential(nn.Flatten(), nn.Linear(size, width), *(Residual(width) for _ in range(depth)),
                         nn.LayerNorm(width), nn.Linear(width, num_classes))


def raises(*, depth, width, in_shape, num_classes):
    raise RuntimeError("the factory is broken")


def not_module(*, depth, width, in_shape, num_classes):
    return [1, 2, 3]


def no_params(*, depth, width, in_shape, num_classes):
    return nn.Flatten()


def nan(*, depth, width, in_shape, num_classes):
    net = small(depth=depth, width=width, in_shape=in_shape, num_classes=num_classes)
    with torch.no_grad():
        net[-1].weight.fill_(float("nan"))
    return net


def dropout(*, depth, width, in_shape, num_classes):
    return nn.Sequential(small(depth=depth, width=width, in_shape=in_shape, num_classes=num_classes), nn.Dropout(0.1))


def loud(*, depth, width, in_shape, num_classes):
    net = small(depth=depth, width=width, in_shape=in_shape, num_classes=num_classes)
    with torch.no_grad():
        net[-1].weight.mul_(100.0)
    return net
'''
LOADER_FILE = '''
import torch
from torch.utils.data import Dataset


def tensors():
    g = torch.Generator().manual_seed(0)
    return torch.randn(96, 1, 4, 4, generator=g), torch.randint(0, 3, (96,), generator=g)


def regression():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(80, 6, generator=g)
    return x, torch.tanh(x[:, :2])


class Pairs(Dataset):
    def __len__(self):
        return 40

    def __getitem__(self, i):
        return torch.full((1, 2, 2), float(i)), i % 4


def dataset():
    return Pairs()


def raises():
    raise OSError("no such file: /nowhere/train.npz")


def wrong():
    return "not data"
'''


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """The model and loader files, in a folder outside the repository."""
    folder = tmp_path_factory.mktemp("user-code")
    (folder / f"{MODELS}.py").write_text(MODEL_FILE)
    (folder / f"{LOADERS}.py").write_text(LOADER_FILE)
    return folder


@pytest.fixture(autouse=True)
def on_path(user_folder, monkeypatch):
    monkeypatch.syspath_prepend(str(user_folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(user_folder), os.environ.get("PYTHONPATH")])))
    yield
    data.load.cache_clear()
    load_user_data.cache_clear()


def tiny(**changes) -> RunConfig:
    options = dict(arch=f"{MODELS}:small", depth=2, width=8, dataset=f"{LOADERS}:tensors", measure_examples=32,
                   batch_size=16, steps=4, log_checkpoints=False)  # fmt: skip
    return RunConfig(**{**options, **changes})


def test_same_seed_same_theta0_whatever_the_global_rng():
    def theta0(seed: int) -> list[torch.Tensor]:
        net = build_model(f"{MODELS}:small", 2, 8, in_shape=(1, 4, 4), num_classes=3, seed=seed)
        return [p.detach().clone() for p in net.parameters()]

    torch.manual_seed(123)
    first = theta0(5)
    state = torch.random.get_rng_state()
    torch.manual_seed(999)
    torch.rand(17)
    again = theta0(5)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, theta0(6)))
    torch.manual_seed(123)
    assert torch.equal(torch.random.get_rng_state(), state)  # building left the caller's RNG where it was


def test_every_downstream_path_works_on_a_custom_model():
    init = runner.initialize(tiny(hvp_mode="cached"))
    model, loss_fn = init.model, LOSSES["mse"]
    inputs, targets = init.data.measurement_set
    assert stem_and_head(model) is None  # the FCN-only barrier shortcut does not apply

    # lambda0: every HVP mode and both solvers agree with the dense Hessian's top eigenvalue
    spectrum = torch.linalg.eigvalsh(hessian.dense_hessian(model, loss_fn, inputs, targets).double())
    exact, largest = spectrum[-1].item(), spectrum[spectrum.abs().argmax()].item()
    assert math.isclose(init.lambda0.value, exact, rel_tol=1e-3)
    for mode in ("jvp", "double_backward"):
        value = hessian.top_eigenvalue(model, loss_fn, inputs, targets, method="lanczos", tol=1e-5, hvp_mode=mode).value
        assert math.isclose(value, exact, rel_tol=1e-3), mode
    power = runner.initialize(tiny(sharpness_method="power", hvp_mode="jvp"))  # the eigenvalue largest in magnitude
    assert math.isclose(power.lambda0.value, largest, rel_tol=0.05)

    # sequential runs with the barrier, and the same c's batched with torch.func: the same trajectories
    cs = [1.0, 40.0]
    sequential = [runner.train(init, c, barrier=True) for c in cs]
    batched = train_batched(init, cs, barrier=True)
    for one, many in zip(sequential, batched):
        assert one.diverged == many.diverged
        np.testing.assert_allclose(one.history["loss"], many.history["loss"], rtol=1e-4)
        np.testing.assert_allclose(one.history["sharpness"].dropna(), many.history["sharpness"].dropna(), rtol=1e-2)
    calm = sequential[0]
    assert not calm.diverged and math.isfinite(calm.barrier)
    # the barrier's curve ends where training started and stopped (its loss set is the training set)
    start_loss = loss_fn(model(init.data.inputs), init.data.targets).item()
    end = torch.func.functional_call(model, calm.final_state, (init.data.inputs,))
    assert math.isclose(calm.barrier_curve[0], start_loss, rel_tol=1e-5)
    assert math.isclose(calm.barrier_curve[-1], loss_fn(end, init.data.targets).item(), rel_tol=1e-4)


@pytest.mark.parametrize(
    "arch, words",
    [
        (f"{MODELS}:raises", "the factory raised RuntimeError: the factory is broken"),
        (f"{MODELS}:not_module", "returned a list, not a torch.nn.Module"),
        (f"{MODELS}:no_params", "no trainable parameters"),
        (f"{MODELS}:nan", "not finite"),
        (f"{MODELS}:dropout", "Dropout"),
        (f"{MODELS}:missing", "has no attribute 'missing'"),
        ("byo_no_such_module:small", "no module named 'byo_no_such_module'"),
    ],
)
def test_a_bad_factory_is_one_line_naming_it_and_creates_nothing(store, tmp_path, capsys, arch, words):
    code = cli.main(["search", "--arch", arch, "--depth", "2", "--width", "8", "--dataset", f"{LOADERS}:tensors",
                     "--measure_examples", "32", "--batch_size", "16", "--x_max", "6"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"arch={arch!r}" in err and words in err, err
    assert not (tmp_path / "mlruns.db").exists() and not (tmp_path / "optuna.db").exists()  # no run, no study


@pytest.mark.parametrize(
    "dataset, words",
    [
        (f"{LOADERS}:raises", "the loader raised OSError: no such file: /nowhere/train.npz"),
        (f"{LOADERS}:wrong", "the loader returned a str"),
        (f"{LOADERS}:missing", "has no attribute 'missing'"),
    ],
)
def test_a_bad_loader_is_one_line_naming_it_and_creates_nothing(store, tmp_path, capsys, dataset, words):
    code = cli.main(["run", "--arch", "fcn", "--depth", "2", "--width", "8", "--dataset", dataset])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"dataset={dataset!r}" in err and words in err, err
    assert not (tmp_path / "mlruns.db").exists()


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"subset": 200}, "subset=200 is not allowed: dataset 'byo_user_data:tensors' has 96 training examples"),
        ({"batch_size": 97}, "batch_size=97 is not allowed: larger than the 96 training examples"),
        ({"measure_examples": 0}, "measure_examples=0 (the paper's m=2048 for mse) is not allowed"),
        ({"dataset": f"{LOADERS}:regression", "loss": "xent"}, "cross-entropy needs class indices"),
    ],
)
def test_your_data_is_sized_like_the_built_in_datasets(changes, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        checks.check_before_runs(tiny(**changes))


@pytest.mark.parametrize("changes", [{"param": "ntp"}, {"bias": True}, {"output": "zero_readout"}])
def test_options_of_the_built_in_models_are_refused_for_a_factory(changes):
    with pytest.raises(ConfigError, match=f"for arch '{MODELS}:small' \\(your own model\\)"):
        tiny(**changes)


def test_loaders_tensors_floats_and_datasets():
    x, y = data.load(f"{LOADERS}:tensors")
    assert x.shape == (96, 1, 4, 4) and y.shape == (96, 3) and torch.equal(y.sum(1), torch.ones(96))
    assert torch.allclose(x.flatten(1).mean(1), torch.zeros(96), atol=1e-5)  # per_image standardisation
    raw, targets = data.load(f"{LOADERS}:regression", standardization="none")
    g = torch.Generator().manual_seed(1)
    expected = torch.randn(80, 6, generator=g)
    assert torch.equal(raw, expected) and torch.equal(targets, torch.tanh(expected[:, :2]))
    x, y = data.load(f"{LOADERS}:dataset", standardization="none", subset=10)
    assert x.shape == (10, 1, 2, 2) and x[7].eq(7.0).all() and y.argmax(1).tolist() == [i % 4 for i in range(10)]


def test_large_output_warns_once_and_run_logs_it_with_the_tags(store, user_folder):
    config = tiny(arch=f"{MODELS}:loud", experiment="loud")
    with pytest.warns(LargeInitialOutput, match=f"arch='{MODELS}:loud'.*above 10") as caught:
        run_id, _ = runner.run_one(config)
    assert len([w for w in caught if issubclass(w.category, LargeInitialOutput)]) == 1
    run = MlflowClient(store).get_run(run_id)
    inputs, _ = runner.initialize(tiny()).data.measurement_set
    net = build_model(config.arch, 2, 8, in_shape=(1, 4, 4), num_classes=3, seed=0)
    with torch.no_grad():
        expected = net(inputs).pow(2).mean().item()
    assert expected > 10 and math.isclose(run.data.metrics["init_output_sq"], expected, rel_tol=1e-5)

    digest = hashlib.sha256((user_folder / f"{MODELS}.py").read_bytes()).hexdigest()[:16]
    assert run.data.tags[tracking.MODEL_TAG] == config.arch and run.data.tags[tracking.MODEL_SOURCE_TAG] == digest
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == config.dataset and str(user_folder / f"{LOADERS}.py") in dataset.dataset.source
    assert '"examples": 96' in dataset.dataset.profile and len(dataset.dataset.digest) == 16


def test_the_examples_mixer_has_an_output_of_order_one_and_teacher_loads(monkeypatch):
    monkeypatch.chdir(REPO)  # the working folder is importable: examples/ is found there
    x, y = data.load("examples.data:teacher", standardization="none")
    assert x.shape == (4096, 32) and y.shape == (4096, 4) and math.isclose(y.std().item(), 1.0, rel_tol=1e-5)
    for width in (16, 64):
        net = build_model("examples.models:mixer", 2, width, in_shape=(1, 28, 28), num_classes=10, seed=0)
        x = data.standardize(torch.rand(256, 1, 28, 28))
        with torch.no_grad():
            assert 0.01 < net(x).pow(2).mean().item() < 10


def test_a_batched_search_of_a_custom_model_on_custom_data_logs_the_tags_on_parent_and_children(store):
    config = SearchConfig(run=tiny(experiment="byo-search"), x_max=6, batch_c=2)
    result = search(config)
    assert result.batch_c == 2 and all(math.isfinite(result.constants[name]) for name in ("c_loss", "c_max"))
    found = runs_of(store, "byo-search")
    assert len(found) == result.n_runs + 1
    assert {r.data.tags[tracking.MODEL_TAG] for r in found} == {f"{MODELS}:small"}


@pytest.mark.slow
def test_a_two_width_sweep_from_the_command_line_draws_its_diagram(store, tmp_path):
    spec = tmp_path / "byo.yaml"
    spec.write_text(textwrap.dedent(f"""
        experiment: byo
        fixed: {{arch: "{MODELS}:small", dataset: "{LOADERS}:tensors", depth: 2, measure_examples: 32, batch_size: 16,
                x_max: 6, log_checkpoints: false}}
        vary: {{width: [8, 16]}}
    """))  # fmt: skip
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    swept = subprocess.run([PHASEDIAG, "sweep", str(spec)], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert swept.returncode == 0, swept.stderr[-2000:]
    drawn = subprocess.run([PHASEDIAG, "diagram", "--experiment", "byo", "--out", "figures"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert (tmp_path / "figures" / "phase_diagram_width.png").stat().st_size > 10_000
    assert len({r.data.params["width"] for r in runs_of(store, "byo") if r.data.tags.get("phasediag.kind") == "search"}) == 2


@pytest.mark.slow
def test_the_example_mixer_runs_from_the_repository_root(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlruns.db"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([PHASEDIAG, "run", "--arch", "examples.models:mixer", "--depth", "1", "--width", "8",
                           "--dataset", "synthetic:1x8x8:64", "--measure_examples", "32", "--batch_size", "16",
                           "--steps", "2", "--log_checkpoints", "false"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished" in done.stdout
