"""The Python API (phasediag.api): light import, the CLI's options and errors, one study for one search however its
options are spelt (Python, CLI, `mlflow run -P`, sweep YAML), quiet calls, figures and tables returned."""

import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import phasediag
from phasediag import cli
from phasediag.run.config import RunConfig, parse
from phasediag.search.config import SearchConfig
from phasediag.search.sweep import SweepSpec

REPO = Path(__file__).resolve().parents[1]
TINY = {"arch": "fcn", "depth": 2, "width": 8, "dataset": "synthetic:1x4x4:64", "measure_examples": 32, "batch_size": 16,
        "steps": 3, "accelerator": "cpu", "log_checkpoints": False}  # fmt: skip
HEAVY = ("torch", "lightning", "mlflow", "optuna", "pandas", "numpy", "matplotlib")


def python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    environ.pop("MLFLOW_RUN_ID", None)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=environ, capture_output=True, text=True, timeout=600)


def test_import_is_light_and_the_calls_stay_bound(tmp_path):
    """`import phasediag` loads none of the heavy packages; `run` and `search` stay the API's functions after the
    subpackages of the same names are imported."""
    code = f"""
import sys, time
start = time.perf_counter()
import phasediag
seconds = time.perf_counter() - start
heavy = [m for m in {HEAVY!r} if m in sys.modules]
import phasediag.run.config, phasediag.search.ledger  # a submodule not imported yet: the attributes stay the calls
print(seconds, heavy, callable(phasediag.run), callable(phasediag.search))
"""
    done = python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, rest = done.stdout.split(" ", 1)
    assert rest.strip() == "[] True True"
    assert float(seconds) < 2.0  # about 0.15 s on 2 busy cores; torch alone takes several


def test_numbers_are_coerced_by_the_declared_type():
    run = RunConfig(width=8.0, c=2, output_sigma=1, dataset="synthetic")
    assert (type(run.width), type(run.c), type(run.output_sigma)) == (int, float, float)
    assert run == RunConfig(width=8, c=2.0, output_sigma=1.0, dataset="synthetic")
    assert SearchConfig(run=run, x_max=5).study_name == SearchConfig(run=run, x_max=5.0).study_name
    assert parse(RunConfig, {"width": "8", "c": "2"}) == parse(RunConfig, {"width": 8.0, "c": 2}) == RunConfig(width=8)
    for bad, words in (({"width": 8.5}, "width=8.5 is not allowed: use an integer"),
                       ({"c": "two"}, "c='two' is not allowed: use a number")):  # fmt: skip
        with pytest.raises(phasediag.ConfigError, match=words):
            RunConfig(**bad)


@pytest.mark.parametrize("x_max, width", [(5, 8), (5.0, 8.0)])
def test_python_cli_mlflow_and_yaml_name_the_same_study(tmp_path, monkeypatch, x_max, width):
    """One search, its options spelt as a Python call, a command line, `mlflow run -P` (the command MLflow builds
    from MLproject) and a sweep YAML: one study name. The integer and the float forms agree too."""
    from mlflow.projects import _project_spec

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    options = {**TINY, "width": width, "x_max": x_max, "experiment": "same"}
    python_config = parse(SearchConfig, options)  # what phasediag.search(**options) builds
    direct = SearchConfig(run=RunConfig(**{k: v for k, v in options.items() if k != "x_max"}), x_max=x_max)
    argv = [arg for name, value in options.items() for arg in (f"--{name}", str(value))]
    _, cli_config = cli.parse(["search", *argv])
    entry = _project_spec.load_project(str(REPO)).get_entry_point("search")
    command = entry.compute_command({k: str(v) for k, v in options.items()}, str(tmp_path))
    words = shlex.split(command)
    assert words[:2] == ["phasediag", "search"]
    _, mlflow_config = cli.parse(words[1:])
    spec = tmp_path / "spec.yaml"
    fixed = {k: v for k, v in options.items() if k != "experiment"}
    spec.write_text(yaml.safe_dump({"experiment": "same", "fixed": fixed, "vary": {"seed": [0]}}))
    yaml_config = SweepSpec.load(spec).points[0]
    dict_config = SweepSpec.from_dict({"experiment": "same", "fixed": fixed, "vary": {"seed": [0]}}).points[0]
    names = {c.study_name for c in (python_config, direct, cli_config, mlflow_config, yaml_config, dict_config)}
    assert len(names) == 1, names
    assert names == {SearchConfig(run=RunConfig(**{**TINY, "experiment": "same"}), x_max=5.0).study_name}


def nothing_created(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == []


@pytest.mark.parametrize(
    "call, argv",
    [
        (lambda: phasediag.run(width=0), ["run", "--width", "0"]),
        (lambda: phasediag.run(depth="four"), ["run", "--depth", "four"]),
        (lambda: phasediag.run(wdith=8), None),
        (lambda: phasediag.search(**TINY, x_start=12.0, x_max=10), ["search", "--x_start", "12", "--x_max", "10"]),
        (lambda: phasediag.run(**{**TINY, "subset": 1000}), ["run", *(f"--{k}={v}" for k, v in {**TINY, "subset": 1000}.items())]),
        (lambda: phasediag.diagram("e", x="seed"), ["diagram", "--experiment", "e", "--x", "seed"]),
        (lambda: phasediag.results("nothing"), None),
        (lambda: phasediag.sweep({"experiment": "e", "fixed": {"c": 2}}), None),
    ],
)
def test_bad_input_raises_the_package_error_with_the_cli_line(store, tmp_path, capsys, call, argv):
    """One exception type (a ValueError) for options, data sizes and a missing store; the CLI's message; nothing
    created."""
    with pytest.raises(phasediag.ConfigError) as raised:
        call()
    assert isinstance(raised.value, ValueError) and "\n" not in str(raised.value)
    if argv is not None:
        assert cli.main(argv) == 2
        assert capsys.readouterr().err.strip() == f"phasediag: error: {raised.value}"
    nothing_created(tmp_path)


def test_data_and_tracking_errors_are_the_package_error():
    from phasediag import tracking
    from phasediag.run import data

    assert issubclass(data.DataError, phasediag.ConfigError) and issubclass(data.DataError, FileNotFoundError)
    assert issubclass(tracking.TrackingError, phasediag.ConfigError) and issubclass(tracking.TrackingError, RuntimeError)


QUIET_RUN = """
import json, logging, phasediag
result = phasediag.run(**{tiny}, c=1.5)
lightning = logging.getLogger("lightning.pytorch")
print(json.dumps({{"run_id": result.run_id, "c": result.c, "lambda0": result.lambda0, "eta": result.eta,
                  "diverged": result.diverged, "steps": result.history.index.tolist(),
                  "columns": sorted(result.history.columns), "root_handlers": len(logging.getLogger().handlers),
                  "lightning_level": lightning.level}}))
"""


@pytest.mark.slow
def test_run_returns_its_result_and_prints_nothing_of_lightnings(tmp_path):
    """In a fresh interpreter (Lightning installs its own handler there): no banner, tip or warning on stdout or
    stderr; no handler added to the root logger; the result is the tracked run's."""
    from conftest import runs_of

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    done = python(QUIET_RUN.format(tiny=TINY), tmp_path, MLFLOW_TRACKING_URI=uri)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = done.stdout.splitlines()
    result = json.loads(line)
    for noise in ("GPU available", "TPU", "Tip", "LeafSpec", "max_steps", "Trainer", "lightning"):
        assert noise not in done.stderr, (noise, done.stderr)
    assert result["root_handlers"] == 0 and result["lightning_level"] == logging.INFO  # Lightning's own, restored
    assert result["steps"] == [0, 1, 2, 3] and {"loss", "sharpness", "loss_ratio"} <= set(result["columns"])
    assert result["eta"] == pytest.approx(1.5 / result["lambda0"]) and result["diverged"] is False
    (run,) = runs_of(uri)
    assert run.info.run_id == result["run_id"] and float(run.data.params["c"]) == 1.5
    assert run.data.metrics["lambda0"] == pytest.approx(result["lambda0"])


@pytest.mark.slow
def test_search_results_and_trajectories(store, tmp_path):
    """A search from Python: its constants, censored flags and trained runs; asking again trains nothing; the
    experiment's results table holds it; its trajectories come back as a Figure and tables."""
    from matplotlib.figure import Figure

    from phasediag import tracking

    options = {**TINY, "x_max": 4, "experiment": "api"}
    found = phasediag.search(**options)
    assert set(found.censored) == {"c_loss", "c_sharp", "c_barrier"}
    assert found.c_loss <= found.c_max and found.n_runs == len(found.runs) > 0
    assert set(found.runs["run_id"]) == set(tracking.runs("api", parent_run_id=found.parent_run_id)["run_id"])
    again = phasediag.search(**{**options, "x_max": 4.0, "width": 8.0})
    assert again.parent_run_id == found.parent_run_id and again.constants == found.constants
    assert len(tracking.runs("api")) == found.n_runs
    table = phasediag.results("api")
    assert len(table) == 1 and table.loc[0, "study"] == found.study_name
    assert table.loc[0, "c_max"] == pytest.approx(found.c_max)
    drawn = phasediag.trajectories("api", log=False, out=str(tmp_path / "figs"))
    (figure,) = drawn.figures.values()
    assert isinstance(figure, Figure) and len(figure.axes) == 3
    assert set(drawn.tables["trajectories"]["run_id"]) <= set(found.runs["run_id"])
    assert all(path.is_file() for path in drawn.files)


def test_diagram_returns_figures_and_warns_of_a_search_done_twice(store, tmp_path, caplog):
    """Two parent runs of one study (the same search done twice): results and diagram say so, and count it once."""
    from matplotlib.figure import Figure
    from test_diagram import log_fake_search

    for depth, width, seed in ((2, 8, 0), (2, 8, 0), (2, 16, 0)):
        log_fake_search("twice", depth, width, seed, kids=False)
    with caplog.at_level(logging.WARNING, logger="phasediag.reports.diagram"):
        table = phasediag.results("twice")
    assert len(table) == 2 and "1 duplicate parent run(s) of 1 search(es) (the same search done twice" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="phasediag.reports.diagram"):
        drawn = phasediag.diagram("twice", log=False)
    assert "twice-fcn-d2-w8-s0" in caplog.text
    assert set(drawn.figures) == {"phase_diagram_width", "relations_width", "barrier_width"}
    assert all(isinstance(f, Figure) for f in drawn.figures.values()) and drawn.run_id is None
    assert drawn.tables["phase_diagram_width"]["c_loss_n"].tolist() == [1, 1]
    assert sorted(p.name for p in (tmp_path / "out" / "twice").glob("*.png")) == sorted(f"{n}.png" for n in drawn.figures)


@pytest.mark.slow
def test_cli_then_python_search_of_your_own_model_is_one_study(store, tmp_path, monkeypatch):
    """`phasediag search --arch examples.models:mixer ...` then phasediag.search(arch="examples.models:mixer", ...)
    with the same options: one study, the second call trains nothing (it resumes the finished search) and returns the
    constants the command line found. `examples` is found on PYTHONPATH, as a user's own module would be."""
    from phasediag import tracking

    options = {**TINY, "arch": "examples.models:mixer", "depth": 1, "dataset": "synthetic:1x8x8:64", "x_max": 4,
               "experiment": "own"}  # fmt: skip
    argv = [arg for name, value in options.items() for arg in (f"--{name}", str(value))]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(Path(sys.executable).parent / "phasediag"), "search", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (parent,) = tracking.searches("own").to_dict("records")
    trained = set(tracking.runs("own")["run_id"])
    assert f"search {parent['study']}:" in done.stdout and len(trained) == parent["n_runs"] > 0
    monkeypatch.syspath_prepend(str(REPO))
    found = phasediag.search(**options)
    assert found.study_name == parent["study"] and found.parent_run_id == parent["run_id"]
    assert set(tracking.runs("own")["run_id"]) == trained == set(found.runs["run_id"])
    for name in ("c_loss", "c_sharp", "c_max", "c_barrier"):
        assert found.constants[name] == pytest.approx(parent[name], nan_ok=True)
    assert found.lambda0 == pytest.approx(parent["lambda0"])
