"""The command line is derived from the dataclasses: allowed values listed, bad input refused in one line with exit
2 before anything is created, MLproject in agreement, --help without heavy imports."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, runs_of
from phasediag import cli, progress
from phasediag.run.config import ConfigError, RunConfig, flat_fields
from phasediag.search.config import SearchConfig
from phasediag.vocabulary import ARCHS, HVP_MODES

TINY_RUN = ["--arch", "fcn", "--depth", "2", "--width", "8", "--dataset", "synthetic:1x4x4:64", "--measure_examples",
            "32", "--batch_size", "16", "--accelerator", "cpu"]  # fmt: skip


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("phasediag: error: "), err
    return err


def nothing_created(folder: Path, store: str) -> None:
    assert not (folder / "optuna.db").exists()
    assert not Path(store.removeprefix("sqlite:///")).exists() or runs_of(store) == []


def test_every_command_lists_its_allowed_values(capsys):
    for name, (cls, _) in cli.COMMANDS.items():
        with pytest.raises(SystemExit) as done:
            cli.main([name, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        for field in flat_fields(cls):
            assert field in text, (name, field)
    with pytest.raises(SystemExit):
        cli.main(["search", "--help"])
    text = capsys.readouterr().out
    assert "{" + ",".join(HVP_MODES) + "}" in text
    arch = text.split("--arch ARCH", 2)[2].split("--depth")[0]  # arch also takes an import path: its description lists them
    assert all(name in arch for name in ARCHS), arch


def test_help_imports_nothing_heavy():
    """`phasediag --help` stays fast because building the parser loads no torch, Lightning, MLflow, Optuna, pandas."""
    code = ("import sys; from phasediag import cli; cli.build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'mlflow', 'optuna', 'pandas', 'numpy'}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize(
    "argv, words",
    [
        (["run", "--arch", "mlp"], ["arch='mlp'", "use one of " + ", ".join(ARCHS)]),
        (["run", "--depth", "four"], ["depth='four'", "integer"]),
        (["run", "--output_scale", "0"], ["output_scale=0.0", "> 0"]),
        (["run", "--output_scale", ".nan"], ["output_scale=nan"]),
        (["run", "--output_sigma", "x"], ["output_sigma='x'", "or null"]),
        (["run", "--wdith", "8"], ["unknown option --wdith"]),
        (["search", "--c", "2"], ["unknown option --c"]),
        (["search", "--loss_schedule", "paper"], ["unknown option --loss_schedule"]),  # a search reads L_t every step
        (["run", "--loss_schedule", "sparse"], ["loss_schedule='sparse'", "every_step, paper"]),
        (["search", "--x_start", "12", "--x_max", "10"], ["x_start=12.0", "[x_min, x_max]"]),
        (["search", "--mode", "random"], ["mode='random'", "bisect, grid"]),
        (["diagram"], ["--experiment is required"]),
        (["diagram", "--experiment", "e", "--x", "seed"], ["x='seed'", "auto, width, depth"]),
        (["uv", "--widths", "2", "four"], ["widths='four'", "list of int"]),
    ],
)
def test_bad_values_are_one_line_and_exit_2(store, tmp_path, capsys, argv, words):
    assert cli.main(argv) == 2
    err = one_line_error(capsys)
    for word in words:
        assert word in err
    nothing_created(tmp_path, store)


def test_values_are_converted_as_declared():
    config = SearchConfig.from_strings({"eps": "none", "output_sigma": "0.5", "bias": "true", "depth": "3"})
    assert config.eps is None and config.run.output_sigma == 0.5 and config.run.bias is True and config.run.depth == 3
    assert SearchConfig.from_strings({"eps": "null", "x_max": 7}).eps is None  # YAML's null, and an int for a float
    _, trajectories = cli.parse(["trajectories", "--experiment", "e", "--c", "1.5", "2", "--search", "s"])
    assert trajectories.c == (1.5, 2.0) and trajectories.search == "s" and trajectories.out is None
    _, saturation = cli.parse(["saturation", "--seeds", "0..3", "--tau_fixed", "none"])
    assert saturation.seeds == (0, 1, 2, 3) and saturation.tau_fixed is None
    with pytest.raises(ConfigError, match="unknown parameter 'c'"):
        SearchConfig.from_strings({"c": "2"})


def test_python_callers_get_the_same_checks_as_the_cli():
    with pytest.raises(ConfigError, match="hvp_mode='fast' is not allowed: use one of " + ", ".join(HVP_MODES)):
        RunConfig(hvp_mode="fast")


def fake_fashion_mnist(root: Path, n: int, truncate: bool = False) -> None:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split, count in (("train", n), ("t10k", 5)):
        images = raw / f"{split}-images-idx3-ubyte"
        images.write_bytes(bytes([0, 0, 8, 3]) + b"".join(k.to_bytes(4, "big") for k in (count, 28, 28)) + bytes(count * 784))
        labels = raw / f"{split}-labels-idx1-ubyte"
        labels.write_bytes(bytes([0, 0, 8, 1]) + count.to_bytes(4, "big") + bytes(count))
    if truncate:
        images = raw / "train-images-idx3-ubyte"
        images.write_bytes(images.read_bytes()[:-100])


FMNIST = ["--dataset", "fashion_mnist", "--depth", "2", "--width", "8", "--accelerator", "cpu"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--subset", "300"], ["subset=300", "200 training examples"]),
        (["--batch_size", "201", "--measure_examples", "100"], ["batch_size=201", "200 training examples"]),
        (["--subset", "100", "--batch_size", "101", "--measure_examples", "50"], ["batch_size=101", "100 training"]),
        (["--measure_examples", "0", "--batch_size", "0"], ["measure_examples=0 (the paper's m=2048 for mse)", "at most 200"]),
    ],
)
@pytest.mark.parametrize("command", ["run", "search", "saturation"])
def test_sizes_larger_than_the_data_are_refused_before_any_run_or_study(store, tmp_path, capsys, command, argv, words):
    fake_fashion_mnist(tmp_path / "d", 200)
    assert cli.main([command, *FMNIST, "--data_dir", str(tmp_path / "d"), "--out" if command == "saturation" else "--seed",
                     str(tmp_path / "o") if command == "saturation" else "0", *argv]) == 2  # fmt: skip
    err = one_line_error(capsys)
    for word in words:
        assert word in err
    nothing_created(tmp_path, store)
    assert not (tmp_path / "o").exists()


def test_a_truncated_idx_file_is_named(store, tmp_path, capsys):
    fake_fashion_mnist(tmp_path / "d", 200, truncate=True)
    assert cli.main(["search", *FMNIST, "--data_dir", str(tmp_path / "d"), "--measure_examples", "50", "--batch_size", "0"]) == 2
    err = one_line_error(capsys)
    assert "train-images-idx3-ubyte is truncated or corrupt" in err and "156716 bytes, its header says 156816" in err
    nothing_created(tmp_path, store)


def test_a_search_or_sweep_with_bad_values_leaves_no_study_and_no_run(store, tmp_path, capsys):
    assert cli.main(["search", *TINY_RUN, "--output_scale", "0"]) == 2
    assert "output_scale=0.0" in one_line_error(capsys)
    assert cli.main(["search", *TINY_RUN, "--measure_examples", "65"]) == 2
    assert "measure_examples=65" in one_line_error(capsys)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"experiment": "s", "fixed": {"arch": "fcn", "dataset": "synthetic:1x4x4:64",
                                    "measure_examples": 32, "batch_size": 16}, "vary": {"depth": [2, 3], "output_scale": [1.0, 0.0]}}))  # fmt: skip
    assert cli.main(["sweep", str(spec)]) == 2
    assert "output_scale=0.0" in one_line_error(capsys)
    spec.write_text(yaml.safe_dump({"experiment": "s", "fixed": {"dataset": "synthetic:1x4x4:64", "subset": 65}}))
    assert cli.main(["sweep", str(spec)]) == 2
    assert "subset=65" in one_line_error(capsys)
    nothing_created(tmp_path, store)


def test_sweep_yaml_is_checked_by_the_declared_types(store, tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("experiment: s\nfixed: {arch: mlp}\n")
    assert cli.main(["sweep", str(spec)]) == 2
    assert "arch='mlp' is not allowed: use one of " + ", ".join(ARCHS) in one_line_error(capsys)
    spec.write_text("experiment: s\nvary: {depth: [2, two]}\n")
    assert cli.main(["sweep", str(spec)]) == 2
    assert "depth='two'" in one_line_error(capsys)
    spec.write_bytes(bytes(range(256)))
    assert cli.main(["sweep", str(spec)]) == 2
    assert "is not a text file" in one_line_error(capsys)
    nothing_created(tmp_path, store)


def test_out_must_be_a_writable_folder(store, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for out, words in ((tmp_path / "file", "is an existing file"), (tmp_path / "file" / "sub", "is not a writable folder")):
        assert cli.main(["uv", "--widths", "2", "--inits", "2", "--out", str(out), "--log", "false"]) == 2
        assert words in one_line_error(capsys)
        assert cli.main(["diagram", "--experiment", "e", "--out", str(out)]) == 2
        assert words in one_line_error(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_out_in_a_read_only_folder_is_refused(store, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert cli.main(["uv", "--out", str(locked / "uv"), "--log", "false"]) == 2
    assert "is not a writable folder" in one_line_error(capsys)


def test_gpu_without_cuda_is_refused(store, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["search", *TINY_RUN[:-2], "--accelerator", "gpu"]) == 2
    err = one_line_error(capsys)
    assert "accelerator='gpu'" in err and "CUDA is not available" in err
    nothing_created(tmp_path, store)


def test_mlproject_agrees_with_the_cli():
    """Every entry point runs the `phasediag` command of its name; any declared parameter is an option (or the
    sweep's spec) of that command, with the dataclass's default; every command has an entry point."""
    project = yaml.safe_load(Path(REPO, "MLproject").read_text())
    commands = {}
    for entry, body in project["entry_points"].items():
        words = body["command"].split()
        assert words[:2] == ["phasediag", words[1]] and words[1] in cli.COMMANDS, entry
        cls = cli.COMMANDS[words[1]][0]
        commands[words[1]] = entry
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, declared in (body.get("parameters") or {}).items():
            assert name in flat_fields(cls), f"{entry}: -P {name} is no option of phasediag {words[1]}"
            if "default" in declared and name in fields:
                assert str(declared["default"]) == str(fields[name].default), f"{entry}: {name} default"
            assert "{" + name + "}" in body["command"] or name not in fields or fields[name].default is dataclasses.MISSING
    assert set(commands) == set(cli.COMMANDS) and commands["run"] == "main"


def test_progress_bars_only_on_a_terminal():
    with progress.bar(total=3, desc="x") as bar:  # pytest captures stderr: not a terminal
        assert bar.disable


@pytest.mark.slow
def test_mlflow_run_passes_parameters_through(store, tmp_path):
    """The reduced MLproject: MLflow appends undeclared -P as --key value; `phasediag search` gets them all."""
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    params = [arg for pair in zip(TINY_RUN[::2], TINY_RUN[1::2]) for arg in ("-P", f"{pair[0][2:]}={pair[1]}")]
    done = subprocess.run([mlflow, "run", REPO, "-e", "search", "--env-manager", "local", "--experiment-name", "proj",
                           *params, "-P", "x_max=3", "-P", "output_sigma=none", "-P", "experiment=proj"],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    parents = [r for r in runs_of(store, "proj") if r.data.tags.get("phasediag.kind") == "search"]
    assert len(parents) == 1 and parents[0].data.params["width"] == "8" and parents[0].data.params["x_max"] == "3"
    bad = subprocess.run([mlflow, "run", REPO, "-e", "main", "--env-manager", "local", "-P", "arch=mlp"], env=env,
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)  # fmt: skip
    assert bad.returncode != 0 and "phasediag: error: arch='mlp' is not allowed: use one of" in bad.stderr


def test_importing_the_package_changes_no_global_state():
    """No logger level, warning filter or matplotlib backend is set by importing phasediag (only cli.main configures)."""
    code = '''
import importlib, logging, pkgutil, warnings
import jsonargparse, lightning.pytorch, matplotlib.figure, mlflow, optuna, pandas, scipy.signal, scipy.special, sqlalchemy, submitit, torch, torchvision, tqdm, yaml
import phasediag
def state():
    levels = {n: l.level for n, l in logging.root.manager.loggerDict.items() if isinstance(l, logging.Logger) and l.level}
    return list(warnings.filters), levels, dict.get(matplotlib.rcParams, "backend")
before = state()
# search.study (and sweep and bench, which import it) still sets warning filters for its heartbeat threads at import:
# they go with the trial loop's move to study.optimize (#13 item 4).
later = ("phasediag.search.study", "phasediag.search.sweep", "phasediag.bench")
names = [m.name for m in pkgutil.walk_packages(phasediag.__path__, "phasediag.") if m.name not in later]
for name in names:
    importlib.import_module(name)
after = state()
print(len(names), before[0] == after[0], {k: v for k, v in after[1].items() if before[1].get(k) != v}, before[2] == after[2])
'''
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    count, *same = done.stdout.split(maxsplit=1)[0], done.stdout.split(maxsplit=1)[1].strip()
    assert int(count) > 20 and same == ["True {} True"], done.stdout
