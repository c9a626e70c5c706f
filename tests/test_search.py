"""The search over c and the sweep, end to end on synthetic data: grid vs bisection, resume, kill, many workers."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, runs_of
from phasediag import cli
from phasediag.run.config import ConfigError
from phasediag.search.study import SearchConfig, search
from phasediag.search.sweep import SweepSpec

TINY = {"arch": "fcn", "depth": "3", "width": "16", "dataset": "synthetic:1x4x4:128", "measure_examples": "64",
        "batch_size": "32", "x_max": "7", "seed": "0"}  # fmt: skip
PHASEDIAG = os.path.join(os.path.dirname(sys.executable), "phasediag")


def tiny(**changes: str) -> SearchConfig:
    return SearchConfig.from_strings({**TINY, **changes})


def children(uri: str, parent: str):
    return [r for r in runs_of(uri) if r.data.tags.get("mlflow.parentRunId") == parent]


def test_bisection_agrees_with_the_grid_and_logs_parent_and_children(store):
    bisect = search(tiny(experiment="b"))
    grid = search(tiny(experiment="g", mode="grid"))
    for name in ("c_loss", "c_sharp", "c_max", "c_barrier"):
        a, b = bisect.constants[name], grid.constants[name]
        assert math.isfinite(a) and abs(math.log2(a) - math.log2(b)) <= 0.1 + 1e-9, (name, a, b)
    assert bisect.n_runs < grid.n_runs and bisect.hvps < grid.hvps / 3
    (parent,) = [r for r in runs_of(store, "b") if r.data.tags["phasediag.kind"] == "search"]
    for name in ("lambda0", "c_loss", "c_sharp", "c_max", "c_barrier", "n_runs", "hvps"):
        assert name in parent.data.metrics
    assert parent.data.params["mode"] == "bisect" and parent.info.status == "FINISHED"
    kids = children(store, parent.info.run_id)
    assert len(kids) == bisect.n_runs and all(k.data.tags["phasediag.kind"] == "run" for k in kids)
    assert {k.data.metrics["lambda0"] for k in kids} == {parent.data.metrics["lambda0"]}  # one init, reused

    # Provenance: the checkout's commit and MLflow's source tags on every run; the dataset once, on the parent.
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    for r in (parent, *kids):
        assert r.data.tags["mlflow.source.git.commit"] == head
        assert {"mlflow.user", "mlflow.source.name", "mlflow.source.type", "mlflow.project.entryPoint"} <= set(r.data.tags)
    (dataset,) = parent.inputs.dataset_inputs
    assert dataset.dataset.name == TINY["dataset"] and len(dataset.dataset.digest) == 16
    assert not any(k.inputs.dataset_inputs for k in kids)
    client = MlflowClient(store)
    assert client.get_experiment_by_name("b").tags["mlflow.experimentKind"] == "custom_model_development"

    # theta_0 once, on the parent; each child has its final.pt and points to the parent's theta_0.
    def files(run_id: str) -> set[str]:
        return {f.path for f in client.list_artifacts(run_id, "checkpoints")}

    assert files(parent.info.run_id) == {"checkpoints/initial.pt"}
    for k in kids:
        assert files(k.info.run_id) == {"checkpoints/final.pt"}
        assert k.data.tags["phasediag.theta0"] == f"runs:/{parent.info.run_id}/checkpoints/initial.pt"


def test_same_search_again_resumes_and_trains_nothing(store):
    first = search(tiny())
    again = search(tiny())
    assert again.study_name == first.study_name and again.parent_run_id == first.parent_run_id
    assert again.constants == first.constants
    assert len(children(store, first.parent_run_id)) == first.n_runs


@pytest.mark.slow
def test_killed_worker_is_retried_and_the_search_completes(store, tmp_path):
    """SIGKILL a search mid-trial, re-run it: same constants as an uninterrupted search, no RUNNING run left."""
    argv = [PHASEDIAG, "search", *[f"--{k}={v}" for k, v in TINY.items()], "--heartbeat=1", "--grace=3", "--experiment=k"]
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/optuna.db")
    name = tiny(experiment="k").study_name

    def trials():
        try:
            return optuna.load_study(study_name=name, storage=storage).trials
        except KeyError:  # not created yet
            return []

    def training(now) -> bool:  # a trial is running and its MLflow child run exists
        return any(t.state.name == "RUNNING" and "run_id" in t.user_attrs for t in now)

    for attempt in range(3):  # kill it while a trial runs; a trial may finish between our look and the kill: retry
        worker = subprocess.Popen(argv, cwd=tmp_path, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and worker.poll() is None:
            time.sleep(0.2)
            now = trials()
            if sum(t.state.name == "COMPLETE" for t in now) >= 3 * (attempt + 1) and training(now):
                break
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        if training(trials()):
            break
    else:
        pytest.fail("could not kill the search while a trial was running")
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    uninterrupted = search(tiny(experiment="u"))
    resumed = optuna.load_study(study_name=name, storage=storage)
    states = [t.state.name for t in resumed.trials]
    assert "FAIL" in states  # the killed trial was failed by the heartbeat check, then its c retried
    parent = resumed.user_attrs["parent_run_id"]
    runs = MlflowClient(store).get_run(parent)
    for constant in ("c_loss", "c_sharp", "c_max", "c_barrier"):
        assert runs.data.metrics[constant] == pytest.approx(uninterrupted.constants[constant], nan_ok=True)
    kids = children(store, parent)
    statuses = [r.info.status for r in kids]
    assert "RUNNING" not in statuses and "KILLED" in statuses
    killed = [r for r in kids if r.info.status == "KILLED"]
    assert all("stopped" in r.data.tags["phasediag.end_reason"] for r in killed)


@pytest.mark.slow
def test_sweep_with_two_workers_loses_and_duplicates_nothing(tiny_sweep):
    spec, store, storage = tiny_sweep["spec"], tiny_sweep["uri"], tiny_sweep["storage"]  # swept with --workers 2
    loaded = SweepSpec.load(spec)
    claims = optuna.load_study(study_name=loaded.study_name, storage=storage).trials
    complete = sorted(t.params["point"] for t in claims if t.state.name == "COMPLETE")
    assert complete == list(range(len(loaded.points)))
    n_trials = 0
    for point in loaded.points:
        trials = optuna.load_study(study_name=point.study_name, storage=storage).trials
        keys = [(t.params["k"], tuple(sorted(q for q, a in t.user_attrs["answers"].items() if a is not None)))
                for t in trials if t.state.name == "COMPLETE"]  # fmt: skip
        assert len(keys) == len(set(keys)), "a point was trained twice"
        n_trials += len(keys)
    runs = runs_of(store, "tiny")
    assert sum(r.data.tags["phasediag.kind"] == "run" for r in runs) == n_trials
    assert all(r.info.status == "FINISHED" for r in runs)
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    again = subprocess.run([PHASEDIAG, "sweep", str(spec), "--workers", "2"], cwd=tiny_sweep["folder"], env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0
    assert sum(r.data.tags["phasediag.kind"] == "run" for r in runs_of(store, "tiny")) == n_trials


@pytest.mark.parametrize(
    "text, words",
    [
        ("experiment: x\nfixed: {arch: fcn}\nvary: {depth: [2, 3]}\ncolour: red\n", ["colour"]),
        ("fixed: {arch: fcn}\n", ["experiment"]),
        ("experiment: x\nvary: {depth: 3}\n", ["vary.depth", "list"]),
        ("experiment: x\nvary: {depht: [2]}\n", ["depht"]),
        ("experiment: x\nfixed: {c: 2}\n", ["'c'"]),
        ("experiment: x\nvary: {width: [64, 0]}\n", ["width=0"]),
        ("experiment: x\nfixed: {arch: cnn, depth: 6}\n", ["depth=6"]),
        ("experiment: [unclosed\n", ["not valid YAML"]),
        ("- just\n- a list\n", ["mapping"]),
    ],
)
def test_malformed_sweep_spec_fails_before_anything_runs(store, tmp_path, capsys, text, words):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    assert cli.main(["sweep", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    for word in words:
        assert word in err
    assert not (tmp_path / "optuna.db").exists() and runs_of(store) == []


def test_search_parameters_are_validated(store, capsys):
    with pytest.raises(ConfigError, match="mode='scan'"):
        tiny(mode="scan")
    with pytest.raises(ConfigError, match="x_max"):
        tiny(x_min="3", x_max="2")
    assert cli.main(["search", "--c", "2"]) == 2  # c is what the search finds
    assert "unknown option --c" in capsys.readouterr().err
    assert runs_of(store) == []


def test_every_paper_spec_is_valid():
    specs = sorted((Path(REPO) / "sweeps").glob("*.yaml"))
    assert len(specs) >= 12
    for path in specs:
        loaded = SweepSpec.load(path)
        assert loaded.points, path


def test_points_that_differ_only_in_their_seed_are_the_points_parsed_one_by_one():
    spec = {"experiment": "e", "fixed": {"arch": "fcn", "x_max": 7}, "vary": {"seed": [0, 1, 2], "width": [8, 16]}}
    one_by_one = [SearchConfig.from_strings({**spec["fixed"], "seed": seed, "width": width, "experiment": "e"})
                  for seed in (0, 1, 2) for width in (8, 16)]  # fmt: skip
    assert SweepSpec.from_dict(spec).points == tuple(one_by_one)
    with pytest.raises(ConfigError, match="seed"):
        SweepSpec.from_dict({**spec, "vary": {"seed": [0, "one"]}})
