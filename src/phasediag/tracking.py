"""The only module that knows MLflow: run, param, metric and tag names; logging; queries into pandas."""

import logging
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from phasediag.vocabulary import CONSTANTS

log = logging.getLogger(__name__)
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


def redact(url: str) -> str:
    """A URL fit for an error message: no password."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


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
            raise TrackingError(f"tracking database {redact(uri)!r} is unreachable ({type(error).__name__})") from None
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
        project_run = client.get_run(run_id)
        chosen = client.get_experiment(project_run.info.experiment_id).name
        if chosen != experiment:  # MLflow chose the experiment before we ran; a run cannot be moved
            log.warning("`mlflow run` put this run in experiment %r, not %r; pass --experiment-name %s to `mlflow run` "
                        "to keep them together", chosen, experiment, experiment)  # fmt: skip
        logged = project_run.data.params
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
    experiment: str, kind: str, params: Mapping[str, Any], metrics: Mapping[str, float], folder: Path | str,
    run_name: str | None = None,
) -> str:
    """One run holding a folder of figures and tables as artifacts (tag phasediag.kind=kind)."""
    with run(experiment, kind, params, run_name=run_name) as run_id:
        log_metrics(run_id, metrics)
        log_artifacts(run_id, folder)
    return run_id


def experiment_of(run_id: str) -> str:
    """The name of the experiment a run lives in (under `mlflow run`, the one MLflow chose)."""
    client = _client()
    return client.get_experiment(client.get_run(run_id).info.experiment_id).name


# ---------------------------------------------------------------------------------------------------------------------
# Queries: one call per kind of data (paged search_runs for params and run metrics, bulk metric histories), into pandas.
# The same code serves a SQLite/PostgreSQL store and an `mlflow server` (http).

SEARCH_METRICS = ("lambda0", *CONSTANTS, "n_runs", "hvps", "non_monotone")
RUN_METRICS = ("lambda0", "eta", "diverged", "max_loss_ratio", "max_sharpness_ratio", "hvps", "barrier")
X_TAG = "phasediag.x"  # log2 c of a search's child run
NON_MONOTONE_TAG = "phasediag.non_monotone"
INTERPOLATION_ARTIFACT = "interpolation.csv"  # (s, loss) of a run whose barrier was measured
_SEARCH_PARAM_TYPES = {"mode": str, "resolution": float, "x_min": float, "x_max": float, "x_start": float,
                       "gallop": float, "gallop_near": float, "eps": float, "study": str, "lambda0_tol": float}  # fmt: skip
_PAGE = 5000  # runs per search_runs page
_SQL_CHUNK = 500  # run ids per bulk-history SQL query
_REST_CHUNK = 100  # run ids per bulk-history HTTP request (the server's limit)
_REST_PER_RUN = 2500  # points per run and metric the server returns at most (more are sampled: then fetched whole)


def _param_types() -> dict[str, type]:
    """Declared types of run and search params (RunConfig's fields plus the search's own)."""
    import dataclasses
    import types

    from phasediag.run.config import RunConfig

    declared: dict[str, type] = {}
    for f in dataclasses.fields(RunConfig):
        kind = f.type
        if isinstance(kind, types.UnionType):  # float | None
            kind = next(k for k in kind.__args__ if k is not type(None))
        declared[f.name] = kind
    return {**declared, **_SEARCH_PARAM_TYPES}


def _typed(column: pd.Series, kind: type | None) -> pd.Series:
    """A column of param strings as its declared type: int (Int64 when some are missing), float, bool, else str."""
    if kind is int:
        values = pd.to_numeric(column, errors="coerce")
        if values.notna().all():
            return values.astype("int64")
        return values.astype("Int64")
    if kind is float:
        return pd.to_numeric(column.replace({"None": None}), errors="coerce").astype(float)
    if kind is bool:
        mapped = column.map(lambda v: {"true": True, "false": False}.get(str(v).strip().lower()) if v is not None else None)
        return mapped.astype(bool) if mapped.notna().all() else mapped
    return column


def _runs_frame(experiment: str, filter_string: str, metrics: tuple[str, ...], first: list[str]) -> pd.DataFrame:
    """One row per run matching filter_string (all pages): run info, our tags, typed params, run metrics."""
    import math

    client = _client()
    exp_id = experiment_id(experiment, create=False)
    rows = []
    if exp_id is not None:
        token = None
        while True:
            page = client.search_runs([exp_id], filter_string=filter_string, max_results=_PAGE, page_token=token)
            for r in page:
                tags = r.data.tags
                row = {
                    "run_id": r.info.run_id,
                    "run_name": r.info.run_name,
                    "status": r.info.status,
                    "start_time": r.info.start_time,
                    "end_time": r.info.end_time,
                    "kind": tags.get(KIND_TAG),
                    "parent_run_id": tags.get(PARENT_TAG),
                    "study": tags.get(SEARCH_TAG),
                    "x": tags.get(X_TAG),
                    "non_monotone_questions": tags.get(NON_MONOTONE_TAG),
                }
                row.update({f"params.{k}": v for k, v in r.data.params.items()})
                row.update({f"metrics.{k}": v for k, v in r.data.metrics.items()})
                rows.append(row)
            token = page.token
            if not token:
                break
    frame = pd.DataFrame(rows)
    base = ["run_id", "run_name", "status", "start_time", "end_time", "kind", "parent_run_id", "study", "x",
            "non_monotone_questions"]  # fmt: skip
    for name in base:
        if name not in frame:
            frame[name] = pd.Series(dtype=object)
    params = sorted(c for c in frame.columns if c.startswith("params."))
    # run-level metrics only: the last value of a per-step history is not a property of the run
    extra_metrics = sorted(c for c in frame.columns if c.startswith("metrics.") and c[8:] not in (*metrics, *HISTORY_METRICS))
    metric_names = {*metrics, *(c[8:] for c in extra_metrics)}
    types_ = _param_types()
    out = frame[base].copy()
    for column in params:
        name = column[7:]
        if name == "study" and out["study"].notna().all():
            continue  # the search's study name is already there, from its tag
        # A param named like a metric (a run's `barrier`: was it measured) or like a tag column that holds values
        # (`x`) yields that name to it and becomes param_NAME.
        taken = name in metric_names or (name in base and out[name].notna().any())
        out[f"param_{name}" if taken else name] = _typed(frame[column], types_.get(name))
    for name in metrics:
        out[name] = frame[f"metrics.{name}"].astype(float) if f"metrics.{name}" in frame else math.nan
    for column in extra_metrics:
        out[column[8:]] = frame[column].astype(float)
    if out["x"].dtype == object or pd.api.types.is_string_dtype(out["x"]):
        numeric = pd.to_numeric(out["x"], errors="coerce")
        if out["x"].isna().all() or numeric.notna().any():  # the tag phasediag.x (log2 c), not a param named x
            out["x"] = numeric.astype(float)
    for name in ("start_time", "end_time"):
        out[name] = pd.to_datetime(pd.to_numeric(out[name], errors="coerce"), unit="ms")
    order = [c for c in first if c in out] + [c for c in out.columns if c not in first]
    return out[order].reset_index(drop=True)


def _apply_filters(frame: pd.DataFrame, filters: Mapping[str, Any]) -> pd.DataFrame:
    """column == value (a list/tuple/set: any of them); the value is converted to the column's type."""
    for name, wanted in filters.items():
        if name not in frame:
            raise KeyError(f"no column {name!r} to filter on; columns are {', '.join(frame.columns)}")
        values = list(wanted) if isinstance(wanted, list | tuple | set) else [wanted]
        column = frame[name]
        try:
            values = list(_typed(pd.Series([str(v) for v in values], dtype=object), _column_kind(column)))
        except (TypeError, ValueError):
            pass
        frame = frame[column.isin(values)]
    return frame.reset_index(drop=True)


def _column_kind(column: pd.Series) -> type | None:
    if pd.api.types.is_bool_dtype(column):
        return bool
    if pd.api.types.is_integer_dtype(column):
        return int
    if pd.api.types.is_float_dtype(column):
        return float
    return None


def runs_of_kind(experiment: str, kind: str, **filters: Any) -> pd.DataFrame:
    """Every run tagged phasediag.kind=kind in the experiment: info, tags, typed params, all run metrics."""
    frame = _runs_frame(experiment, f"tags.`{KIND_TAG}` = '{kind}'", (), ["run_id", "status"])
    return _apply_filters(frame, filters)


def searches(experiment: str, **param_filters: Any) -> pd.DataFrame:
    """One row per search (its parent run): run_id, study, status, the params as typed columns (depth, width, seed
    ints, ...), the constants c_loss, c_sharp, c_max, c_barrier (NaN: not reached in the range), lambda0, n_runs,
    hvps, non_monotone (0/1) and non_monotone_questions. Filters: any column == value, e.g. width=512, status='FINISHED'.
    An unknown experiment gives an empty frame."""
    frame = _runs_frame(experiment, f"tags.`{KIND_TAG}` = 'search'", SEARCH_METRICS,
                        ["run_id", "study", "status", "arch", "depth", "width", "seed", *SEARCH_METRICS])  # fmt: skip
    frame = frame.drop(columns=["kind", "parent_run_id", "x"])
    return _apply_filters(frame, param_filters)


def runs(experiment: str, parent_run_id: str | None = None, **filters: Any) -> pd.DataFrame:
    """One row per trained run (kind=run; a search's children when parent_run_id is given): run_id, parent_run_id,
    study, status, x = log2 c, c, the other params typed, and the run metrics (lambda0, eta, diverged, max_loss_ratio,
    max_sharpness_ratio, hvps, barrier: NaN when not measured)."""
    where = f"tags.`{KIND_TAG}` = 'run'"
    if parent_run_id:
        where += f" and tags.`{PARENT_TAG}` = '{parent_run_id}'"
    frame = _runs_frame(experiment, where, RUN_METRICS,
                        ["run_id", "parent_run_id", "study", "status", "x", "c", "depth", "width", "seed"])  # fmt: skip
    if "c" in frame:
        import numpy as np

        frame["x"] = frame["x"].fillna(np.log2(frame["c"].astype(float)))
    frame = frame.drop(columns=["kind", "non_monotone_questions"]).sort_values(["parent_run_id", "x"], na_position="last")
    return _apply_filters(frame.reset_index(drop=True), filters)


def histories(run_ids, metrics=HISTORY_METRICS) -> pd.DataFrame:
    """Long format (run_id, metric, step, value) of the metric histories of many runs, sorted.

    One query per metric (and chunk of run ids): the SQL store's bulk history query (SQLite, PostgreSQL), or the
    server's get-history-bulk-interval endpoint (http; up to 100 runs per request, a run with >= 2500 points of a
    metric is fetched whole). Any other store: a thread pool over get_metric_history. A value logged twice at one
    step keeps the latest."""
    run_ids = list(dict.fromkeys(str(r) for r in run_ids))
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    columns = ["run_id", "metric", "step", "value"]
    if not run_ids or not metrics:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(columns, (object, object, "int64", float))})
    client = _client()
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    rows: list[tuple[str, str, int, int, float]] = []
    if hasattr(store, "get_metric_history_bulk"):
        for metric in metrics:
            for start in range(0, len(run_ids), _SQL_CHUNK):
                for m in store.get_metric_history_bulk(run_ids[start : start + _SQL_CHUNK], metric, None):
                    rows.append((m.run_id, metric, m.step, m.timestamp, m.value))
    else:
        rows = _rest_histories(store, client, run_ids, metrics)
    frame = pd.DataFrame(rows, columns=["run_id", "metric", "step", "timestamp", "value"])
    frame = frame.sort_values(["run_id", "metric", "step", "timestamp"]).drop_duplicates(["run_id", "metric", "step"], keep="last")
    frame = frame[columns].astype({"step": "int64", "value": float})
    return frame.reset_index(drop=True)


def _rest_histories(store, client, run_ids: list[str], metrics: list[str]) -> list[tuple]:
    import json
    from concurrent.futures import ThreadPoolExecutor

    def whole(run_id: str, metric: str) -> list[tuple]:
        return [(run_id, metric, m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, metric)]

    try:
        from mlflow.protos.service_pb2 import GetMetricHistoryBulkInterval
        from mlflow.store.tracking.rest_store import RestStore
        from mlflow.utils.rest_utils import call_endpoint
    except ImportError:  # pragma: no cover - another MLflow version
        RestStore = None  # noqa: N806

    def bulk(metric: str, chunk: list[str]) -> list[tuple]:
        body = {"run_ids": chunk, "metric_key": metric, "max_results": _REST_PER_RUN}
        response = call_endpoint(store.get_host_creds(), "/api/2.0/mlflow/metrics/get-history-bulk-interval", "GET",
                                 json.dumps(body), GetMetricHistoryBulkInterval.Response())  # fmt: skip
        found = [(m.run_id, metric, m.step, m.timestamp, m.value) for m in response.metrics]
        counts = pd.Series([r[0] for r in found]).value_counts() if found else pd.Series(dtype=int)
        sampled = set(counts[counts >= _REST_PER_RUN].index)
        return [r for r in found if r[0] not in sampled] + [r for run_id in sampled for r in whole(run_id, metric)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        if RestStore is not None and isinstance(store, RestStore):
            jobs = [(metric, run_ids[i : i + _REST_CHUNK]) for metric in metrics for i in range(0, len(run_ids), _REST_CHUNK)]
            try:
                return [row for part in pool.map(lambda job: bulk(*job), jobs) for row in part]
            except Exception:  # a server without the bulk endpoint: one request per (run, metric) below
                pass
        jobs = [(run_id, metric) for run_id in run_ids for metric in metrics]
        return [row for part in pool.map(lambda job: whole(*job), jobs) for row in part]


def interpolations(run_ids) -> pd.DataFrame:
    """(run_id, s, loss): the interpolated loss L((1-s) theta_0 + s theta_T) of each run that has the artifact."""
    from concurrent.futures import ThreadPoolExecutor

    from mlflow.artifacts import download_artifacts

    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per run is noise

    def one(run_id: str) -> pd.DataFrame | None:
        with tempfile.TemporaryDirectory() as folder:
            try:
                path = download_artifacts(run_id=run_id, artifact_path=INTERPOLATION_ARTIFACT, dst_path=folder, tracking_uri=uri)
            except Exception:  # no barrier measured in this run: no artifact
                return None
            table = pd.read_csv(path)
        return table.assign(run_id=run_id)[["run_id", "s", "loss"]]

    run_ids = list(dict.fromkeys(str(r) for r in run_ids))
    with ThreadPoolExecutor(max_workers=8) as pool:
        parts = [p for p in pool.map(one, run_ids) if p is not None]
    if not parts:
        return pd.DataFrame({"run_id": pd.Series(dtype=object), "s": pd.Series(dtype=float), "loss": pd.Series(dtype=float)})
    return pd.concat(parts, ignore_index=True)
