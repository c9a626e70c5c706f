"""`phasediag status SPEC`: where a sweep stands, per search point: done, running, failed (and why) or not started.

Read from the tracking store (each search's parent run: FINISHED, or KILLED / FAILED with the reason), the sweep's
claims study (which worker holds which point, and whether its heartbeat is still beating) and, for a sweep
submitted to SLURM, squeue / sacct (queued, running, cancelled, timed out). The same for a local sweep. It trains
nothing and creates no study, run or file.
"""

from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from phasediag import tracking
from phasediag.launchers.slurm import FOLDER_ATTR, TASKS_ATTR, is_active, queue_states
from phasediag.search.storage import journal_path, open_storage
from phasediag.search.study import quiet_optuna
from phasediag.search.sweep import SweepSpec
from phasediag.vocabulary import CONSTANTS

STATES = ("done", "running", "failed", "not started")


@dataclass
class PointStatus:
    point: int
    search: str  # the search's study name
    state: str  # one of STATES
    detail: str  # its constants, who runs it, why it failed, where it waits


@dataclass
class SweepStatus:
    experiment: str
    points: list[PointStatus]
    logs: str | None = None  # the SLURM tasks' log folder, for a submitted sweep

    @property
    def complete(self) -> bool:
        return all(p.state == "done" for p in self.points)

    def counts(self) -> dict[str, int]:
        return {state: sum(p.state == state for p in self.points) for state in STATES}


def _claims(spec: SweepSpec) -> optuna.Study | None:
    """The claims study if it exists (None: the sweep never started; a missing storage file is not created)."""
    point = spec.points[0]
    url = point.storage_url
    path = journal_path(url) or (url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None)
    if path is not None and not Path(path).expanduser().is_file():
        return None
    try:
        with quiet_optuna():  # the heartbeat is what tells a dead worker's claim from a live one
            return optuna.load_study(study_name=spec.study_name, storage=open_storage(url, point.heartbeat, point.grace))
    except KeyError:
        return None


def _stale(study: optuna.Study) -> set[int]:
    """Trial ids RUNNING without a heartbeat for the grace period (their worker died; the next worker fails them)."""
    storage = study._storage
    # the storage's own stale-trial check, the one Study.optimize runs; read here, nothing is failed
    return set(storage._get_stale_trial_ids(study._study_id)) if isinstance(storage, BaseHeartbeat) else set()


def _searches(spec: SweepSpec) -> dict[str, dict]:
    """The newest parent run of each of the spec's searches: status, constants, n_runs and why it ended."""
    found = tracking.searches(spec.experiment)
    if found.empty:
        return {}
    found = found[found["study"].isin({p.study_name for p in spec.points})].sort_values("start_time")
    rows = {row["study"]: row for row in found.to_dict("records")}
    ended = [row["run_id"] for row in rows.values() if row["status"] in ("FAILED", "KILLED")]
    for run_id, reason in tracking.end_reasons(ended).items():
        next(row for row in rows.values() if row["run_id"] == run_id)["end_reason"] = reason
    return rows


def _constants(row: dict) -> str:
    values = "  ".join(f"{name}={row[name]:.4g}" for name in CONSTANTS if name in row)
    return f"{values}  runs={int(row['n_runs'])}" if row.get("n_runs") == row.get("n_runs") else values


@dataclass
class Task:
    """A point's latest SLURM task: its id (12_3), and SLURM's state and reason (None: SLURM no longer knows it)."""

    id: str
    state: str | None
    reason: str = ""
    last_error: str = ""  # the last line of its stderr log, once it ended otherwise than COMPLETED

    @property
    def active(self) -> bool:
        return self.state is not None and is_active(self.state)

    def __str__(self) -> str:
        state = self.state or "no longer listed by squeue"
        return f"SLURM {self.id} {state}" + (f" ({self.reason})" if self.reason else "") + (
            f": {self.last_error}" if self.last_error else "")  # fmt: skip


def _last_error(folder: str | None, task: str) -> str:
    """The last line a task wrote to stderr (submitit's layout: FOLDER/TASK/TASK_0_log.err); empty if none."""
    log = Path(folder or ".", task, f"{task}_0_log.err")
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.is_file() else []
    return lines[-1][:300] if lines else ""


def _point_status(point: int, search: str, trials: list[FrozenTrial], stale: set[int], run: dict | None,
                  task: Task | None) -> PointStatus:  # fmt: skip
    """One point from its claims (trials), its parent run and its SLURM task."""
    slurm = str(task) if task else ""
    if any(t.state == TrialState.COMPLETE for t in trials) or (run is not None and run["status"] == "FINISHED"):
        return PointStatus(point, search, "done", _constants(run) if run else "")  # claimed, or searched on its own
    live = [t for t in trials if t.state == TrialState.RUNNING and t._trial_id not in stale]
    if live:
        where = f"worker {live[-1].user_attrs.get('worker', '?')}"
        return PointStatus(point, search, "running", "; ".join(filter(None, (where, slurm))))
    if task and task.active:
        return PointStatus(point, search, "running" if task.state == "RUNNING" else "not started", slurm)
    dead = [t for t in trials if t.state == TrialState.RUNNING]
    ended = run is not None and run["status"] in ("FAILED", "KILLED")
    if dead or ended or any(t.state == TrialState.FAIL for t in trials) or (task and task.state != "COMPLETED"):
        reasons = [f"{run['status']}: {run.get('end_reason') or 'no reason recorded'}" if ended else "",
                   f"worker {dead[-1].user_attrs.get('worker', '?')} stopped (no heartbeat)" if dead else "", slurm]
        return PointStatus(point, search, "failed", "; ".join(filter(None, reasons)) or "its claim failed")
    return PointStatus(point, search, "not started", slurm)


def sweep_status(spec: SweepSpec) -> SweepStatus:
    """Every point's state, in the spec's order."""
    study = _claims(spec)
    trials = study.get_trials(deepcopy=False) if study else []
    stale = _stale(study) if study else set()
    tasks = {int(p): task for p, task in (study.user_attrs.get(TASKS_ATTR, {}) if study else {}).items()}
    states = queue_states(tasks.values())
    runs = _searches(spec)
    folder = study.user_attrs.get(FOLDER_ATTR) if study else None
    points = []
    for i, config in enumerate(spec.points):
        mine = [t for t in trials if t.params.get("point") == i]
        task = Task(tasks[i], *states.get(tasks[i], (None, ""))) if i in tasks else None
        if task and task.state is not None and not task.active and task.state != "COMPLETED":
            task.last_error = _last_error(folder, task.id)
        points.append(_point_status(i, config.study_name, mine, stale, runs.get(config.study_name), task))
    return SweepStatus(spec.experiment, points, folder)
