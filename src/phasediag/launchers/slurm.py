"""`phasediag sweep SPEC --launcher slurm`: the sweep's searches as one SLURM job array, through submitit.

One array task per search point, not N workers sharing the points: SLURM then does the scheduling (how many run at
once, a GPU per search, a time limit per search), `squeue` and `sacct` speak of points, and a preemption or a time
limit touches one search. Each task still takes its point through the sweep's claims study (search/sweep.py), so a
point is searched once whatever the requeues, resubmissions, or local workers on the same storage.

Signals: inside a task the project's handlers (signals.py) own SIGTERM and SIGINT, and SLURM's warning before the
time limit (SIGUSR2, `sbatch --signal`) is turned into a SIGTERM: the search stops cleanly (the run being trained
ends KILLED, its trial FAILED and retried), then submitit's own SIGUSR2 handler requeues the task (a Checkpointable:
the same call again), which resumes the search from its Optuna ledger. A cancelled task (scancel: SIGTERM) stops the
same way and is not requeued; a preempted one is requeued by SLURM itself.
"""

import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import submitit
from optuna.trial import TrialState
from tqdm import tqdm

from phasediag import signals, tracking
from phasediag.run.config import ConfigError
from phasediag.search import sweep
from phasediag.search.config import SlurmOptions
from phasediag.search.study import Unfinished, open_study, worker_exit_code

log = logging.getLogger(__name__)
TASKS_ATTR = "slurm_tasks"  # the claims study's record: search point (as a string) -> its latest SLURM task id
FOLDER_ATTR = "slurm_folder"  # ... and where submitit keeps the job scripts and logs
# A task in one of these states will not run again unless resubmitted; any other state (PENDING, RUNNING,
# REQUEUED, COMPLETING, ...) is still SLURM's business.
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
            "DEADLINE")  # fmt: skip
DEFAULTS = {"time": 60, "cpus_per_task": 1, "signal_delay": 90, "requeues": 3}  # the null defaults of SlurmOptions


def queue_states(task_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """SLURM's (state, reason) of each task id (12_3 in an array, or 12), from squeue for the jobs it still holds,
    else sacct where accounting is on; a task neither knows is left out, and so is everything without SLURM."""
    ids = sorted(set(task_ids))
    jobs = ",".join(sorted({i.split("_")[0] for i in ids}))
    found: dict[str, tuple[str, str]] = {}
    for argv in (["squeue", "-h", "-r", "--states=all", "-j", jobs, "-o", "%i|%T|%r"],
                 ["sacct", "-n", "-P", "-X", "-j", jobs, "-o", "JobID,State,ExitCode"]):  # fmt: skip
        if not ids or shutil.which(argv[0]) is None:
            break
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            continue
        for line in result.stdout.splitlines() if result.returncode == 0 else []:
            task, state, reason = (line.split("|") + ["", ""])[:3]
            if task in ids and task not in found:
                state = state.split()[0] if state else "UNKNOWN"  # sacct: "CANCELLED by 0"
                found[task] = (state, "" if reason in ("None", "0:0") else reason)
    return found


def is_active(state: str) -> bool:
    return state not in TERMINAL


_warned: list[int] = []  # SLURM's warning signal arrived in this task


def _warning_handler(signum: int, frame) -> None:
    """SIGUSR2 from SLURM (the time limit is near): stop exactly as on SIGTERM, then requeue (SearchTask)."""
    _warned.append(signum)
    os.kill(os.getpid(), signal.SIGTERM)


class SearchTask(submitit.helpers.Checkpointable):
    """One array task: the search of one point, taken through the claims (a point done already trains nothing).
    Checkpointable: on SLURM's warning submitit requeues this same call; the search resumes from its ledger."""

    def __init__(self, spec: sweep.SweepSpec, threads: int) -> None:
        self.spec, self.threads = spec, threads
        self.study_names = _study_names(spec)  # as submitted; the code may change before a requeued task runs

    def _check_unchanged(self) -> None:
        if _study_names(self.spec) != self.study_names:
            raise ConfigError(f"sweep {self.spec.experiment}: phasediag changed since this task was submitted (the "
                              "studies of its searches are named differently now): submit the sweep again")  # fmt: skip

    def __call__(self, point: int) -> int:
        import torch

        from phasediag import logs

        logs.configure()
        requeue = signal.getsignal(signal.SIGUSR2)  # submitit's: checkpoint this call, requeue the task, exit
        signals.install()
        signal.signal(signal.SIGUSR2, _warning_handler)
        os.environ.pop("MLFLOW_RUN_ID", None)
        torch.set_num_threads(self.threads)
        try:
            self._check_unchanged()
            sweep.work(self.spec, points=[point])
            study = claims(self.spec)
            sweep.finish_if_done(self.spec, study, study.user_attrs["sweep_run_id"])  # set by the submitter after sbatch
        except BaseException as error:
            if _warned and signals.interruption(error) is not None and callable(requeue):
                log.warning("search %d stopped on SLURM's warning (time limit or preemption): requeued", point)
                requeue(signal.SIGUSR2, None)  # exits; raises when requeued too often
            sys.exit(worker_exit_code(error))
        return point


def _study_names(spec: sweep.SweepSpec) -> tuple[str, ...]:
    return (spec.study_name, *(point.study_name for point in spec.points))


def claims(spec: sweep.SweepSpec):
    """The sweep's claims study (created if new)."""
    return open_study(spec.points[0], name=spec.study_name)


@dataclass
class Submission:
    """What `submit` did: the array it submitted (None: nothing to submit) and where the logs are."""

    experiment: str
    searches: int
    job_id: str | None
    tasks: dict[int, str]  # point -> SLURM task id (12_3), for the points submitted now
    logs: Path  # the tasks' stdout and stderr: logs/<task id>/<task id>_0_log.{out,err}
    done: list[int] = field(default_factory=list)  # points already done, not submitted
    queued: dict[int, str] = field(default_factory=dict)  # points still pending or running in an earlier job


def _executor(spec: sweep.SweepSpec, options: SlurmOptions, folder: Path) -> submitit.SlurmExecutor:
    value = {name: getattr(options, f"slurm_{name}") for name in DEFAULTS}
    value = {name: DEFAULTS[name] if v is None else v for name, v in value.items()}
    executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=value["requeues"])
    parameters = {"job_name": f"phasediag-{spec.experiment}", "time": value["time"], "cpus_per_task": value["cpus_per_task"],
                  "signal_delay_s": value["signal_delay"],
                  "additional_parameters": dict(item.split("=", 1) for item in options.slurm_additional)}  # fmt: skip
    for name in ("partition", "gpus_per_task", "mem", "array_parallelism"):  # null: left to SLURM and submitit
        if getattr(options, f"slurm_{name}"):
            parameters[name] = getattr(options, f"slurm_{name}")
    executor.update_parameters(**parameters)
    return executor


def submit(spec: sweep.SweepSpec, options: SlurmOptions) -> Submission:
    """Submit every search not done and not already queued as one job array; returns at once. The storage and the
    tracking store must be reachable from every node (checked first: a SQLite file is refused)."""
    from phasediag.search.storage import check_multi_node

    options = options.over(spec.slurm)
    check_multi_node(spec.points[0].storage_url, tracking.tracking_uri())
    study = claims(spec)
    folder = Path(options.slurm_folder or "slurm").resolve() / spec.experiment
    done = sorted({t.params["point"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))})
    recorded = {int(p): task for p, task in study.user_attrs.get(TASKS_ATTR, {}).items()}
    states = queue_states(recorded.values())
    queued = {p: task for p, task in recorded.items() if p not in done and task in states and is_active(states[task][0])}
    todo = [i for i in range(len(spec.points)) if i not in done and i not in queued]
    submission = Submission(spec.experiment, len(spec.points), None, {}, folder, done, queued)
    if not todo:
        if len(done) == len(spec.points):
            sweep.finish_if_done(spec, study, sweep.sweep_run(spec, study, len(spec.points)))
        return submission
    threads = options.slurm_cpus_per_task or DEFAULTS["cpus_per_task"]
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's complaint too: one line here
            jobs = _executor(spec, options, folder).map_array(SearchTask(spec, threads), todo)
    except submitit.core.utils.FailedJobError as error:  # sbatch said no: a bad partition, QOS, account, size
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise ConfigError(f"SLURM refused the job array: {lines[-1].strip() if lines else error}") from None
    # the sweep's run once SLURM took the array (a refused one leaves none); the tasks need it only at their end
    tracking.set_status_running(sweep.sweep_run(spec, study, len(spec.points)))
    submission.tasks = {point: job.job_id for point, job in zip(todo, jobs)}
    submission.job_id = jobs[0].job_id.split("_")[0]
    study.set_user_attr(TASKS_ATTR, {**{str(p): t for p, t in recorded.items()}, **{str(p): t for p, t in submission.tasks.items()}})
    study.set_user_attr(FOLDER_ATTR, str(folder))
    log.info("sweep %s: %d searches submitted as SLURM job %s", spec.experiment, len(todo), submission.job_id)
    return submission


def finished_searches(spec: sweep.SweepSpec) -> tuple[int, int]:
    """(searches done, runs trained in them), read from the tracking store: the FINISHED parent runs of the spec's
    searches."""
    found = tracking.searches(spec.experiment)
    if found.empty:
        return 0, 0
    mine = found[found["study"].isin({p.study_name for p in spec.points}) & (found["status"] == "FINISHED")]
    mine = mine.drop_duplicates("study")
    return len(mine), int(mine["n_runs"].fillna(0).sum())


def follow(spec: sweep.SweepSpec, submission: Submission, poll: float = 5.0) -> tuple[int, int]:
    """Wait for the submitted tasks, a bar counting the finished searches (from the tracking store); Unfinished when
    the tasks ended with searches left (see `phasediag status`)."""
    tasks = {**submission.queued, **submission.tasks}
    bar = tqdm(total=len(spec.points), desc=f"sweep {spec.experiment} (SLURM job {submission.job_id})", unit="search",
               disable=None)  # fmt: skip
    try:
        while True:
            done, runs = finished_searches(spec)
            bar.n = done
            bar.set_postfix(runs=runs)
            active = [t for t, (state, _) in queue_states(tasks.values()).items() if is_active(state)]
            if done == len(spec.points) or not active:
                break
            signals.sleep(poll)
    finally:
        bar.close()
    done, runs = finished_searches(spec)
    if done < len(spec.points):
        raise Unfinished(f"sweep {spec.experiment}: {done}/{len(spec.points)} searches done and no task of SLURM job "
                         f"{submission.job_id} left; see `phasediag status` and the logs in {submission.logs}")  # fmt: skip
    return done, runs
