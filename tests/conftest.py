import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A private SQLite tracking store; returns its URI. Work in tmp_path so nothing leaks into the repo."""
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    return uri


def runs_of(uri: str, experiment: str | None = None):
    """All runs in the store (every experiment unless one is named), as MLflow Run objects."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiments = client.search_experiments()
    ids = [e.experiment_id for e in experiments if experiment is None or e.name == experiment]
    return client.search_runs(ids) if ids else []


def history(uri: str, run_id: str, metric: str) -> list[float]:
    from mlflow.tracking import MlflowClient

    points = MlflowClient(tracking_uri=uri).get_metric_history(run_id, metric)
    return [p.value for p in sorted(points, key=lambda p: p.step)]


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The default data folder of every test and its subprocesses: the clone's data/ (`make data`), not ~/.cache.
os.environ.setdefault("PHASEDIAG_DATA", os.path.join(REPO, "data"))
TINY = Path(REPO) / "sweeps" / "tiny.yaml"
PHASEDIAG = str(Path(sys.executable).parent / "phasediag")


def one_search_spec(folder: Path) -> Path:
    """sweeps/tiny.yaml cut to one search (depth 2, width 8, seed 0), written into `folder`: the smallest sweep."""
    import yaml

    spec = yaml.safe_load(TINY.read_text())
    spec["vary"] = {"depth": [2], "width": [8], "seed": [0]}
    path = folder / "one-search.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> dict:
    """sweeps/tiny.yaml trained once per test session, by `phasediag sweep --workers 2` in a folder of its own
    (tracking store and Optuna storage there). Tests read it, or re-run the sweep to see that nothing is trained
    again; none trains it from scratch. Returns folder, uri (tracking), storage (Optuna), spec and the result."""
    folder = tmp_path_factory.mktemp("tiny-sweep")
    uri = f"sqlite:///{folder}/mlruns.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("MLFLOW_RUN_ID", None)
    result = subprocess.run([PHASEDIAG, "sweep", str(TINY), "--workers", "2"], cwd=folder, env=env, capture_output=True,
                            text=True, timeout=1200)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        from phasediag.search.sweep import SweepSpec

        storage = SweepSpec.load(TINY).points[0].storage_url
    return {"folder": folder, "uri": uri, "storage": storage, "spec": TINY, "result": result}


from servers import mlflow_server, postgres_cluster, postgres_url  # noqa: F401,E402
