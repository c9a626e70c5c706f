"""A sweep against real services: Optuna on PostgreSQL, MLflow behind `mlflow server`; and both unreachable."""

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO, runs_of
from servers import free_port

TINY = Path(REPO) / "sweeps" / "tiny.yaml"
PHASEDIAG = str(Path(sys.executable).parent / "phasediag")


def sweep_cli(cwd: Path, tracking_uri: str, *argv: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env.pop("MLFLOW_RUN_ID", None)
    return subprocess.run([PHASEDIAG, "sweep", str(TINY), *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def measured(answers: dict) -> frozenset[str]:
    return frozenset(q for q, a in answers.items() if a is not None)


def check_studies(storage: str) -> int:
    """Claims and search studies are consistent; returns the number of COMPLETE search trials."""
    import optuna
    from optuna.trial import TrialState

    from phasediag.search.sweep import SweepSpec

    spec = SweepSpec.load(TINY, {"storage": storage})
    claims = optuna.load_study(study_name=spec.study_name, storage=storage).get_trials(deepcopy=False)
    complete = Counter(t.params["point"] for t in claims if t.state == TrialState.COMPLETE)
    assert complete == {i: 1 for i in range(len(spec.points))}, complete  # one claim per point, none lost
    assert not [t for t in claims if t.state == TrialState.RUNNING]
    trained = 0
    for point in spec.points:
        trials = optuna.load_study(study_name=point.study_name, storage=storage).get_trials(deepcopy=False)
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        keys = Counter((t.params["k"], measured(t.user_attrs["answers"])) for t in done)
        assert max(keys.values()) == 1, f"{point.study_name}: trained twice: {keys}"
        assert not [t for t in trials if t.state == TrialState.RUNNING], point.study_name
        trained += len(done)
    return trained


@pytest.mark.slow
def test_two_worker_sweep_on_postgres_and_mlflow_server(postgres_url, mlflow_server, tmp_path):
    started = time.monotonic()
    result = sweep_cli(tmp_path, mlflow_server, "--workers", "2", "--storage", postgres_url)
    assert result.returncode == 0, result.stderr[-3000:]
    first = time.monotonic() - started
    trained = check_studies(postgres_url)
    runs = runs_of(mlflow_server, "tiny")
    assert {r.info.status for r in runs} == {"FINISHED"}, Counter(r.info.status for r in runs)
    parents = [r for r in runs if r.data.tags.get("phasediag.kind") == "search"]
    assert len(parents) == 4
    parent_ids = {r.info.run_id for r in parents}
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in parent_ids]
    assert len(children) == trained > 0
    assert not list(tmp_path.glob("*.db")), "nothing may fall back to a local SQLite file"

    # The same command again finds every search done: nothing is trained, nothing is lost.
    result = sweep_cli(tmp_path, mlflow_server, "--workers", "2", "--storage", postgres_url)
    assert result.returncode == 0, result.stderr[-3000:]
    assert check_studies(postgres_url) == trained
    runs = runs_of(mlflow_server, "tiny")
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len([r for r in runs if r.data.tags.get("mlflow.parentRunId") in parent_ids]) == trained
    assert len([r for r in runs if r.data.tags.get("phasediag.kind") == "search"]) == 4
    print(f"first sweep {first:.0f} s, {trained} runs; both sweeps {time.monotonic() - started:.0f} s")


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phasediag: error: "), stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_unreachable_storage_or_tracking_server_fails_fast_with_one_line(tmp_path):
    """Both at once (each is mostly interpreter start-up): exit 2, one line naming the service, no run anywhere."""
    store = f"sqlite:///{tmp_path}/a/mlruns.db"
    storage = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x"
    server = f"http://127.0.0.1:{free_port()}"
    cases = {"storage": (tmp_path / "a", store, ["--storage", storage], storage),
             "server": (tmp_path / "b", server, [], server)}  # fmt: skip
    processes = {}
    for name, (cwd, uri, argv, _) in cases.items():
        cwd.mkdir()
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        env.pop("MLFLOW_RUN_ID", None)
        processes[name] = subprocess.Popen([PHASEDIAG, "sweep", str(TINY), *argv], cwd=cwd, env=env, text=True,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    outputs = {name: process.communicate(timeout=90) for name, process in processes.items()}  # or TimeoutExpired
    for name, (cwd, uri, argv, service) in cases.items():
        assert processes[name].returncode == 2, (name, outputs[name][1][-3000:])
        assert service in one_line_error(outputs[name][1]), name
        assert not list(cwd.glob("*.db")) or runs_of(uri) == [], f"{name}: a run was created before the failure"
