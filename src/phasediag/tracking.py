"""The only module that knows MLflow: run, param, metric and tag names; logging; queries into pandas."""

import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from phasediag import signals
from phasediag.errors import ConfigError
from phasediag.vocabulary import CONSTANTS

log = logging.getLogger(__name__)
KIND_TAG = "phasediag.kind"  # run | search | sweep | analysis | uv | saturation
SEARCH_TAG = "phasediag.search"  # the Optuna study name of a search, on the parent and its children
TRIAL_TAG = "phasediag.trial"  # the Optuna trial number of a search's child run (found by it if the trial never learnt the run id)
THETA0_TAG = "phasediag.theta0"  # a child's initial parameters: an artifact of its search's parent run
CONTINUES_TAG = "phasediag.continues"  # an `mlflow run` project run that resumed (or joined) a search or sweep: its run
END_REASON_TAG = "phasediag.end_reason"  # why a run ended FAILED or KILLED
MODEL_TAG = "phasediag.model"  # your own model's factory, package.module:factory (a built-in model has none)
MODEL_SOURCE_TAG = "phasediag.model_sha256"  # first 16 hex digits of the SHA-256 of the factory's source file
PARENT_TAG = "mlflow.parentRunId"
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # else MLflow 3's UI treats it as GenAI
THETA0_ARTIFACT = "checkpoints/initial.pt"
# An `mlflow server` that stops answering: MLflow's HTTP retries, bounded (unless set in the environment):
# 4 retries with backoff 1, 2, 4, 8 s and a 20 s timeout per request: a dead server is given up on within ~15 s
# (connection refused), a hung one within ~2 min.
HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}  # fmt: skip
RETRY_SECONDS = 15

# The per-step metric histories of a run (step = SGD step t, 0 = init).
HISTORY_METRICS = (
    "loss",
    "loss_ratio",
    "batch_loss",
    "sharpness",
    "sharpness_ratio",
    "eta_sharpness",
    "sharpness_residual",
    "accuracy",
)
# adam and adamw runs: lambda_t is the pre-conditioned sharpness lambda_max(P_t^-1 H_t), logged under its own names
PRECONDITIONED_HISTORY_METRICS = tuple(name.replace("sharpness", "preconditioned_sharpness") for name in HISTORY_METRICS
                                       if "sharpness" in name)  # fmt: skip


class TrackingError(ConfigError, RuntimeError):
    """The tracking store cannot be reached or used; the message is one line."""


class TrackingOutage(TrackingError):
    """The tracking server stopped answering mid-work: every further write would only retry for RETRY_SECONDS."""


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else MLflow's own default (./mlflow.db): the store `mlflow run` and `mlflow ui` use."""
    import mlflow

    return mlflow.get_tracking_uri()


def ui_command() -> str:
    """How to open this store: `mlflow ui` alone for MLflow's default store (the one in this folder)."""
    import mlflow.environment_variables

    if not mlflow.environment_variables.MLFLOW_TRACKING_URI.is_set():
        return "mlflow ui"
    uri = tracking_uri()
    return f"open {uri}" if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}"


UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
# The runs table's columns, in this order: the constants of a search and the params that tell runs apart.
RUNS_TABLE_COLUMNS = (("params", "c"), *(("metrics", name) for name in CONSTANTS), ("params", "depth"),
                      ("params", "width"), ("params", "seed"), ("params", "arch"), ("metrics", "lambda0"),
                      ("metrics", "diverged"))  # fmt: skip
RUNS_TABLE_COLUMN_WIDTH = 90  # px: every column above fits a 1920-px screen beside the run name


def runs_table_url(experiment: str) -> str:
    """The address that opens the experiment's runs table in the MLflow UI, its columns the constants and the key
    params (the tracking server's address, else where `mlflow ui` serves).

    MLflow 3's experiment page opens on its GenAI overview; `workflowType=machine_learning` on the `runs` tab opens the
    runs table. Its columns come from a shared view: the table's state as JSON in the experiment tag
    `mlflow.sharedViewState.<key>`, which the UI loads for `viewStateShareKey=<key>` (its "share view" mechanism).
    """
    columns = [f"{kind}.`{name}`" for kind, name in RUNS_TABLE_COLUMNS]
    state = json.dumps({"selectedColumns": columns, "columnOrder": columns,
                        "columnWidths": dict.fromkeys(columns, RUNS_TABLE_COLUMN_WIDTH)})  # fmt: skip
    key = hashlib.sha256(state.encode()).hexdigest()[:16]
    experiment_key = experiment_id(experiment)
    _client().set_experiment_tag(experiment_key, f"mlflow.sharedViewState.{key}", state)
    uri = tracking_uri()
    base = uri.rstrip("/") if uri.startswith("http") else UI_ADDRESS
    return f"{base}/#/experiments/{experiment_key}/runs?viewStateShareKey={key}&workflowType=machine_learning"


def open_runs_table(experiment: str) -> str:
    """One line for the end of a command: how to see its runs in the MLflow UI."""
    url = runs_table_url(experiment)
    command = ui_command()
    return f"runs table: {url}" if command.startswith("open ") else f"runs table: {url}   (start the UI: {command})"


def redact(url: str) -> str:
    """A URL fit for an error message: no password."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def store_identity(uri: str) -> str:
    """What names a tracking store whichever way it is written: a SQLite file by its absolute path, a server or a
    database by scheme, host, port and path, without user, password or query."""
    from urllib.parse import urlsplit

    if uri.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).expanduser().resolve())
    parts = urlsplit(uri)
    host = f"{(parts.hostname or '').lower()}{f':{parts.port}' if parts.port else ''}"
    return f"{parts.scheme}://{host}{parts.path.rstrip('/')}"


def _refuse_password(uri: str) -> None:
    """Credentials come from the environment, never inside a URI (it is printed, logged and shown by `ps`)."""
    from urllib.parse import urlsplit

    if urlsplit(uri).password is None:
        return
    where = ("MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" if uri.startswith("http")
             else "PGPASSWORD or ~/.pgpass")  # fmt: skip
    raise TrackingError(f"tracking URI {redact(uri)} holds a password: remove it and set {where} instead (docs/cluster.md)")


def _check_credentials(uri: str, timeout: float) -> None:
    """An authenticated request (MLFLOW_TRACKING_USERNAME / _PASSWORD, as MLflow sends them) that a server with
    MLflow's basic-auth app answers 401 for wrong or missing credentials: refused here, before any run exists."""
    import base64

    import mlflow.environment_variables as env

    request = urllib.request.Request(uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1")
    user, password = env.MLFLOW_TRACKING_USERNAME.get(), env.MLFLOW_TRACKING_PASSWORD.get()
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            given = f"user {user!r}" if user else "no MLFLOW_TRACKING_USERNAME"
            raise TrackingError(f"tracking server {uri} refused the credentials ({error.code} {error.reason}, {given}): "
                                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD") from None  # fmt: skip


def check_reachable(uri: str | None = None, timeout: float = 5.0) -> str:
    """Fail fast, before any run is created, when the tracking store cannot be reached."""
    uri = uri or tracking_uri()
    _refuse_password(uri)
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
        _check_credentials(uri, timeout)
    elif uri.startswith(("postgresql", "mysql", "mssql")):
        import sqlalchemy

        try:
            sqlalchemy.create_engine(uri, connect_args={"connect_timeout": int(timeout)}).connect().close()
        except Exception as error:  # the driver's own exception types vary
            raise TrackingError(f"tracking database {redact(uri)!r} is unreachable ({type(error).__name__})") from None
    else:
        raise TrackingError(f"tracking URI {uri!r} is not supported: use sqlite:///FILE, http(s)://HOST:PORT or postgresql+psycopg2://...")
    return uri


@contextmanager
def sqlite_lock(url: str) -> Iterator[None]:
    """Serialize the creation of a fresh SQLite database (MLflow's or Optuna's tables) among local processes:
    two processes creating the tables at once make one of them fail. A no-op for other URLs or existing files."""
    path = Path(url.split(":///", 1)[1]).expanduser() if url.startswith("sqlite:///") else None
    if path is None or path.exists():
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]  # the lock lives outside the user's folder
    with open(Path(tempfile.gettempdir()) / f"phasediag-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@functools.cache
def _cached_client(uri: str):
    from mlflow.tracking import MlflowClient

    for name, value in HTTP_RETRIES.items():
        os.environ.setdefault(name, value)
    client = MlflowClient(tracking_uri=uri)
    with sqlite_lock(uri):
        client.search_experiments(max_results=1)  # creates the tables of a fresh store
    return client


def _client():
    return _cached_client(tracking_uri())


def outage(error: BaseException) -> TrackingOutage | None:
    """A tracking server that stopped answering mid-work (MLflow gave up retrying), as one line; else None."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(error, TrackingOutage):
        return error
    text = str(error)
    lost = isinstance(error, requests.exceptions.ConnectionError) or (
        isinstance(error, MlflowException) and "API request to" in text and ("Max retries" in text or "Connection" in text)
    )
    if not lost:
        return None
    return TrackingOutage(f"tracking server {redact(tracking_uri())} stopped answering (gave up after ~{RETRY_SECONDS} s "
                         "of retries): start it again and re-run the same command; finished work is kept")  # fmt: skip


def experiment_id(name: str, create: bool = True) -> str | None:
    """The experiment's id (created, tagged as model development, when missing and `create`)."""
    client = _client()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        if not create:
            return None
        try:
            return client.create_experiment(name, tags=EXPERIMENT_KIND)
        except Exception:  # another worker created it first
            experiment = client.get_experiment_by_name(name)
    for key, value in EXPERIMENT_KIND.items():
        if create and experiment.tags.get(key) != value:  # e.g. created by `mlflow run --experiment-name`
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


@functools.cache
def source_tags() -> dict[str, str]:
    """MLflow's standard source tags as `mlflow.start_run` sets them (user, source name and type), with the git
    commit of the checkout this package runs from, and the entry point: the phasediag command."""
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils import mlflow_tags

    tags = {k: v for k, v in resolve_tags().items() if not k.startswith("mlflow.source.git")}
    folder = Path(__file__).resolve().parent
    for key, argv in ((mlflow_tags.MLFLOW_GIT_COMMIT, ["rev-parse", "HEAD"]),
                      (mlflow_tags.MLFLOW_GIT_BRANCH, ["rev-parse", "--abbrev-ref", "HEAD"])):  # fmt: skip
        found = subprocess.run(["git", "-C", str(folder), *argv], capture_output=True, text=True)
        if found.returncode == 0:
            tags[key] = found.stdout.strip()
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None) if program == "phasediag" else None
    tags[mlflow_tags.MLFLOW_PROJECT_ENTRY_POINT] = f"phasediag {command}" if command else program
    return tags


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
    """Create a run with its params and tags (the source tags included) in one batch; returns the run id.

    Under `mlflow run` the first top-level run is the project's own run (same experiment, params that MLflow
    already logged are kept, and so are the source tags MLflow gave it), so one `mlflow run` leaves one run.
    Children go into their parent's experiment.
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
        experiment_id(chosen)  # tag its kind
        logged = project_run.data.params
        params = {k: v for k, v in params.items() if k not in logged}
        if run_name:
            all_tags["mlflow.runName"] = run_name
    else:
        where = client.get_run(parent_run_id).info.experiment_id if parent_run_id else experiment_id(experiment)
        all_tags = {**source_tags(), **all_tags}
        run_id = client.create_run(where, run_name=run_name, tags=all_tags).info.run_id
    client.log_batch(run_id, params=_params(params), tags=[RunTag(k, v) for k, v in all_tags.items()])
    return run_id


def fail_project_run(message: str) -> None:
    """Bad input under `mlflow run`: the run MLflow created ends FAILED with the message as a tag (deleting it
    would make `mlflow run` crash on it)."""
    run_id = _project_run_id()
    if run_id:
        finish_run(run_id, "FAILED", reason=message)


def point_project_run(owner_run_id: str) -> None:
    """Under `mlflow run`, a search (or sweep) that another run already owns (a resume, or a second process): the
    project run is kept, tagged with the run that holds the work; MLflow ends it."""
    run_id = _project_run_id()
    if run_id:
        set_tags(run_id, {CONTINUES_TAG: owner_run_id,
                          "mlflow.note.content": f"This command continued run {owner_run_id}: its results are there."})  # fmt: skip


def log_dataset(run_id: str, name: str, digest: str, source: str, profile: Mapping[str, Any]) -> None:
    """The data a run used, as an MLflow dataset input (the UI's Dataset column)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = Dataset(name=name, digest=digest, source_type="local", source=json.dumps({"uri": source}),
                      profile=json.dumps(dict(profile)))  # fmt: skip
    inputs = [DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, "train")])]
    try:
        _client().log_inputs(run_id, datasets=inputs)
    except Exception as error:  # two processes registering the same dataset at once: the loser links the winner's
        if "UNIQUE constraint" not in str(error) and "unique constraint" not in str(error).lower():
            raise
        _client().log_inputs(run_id, datasets=inputs)


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(key, float(value), now, step) for key, value in metrics.items() if value is not None]
    _client().log_batch(run_id, metrics=batch)


def log_history(run_id: str, history: pd.DataFrame) -> None:
    """Every column of HISTORY_METRICS (and PRECONDITIONED_HISTORY_METRICS) present in `history` (index = step), NaNs
    skipped, in batches of 1000."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(name, float(value), now, int(step))
        for name in (*HISTORY_METRICS, *PRECONDITIONED_HISTORY_METRICS)
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


def finish_run(run_id: str, status: str = "FINISHED", reason: str | None = None) -> None:
    """End a run FINISHED, FAILED or KILLED; `reason` (one line) becomes its END_REASON_TAG."""
    if reason and reason.strip():
        set_tags(run_id, {END_REASON_TAG: reason.strip().splitlines()[0][:500]})
    _client().set_terminated(run_id, status=status)


def end_for(error: BaseException) -> tuple[str, str]:
    """(status, reason) of a run whose body raised `error`: KILLED by a signal, else FAILED with the message."""
    stop = signals.interruption(error)
    if stop is not None:
        return "KILLED", stop.reason
    lost = outage(error)
    return "FAILED", str(lost or f"{type(error).__name__}: {error}")


@contextmanager
def ended_on_error(run_id: str) -> Iterator[None]:
    """The body raising ends the run: KILLED (reason: the signal) or FAILED (reason: the error). A signal that
    Lightning turned into SystemExit comes out as signals.Interrupted."""
    try:
        yield
    except BaseException as error:
        try:
            if outage(error) is None:  # a lost server would only be retried; the next run of the command closes it
                finish_run(run_id, *end_for(error))
        except Exception:  # the store itself went away: the next run of the command closes this run
            pass
        stop = signals.interruption(error)
        if stop is not None and stop is not error:
            raise stop from error
        raise


@contextmanager
def run(experiment: str, kind: str, params: Mapping[str, Any], **kwargs: Any) -> Iterator[str]:
    """A run that ends FINISHED, or FAILED / KILLED with the reason when the body raises (ended_on_error)."""
    run_id = start_run(experiment, kind, params, **kwargs)
    with ended_on_error(run_id):
        yield run_id
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
# Queries through MLflow's public API (mlflow.search_runs into pandas; metric histories by a thread pool over the
# client), typed. The same code serves a SQLite/PostgreSQL store and an `mlflow server` (http).

# init_output_sq (runner.log_initial_network) is measured, not chosen: listed so that no report takes it for a param
SEARCH_METRICS = ("lambda0", *CONSTANTS, "c_loss_censored", "c_sharp_censored", "c_barrier_censored", "n_runs", "hvps",
                  "non_monotone", "init_output_sq")
RUN_METRICS = ("lambda0", "eta_curvature", "eta", "diverged", "max_loss_ratio", "max_sharpness_ratio", "hvps", "barrier", "barrier_points",
               "lambda0_residual", "sharpness_residual_max")
X_TAG = "phasediag.x"  # log2 c of a search's child run
NON_MONOTONE_TAG = "phasediag.non_monotone"
INTERPOLATION_ARTIFACT = "interpolation.csv"  # (s, loss) of a run whose barrier was measured
_SEARCH_PARAM_TYPES = {"mode": str, "resolution": float, "x_min": float, "x_max": float, "x_start": float,
                       "gallop": float, "gallop_near": float, "close": float, "eps": float, "study": str, "lambda0_tol": float}  # fmt: skip
_HISTORY_THREADS = 8  # parallel get_metric_history calls


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
    """One row per run matching filter_string: run info, our tags, typed params, run metrics."""
    import math

    import mlflow

    exp_id = experiment_id(experiment, create=False)
    found = pd.DataFrame()
    if exp_id is not None:
        found = mlflow.search_runs([exp_id], filter_string=filter_string, output_format="pandas")
    tag_columns = {"run_name": "mlflow.runName", "kind": KIND_TAG, "parent_run_id": PARENT_TAG, "study": SEARCH_TAG,
                   "x": X_TAG, "non_monotone_questions": NON_MONOTONE_TAG}  # fmt: skip
    frame = found[[c for c in ("run_id", "status") if c in found]].copy()
    for name, tag in tag_columns.items():
        frame[name] = found[f"tags.{tag}"] if f"tags.{tag}" in found else None
    for name in ("start_time", "end_time"):  # naive UTC, as before
        frame[name] = pd.to_datetime(found[name], utc=True).dt.tz_localize(None) if name in found else pd.NaT
    frame = pd.concat([frame, found[[c for c in found.columns if c.startswith(("params.", "metrics."))]]], axis=1)
    base = ["run_id", "run_name", "status", "start_time", "end_time", "kind", "parent_run_id", "study", "x",
            "non_monotone_questions"]  # fmt: skip
    for name in base:
        if name not in frame:
            frame[name] = pd.Series(dtype=object)
    params = sorted(c for c in frame.columns if c.startswith("params."))
    # run-level metrics only: the last value of a per-step history is not a property of the run
    known = (*metrics, *HISTORY_METRICS, *PRECONDITIONED_HISTORY_METRICS)
    extra_metrics = sorted(c for c in frame.columns if c.startswith("metrics.") and c[8:] not in known)
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
    """Long format (run_id, metric, step, value) of the metric histories of many runs, sorted: one public
    get_metric_history call per (run, metric), on a thread pool. A value logged twice at one step keeps the latest."""
    from concurrent.futures import ThreadPoolExecutor

    run_ids = list(dict.fromkeys(str(r) for r in run_ids))
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    columns = ["run_id", "metric", "step", "value"]
    if not run_ids or not metrics:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(columns, (object, object, "int64", float))})
    client = _client()

    def one(job: tuple[str, str]) -> list[tuple]:
        run_id, metric = job
        return [(run_id, metric, m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, metric)]

    with ThreadPoolExecutor(max_workers=_HISTORY_THREADS) as pool:
        rows = [row for part in pool.map(one, [(r, m) for r in run_ids for m in metrics]) for row in part]
    frame = pd.DataFrame(rows, columns=["run_id", "metric", "step", "timestamp", "value"])
    frame = frame.sort_values(["run_id", "metric", "step", "timestamp"]).drop_duplicates(["run_id", "metric", "step"], keep="last")
    frame = frame[columns].astype({"step": "int64", "value": float})
    return frame.reset_index(drop=True)


def running_children(parent_run_id: str) -> list[tuple[str, str]]:
    """(run_id, trial number tag) of the child runs of a search's parent that are still RUNNING."""
    client = _client()
    where = client.get_run(parent_run_id).info.experiment_id
    found = client.search_runs([where], f"tags.`{PARENT_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'",
                               max_results=10000)  # fmt: skip
    return [(r.info.run_id, r.data.tags.get(TRIAL_TAG, "?")) for r in found]


def end_reasons(run_ids) -> dict[str, str]:
    """Why each run ended FAILED or KILLED (its END_REASON_TAG), for the runs that have one."""
    client = _client()
    tags = {run_id: client.get_run(run_id).data.tags for run_id in run_ids}
    return {run_id: found[END_REASON_TAG] for run_id, found in tags.items() if END_REASON_TAG in found}


def artifact_tables(run_ids, name: str) -> pd.DataFrame:
    """The CSV artifact `name` of each run that has it, stacked, with a run_id column first (empty: none has it)."""
    from concurrent.futures import ThreadPoolExecutor

    from mlflow.artifacts import download_artifacts

    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per run is noise

    def one(run_id: str) -> pd.DataFrame | None:
        with tempfile.TemporaryDirectory() as folder:
            try:
                path = download_artifacts(run_id=run_id, artifact_path=name, dst_path=folder, tracking_uri=uri)
            except Exception:  # this run has no such artifact
                return None
            table = pd.read_csv(path)
        table.insert(0, "run_id", run_id)
        return table

    run_ids = list(dict.fromkeys(str(r) for r in run_ids))
    with ThreadPoolExecutor(max_workers=8) as pool:
        parts = [p for p in pool.map(one, run_ids) if p is not None]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"run_id": pd.Series(dtype=object)})


def interpolations(run_ids) -> pd.DataFrame:
    """(run_id, s, loss): the interpolated loss L((1-s) theta_0 + s theta_T) of each run that has the artifact
    (a run without a measured barrier has none)."""
    table = artifact_tables(run_ids, INTERPOLATION_ARTIFACT)
    if table.empty:
        return pd.DataFrame({"run_id": pd.Series(dtype=object), "s": pd.Series(dtype=float), "loss": pd.Series(dtype=float)})
    return table[["run_id", "s", "loss"]]
