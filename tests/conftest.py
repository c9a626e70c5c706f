import os

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
from servers import mlflow_server, postgres_cluster, postgres_url  # noqa: F401,E402
