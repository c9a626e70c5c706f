"""Where the Optuna studies live: a database (`sqlite:///FILE`, `postgresql+psycopg2://USER@HOST:PORT/DB`) or a
journal file on a shared filesystem (`journal:///SHARED/PATH/optuna.log`: Optuna's JournalStorage, for clusters
without a database server). A storage belongs to one tracking store (its studies hold that store's run ids):
the pair is recorded in the storage and checked each time it is opened."""

import functools
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from phasediag import tracking
from phasediag.run.config import ConfigError

JOURNAL = "journal://"  # journal:///abs/path/optuna.log (or journal://relative/path)
PAIR_STUDY = "phasediag:tracking-store"  # a study that only records which tracking store this storage belongs to
PAIR_ATTR = "tracking_store"
HEARTBEAT_ATTR = "phasediag:heartbeat"  # a journal trial's last heartbeat (Unix time)

StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


class JournalWithHeartbeat(JournalStorage, BaseHeartbeat):
    """Optuna's JournalStorage with the heartbeat RDBStorage has (Optuna 5.0's journal has none): a running trial
    beats by writing the time into a system attribute; one silent for `grace` s is stale. The clocks of the nodes
    are compared, so they must agree (NTP) to well within `grace`."""

    def __init__(self, path: str, heartbeat: int | None, grace: int | None, on_stale: StaleCallback | None) -> None:
        super().__init__(JournalFileBackend(path))
        self._heartbeat, self._grace, self._on_stale = heartbeat, grace, on_stale

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except UpdateFinishedTrialError:
            pass  # another worker failed it (a late beat): Study.optimize learns it when it reports the trial

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now, grace = time.time(), self._grace or 2 * (self._heartbeat or 0)
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [t._trial_id for t in running if now - t.system_attrs.get(HEARTBEAT_ATTR, now) > grace]

    def get_heartbeat_interval(self) -> int | None:
        return self._heartbeat

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self._on_stale


def journal_path(url: str) -> str | None:
    """The file of a journal:// storage URL (None: another kind of URL)."""
    return url.removeprefix(JOURNAL) if url.startswith(JOURNAL) else None


@functools.cache
def open_storage(url: str, heartbeat: int | None = None, grace: int | None = None,
                 on_stale: StaleCallback | None = None) -> BaseStorage:  # fmt: skip
    """The storage behind `url` (one object per process and arguments), checked against the tracking store:
    TrackingError (one line) when it belongs to another, or cannot be used."""
    try:
        path = journal_path(url)
        if path is not None:
            storage = JournalWithHeartbeat(path, heartbeat, grace, on_stale)
        else:
            with tracking.sqlite_lock(url):
                storage = RDBStorage(url, heartbeat_interval=heartbeat, grace_period=grace,
                                     heartbeat_stale_trial_callback=on_stale, engine_kwargs=_engine_kwargs(url))  # fmt: skip
    except Exception as error:  # SQLAlchemy / driver / file errors vary by backend
        first_line = str(error).splitlines()[0][:200] if str(error) else ""
        raise tracking.TrackingError(f"Optuna storage {tracking.redact(url)!r} is unusable ({type(error).__name__}: {first_line})") from None
    check_pair(storage, url, tracking.tracking_uri())
    return storage


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}


def check_pair(storage: BaseStorage, url: str, tracking_uri: str) -> None:
    """Record the tracking store in a storage that has none; refuse one recorded with another (its studies point
    at runs that this tracking store does not have: MLflow would fail on them mid-way)."""
    mine = tracking.store_identity(tracking_uri)
    try:
        study_id = storage.get_study_id_from_name(PAIR_STUDY)
    except KeyError:
        try:
            study_id = storage.create_new_study([StudyDirection.MINIMIZE], PAIR_STUDY)
        except DuplicatedStudyError:  # another process recorded it a moment ago
            study_id = storage.get_study_id_from_name(PAIR_STUDY)
    recorded = storage.get_study_user_attrs(study_id).get(PAIR_ATTR)
    if recorded is None:
        storage.set_study_user_attr(study_id, PAIR_ATTR, mine)
    elif recorded != mine:
        raise tracking.TrackingError(f"Optuna storage {tracking.redact(url)} belongs to tracking store {recorded}, not "
                                     f"{mine}: set MLFLOW_TRACKING_URI to it, or give another --storage")  # fmt: skip


def check_multi_node(storage_url: str, tracking_uri: str) -> None:
    """Refuse (ConfigError, one line) a storage or tracking store that the nodes of a multi-node job cannot share:
    a SQLite file (its locks do not work across machines, e.g. on NFS) or a journal file at a relative path."""
    if storage_url.startswith("sqlite"):
        raise ConfigError(f"Optuna storage {tracking.redact(storage_url)} is a SQLite file, which the nodes of a cluster "
                          "job cannot share: use --storage journal:///SHARED/PATH/optuna.log (a shared filesystem) or "
                          "postgresql+psycopg2://USER@HOST:PORT/DB (docs/cluster.md)")  # fmt: skip
    path = journal_path(storage_url)
    if path is not None and not Path(path).is_absolute():
        raise ConfigError(f"Optuna storage {storage_url} is a relative path: every node must find the same file, give "
                          "journal:///SHARED/PATH/optuna.log (absolute, on a shared filesystem)")  # fmt: skip
    if tracking_uri.startswith(("sqlite", "file:")) or "://" not in tracking_uri:
        raise ConfigError(f"tracking store {tracking.redact(tracking_uri)} is a local file, which the nodes of a cluster "
                          "job cannot share: start `mlflow server` and set MLFLOW_TRACKING_URI=http://HOST:PORT "
                          "(docs/cluster.md)")  # fmt: skip
