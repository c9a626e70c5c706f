"""The only module that knows MLflow: run, param, metric and tag names; logging; queries into pandas."""

import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
KIND_TAG = "phasediag.kind"  # run | search | sweep | analysis | uv | saturation
SEARCH_TAG = "phasediag.search"  # the Optuna study name of a search, on the parent and its children
PARENT_TAG = "mlflow.parentRunId"

# The per-step metric histories of a run (step = SGD step t, 0 = init).
HISTORY_METRICS = (
    "loss",
    "loss_ratio",
    "batch_loss",
    "sharpness",
    "sharpness_ratio",
    "eta_sharpness",
    "accuracy",
)


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used; the message is one line."""


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_reachable(uri: str | None = None, timeout: float = 5.0) -> str:
    """Fail fast, before any run is created, when the tracking store cannot be reached."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent
        if not folder.is_dir():
            raise TrackingError(f"tracking URI {uri!r}: folder {folder} does not exist")
    elif uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TrackingError(f"tracking server {uri!r} is unreachable ({reason}); start it or set MLFLOW_TRACKING_URI") from None
    elif uri.startswith(("postgresql", "mysql", "mssql")):
        import sqlalchemy

        try:
            sqlalchemy.create_engine(uri, connect_args={"connect_timeout": int(timeout)}).connect().close()
        except Exception as error:  # the driver's own exception types vary
            raise TrackingError(f"tracking database {uri!r} is unreachable ({type(error).__name__})") from None
    else:
        raise TrackingError(f"tracking URI {uri!r} is not supported: use sqlite:///FILE, http(s)://HOST:PORT or postgresql+psycopg2://...")
    return uri


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri())


def experiment_id(name: str, create: bool = True) -> str | None:
    client = _client()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    if not create:
        return None
    try:
        return client.create_experiment(name)
    except Exception:  # another worker created it first
        return client.get_experiment_by_name(name).experiment_id


def _params(params: Mapping[str, Any]):
    from mlflow.entities import Param

    return [Param(key, str(value)) for key, value in params.items()]


def _project_run_id() -> str | None:
    """The run that `mlflow run` created for this process (MLFLOW_RUN_ID), if not adopted yet."""
    global _project_run_taken
    if _project_run_taken:
        return None
    _project_run_taken = True
    return os.environ.get("MLFLOW_RUN_ID") or None


_project_run_taken = False


def start_run(
    experiment: str,
    kind: str,
    params: Mapping[str, Any],
    *,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Create a run with its params and tags in one batch; returns the run id.

    Under `mlflow run` the first top-level run is the project's own run (same experiment, params that MLflow
    already logged are kept), so one `mlflow run` leaves one run. Children go into their parent's experiment.
    """
    from mlflow.entities import RunTag

    client = _client()
    all_tags = {KIND_TAG: kind, **(tags or {})}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    adopted = None if parent_run_id else _project_run_id()
    if adopted:
        run_id = adopted
        logged = client.get_run(run_id).data.params
        params = {k: v for k, v in params.items() if k not in logged}
        if run_name:
            all_tags["mlflow.runName"] = run_name
    else:
        where = client.get_run(parent_run_id).info.experiment_id if parent_run_id else experiment_id(experiment)
        run_id = client.create_run(where, run_name=run_name, tags=all_tags).info.run_id
    client.log_batch(run_id, params=_params(params), tags=[RunTag(k, v) for k, v in all_tags.items()])
    return run_id


def discard_project_run() -> None:
    """Bad input under `mlflow run`: delete the run MLflow created before our validation could refuse it."""
    run_id = _project_run_id()
    if run_id:
        _client().delete_run(run_id)


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(key, float(value), now, step) for key, value in metrics.items() if value is not None]
    _client().log_batch(run_id, metrics=batch)


def log_history(run_id: str, history: pd.DataFrame) -> None:
    """Every column of HISTORY_METRICS present in `history` (index = step), NaNs skipped, in batches of 1000."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(name, float(value), now, int(step))
        for name in HISTORY_METRICS
        if name in history
        for step, value in history[name].dropna().items()
    ]
    client = _client()
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def set_tags(run_id: str, tags: Mapping[str, str]) -> None:
    from mlflow.entities import RunTag

    _client().log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_artifacts(run_id: str, folder: Path | str, artifact_path: str | None = None) -> None:
    _client().log_artifacts(run_id, str(folder), artifact_path)


def log_tensors(run_id: str, tensors: Mapping[str, Any], artifact_path: str = "checkpoints") -> None:
    """torch.save each object (e.g. a state_dict) as NAME.pt under artifact_path."""
    import torch

    with tempfile.TemporaryDirectory() as folder:
        for name, obj in tensors.items():
            torch.save(obj, Path(folder) / f"{name}.pt")
        log_artifacts(run_id, folder, artifact_path)


def log_text(run_id: str, text: str, name: str) -> None:
    _client().log_text(run_id, text, name)


def log_table(run_id: str, table: pd.DataFrame, name: str) -> None:
    """A data frame as a CSV artifact."""
    with tempfile.TemporaryDirectory() as folder:
        table.to_csv(Path(folder) / name, index=False)
        log_artifacts(run_id, folder)


def set_status_running(run_id: str) -> None:
    """A resumed search's parent run is running again."""
    _client().update_run(run_id, status="RUNNING")


def finish_run(run_id: str, failed: bool = False) -> None:
    _client().set_terminated(run_id, status="FAILED" if failed else "FINISHED")


@contextmanager
def run(experiment: str, kind: str, params: Mapping[str, Any], **kwargs: Any) -> Iterator[str]:
    """A run that ends FINISHED, or FAILED when the body raises (including Ctrl-C)."""
    run_id = start_run(experiment, kind, params, **kwargs)
    try:
        yield run_id
    except BaseException:
        finish_run(run_id, failed=True)
        raise
    finish_run(run_id)


def log_artifact_run(
    experiment: str, kind: str, params: Mapping[str, Any], metrics: Mapping[str, float], folder: Path | str
) -> str:
    """One run holding a folder of figures and tables as artifacts (tag phasediag.kind=kind)."""
    with run(experiment, kind, params) as run_id:
        log_metrics(run_id, metrics)
        log_artifacts(run_id, folder)
    return run_id
