"""What a search and a sweep are asked to do: dataclasses only (light: the CLI imports them for --help)."""

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from phasediag.physics import grid
from phasediag.run.config import ConfigError, RunConfig, check_choices, parse
from phasediag.vocabulary import ADAPTIVE_OPTIMIZERS, ZERO_OUTPUTS, Accelerator, Launcher, SearchMode

if TYPE_CHECKING:
    from phasediag.search.ledger import Ledger


def check_storage(url: str | None) -> None:
    """A storage URL names no password: it would be printed, logged and shown by `ps`; libpq reads it from the
    environment instead."""
    from urllib.parse import urlsplit

    if url and urlsplit(url).password is not None:
        raise ConfigError("storage URL holds a password: remove it and set PGPASSWORD, or put it in ~/.pgpass (docs/cluster.md)")
    file = next((url.removeprefix(scheme) for scheme in ("sqlite:///", "journal://") if url and url.startswith(scheme)), None)
    folder = None if file is None else Path(file).expanduser().absolute().parent
    if folder is not None and not folder.is_dir():  # never created for a typo
        raise ConfigError(f"storage={url!r} is not allowed: the folder {folder} does not exist; create it, or give another")


@dataclass(frozen=True)
class SearchConfig:
    """The critical constants c_loss, c_sharp, c_max, c_barrier of one (config, seed)."""

    run: RunConfig
    """the run set-up: every option of `phasediag run` but c"""
    mode: SearchMode = "bisect"
    """bisect (the four constants from few runs) or grid (the paper: every step upward from x_min to the divergence)"""
    resolution: float = 0.1
    """grid step in x = log2 c, in (0, 1] (0.1: c to within 7 %)"""
    x_min: float = -1.0
    """lowest x = log2 c of the grid (-1: c = 0.5)"""
    x_max: float = 10.0
    """highest x = log2 c tried (10: c = 1024); a constant not reached below it is NaN"""
    x_start: float | None = None
    """bisect: the first x = log2 c tried; null = x_min, a coarse upward pass from the bottom of the grid that sees a
    'yes' below c = 2 (1: c = 2, the faster option, cannot; docs/agreement.md)"""
    gallop: float = 1.5
    """bisect: step in x = log2 c upward from the highest 'no' while no 'yes' is known above it; no step below a
    constant is ever larger, so a 'yes' window at least this wide is always seen (1 or 0.5: narrower ones, more runs)"""
    gallop_near: float = 0.3
    """bisect: the same step once any transition has been seen (the constants sit close together)"""
    close: float = 0.05
    """bisect: a 'no' below a constant whose loss or sharpness margin (log of its largest ratio over the threshold)
    is above -close, a ratio within about 5 % of an increase, has its untrained grid neighbours trained too; 0 = off"""
    eps: float | None = None
    """c_sharp threshold: an increase is lambda_t / lambda_0 > 1 + eps; null = 0, or 0.05 for centered / zero_readout"""
    storage: str | None = None
    """Optuna storage URL (the search's ledger, resumed by a re-run): sqlite:///FILE, postgresql+psycopg2://USER@HOST:PORT/DB
    (password from PGPASSWORD or ~/.pgpass, never here) or journal:///SHARED/PATH/optuna.log; null = optuna.db next to the
    tracking store"""
    workers: int = 1
    """worker processes training values of c of this search in parallel"""
    heartbeat: int = 10
    """seconds between a running trial's heartbeats"""
    grace: int = 60
    """seconds after which a silent trial is failed (its worker died) and its c retried; > heartbeat"""
    wait: bool = True
    """trials left RUNNING by another process: wait for them (up to grace), or false: exit 1"""
    batch_c: int = 0
    """values of c trained together as one batched model; 0 = 1 on CPU, from the free memory on CUDA"""

    # the search chooses c, and reads L_t at every step (the loss catapult)
    unused_run_fields: ClassVar[tuple[str, ...]] = ("c", "loss_schedule")

    def __post_init__(self) -> None:
        check_choices(self)
        check_storage(self.storage)
        if not (self.gallop > 0 and self.gallop_near > 0):
            raise ConfigError(f"gallop={self.gallop!r}, gallop_near={self.gallop_near!r} are not allowed: both must be > 0")
        if not 0 < self.resolution <= 1:
            raise ConfigError(f"resolution={self.resolution!r} is not allowed: it must be in (0, 1]")
        if not self.x_max > self.x_min:
            raise ConfigError(f"x_max={self.x_max!r} is not allowed: it must be > x_min={self.x_min!r}")
        if self.close < 0:
            raise ConfigError(f"close={self.close!r} is not allowed: it must be >= 0 (0 = off)")
        if self.mode == "bisect" and not self.x_min <= self.start_x <= self.x_max:  # the grid starts at x_min
            raise ConfigError(f"x_start={self.x_start!r} is not allowed: it must be in [x_min, x_max] = [{self.x_min}, {self.x_max}]")
        if self.eps is not None and not 0 <= self.eps < 1:
            raise ConfigError(f"eps={self.eps!r} is not allowed: it must be in [0, 1), or null")
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers!r} is not allowed: it must be >= 1")
        if self.batch_c < 0 or (self.batch_c > 1 and (self.workers > 1 or self.run.sharpness_method != "lanczos")):
            raise ConfigError(f"batch_c={self.batch_c!r} is not allowed here: use 0 (auto), 1, or > 1 with workers=1 and "
                              "sharpness_method=lanczos")  # fmt: skip
        if self.batch_c > 1 and not self.run.plain_sgd:
            raise ConfigError(f"batch_c={self.batch_c!r} is not allowed with optimizer={self.run.optimizer!r}, warmup_steps="
                              f"{self.run.warmup_steps}: batched training is plain SGD at a constant eta; use 0 or 1")  # fmt: skip
        if self.heartbeat < 1 or self.grace <= self.heartbeat:
            raise ConfigError(f"heartbeat={self.heartbeat}, grace={self.grace}: need heartbeat >= 1 and grace > heartbeat")

    @property
    def n_points(self) -> int:
        return grid.n_points(self.x_min, self.x_max, self.resolution)

    @property
    def start_x(self) -> float:
        """The first x a bisection trains (x_start, or x_min when null)."""
        return self.x_min if self.x_start is None else self.x_start

    def x(self, k: int) -> float:
        return grid.x_at(self.x_min, self.resolution, k)

    def k(self, x: float) -> int:
        """The grid point nearest x, inside the grid."""
        return min(max(round((x - self.x_min) / self.resolution), 0), self.n_points - 1)

    def empty_ledger(self) -> "Ledger":
        from phasediag.search.ledger import Ledger  # numpy and pandas: not at import

        def steps(dx: float) -> int:
            return max(1, round(dx / self.resolution))

        return Ledger(self.n_points, self.mode, self.k(self.start_x), steps(self.gallop), steps(self.gallop_near), self.close)

    @property
    def sharp_eps(self) -> float:
        if self.eps is not None:
            return self.eps
        return 0.05 if self.run.output in ZERO_OUTPUTS else 0.0

    def identity(self) -> dict[str, Any]:
        """What defines the search (and so its study): not c, not where or how many workers run it."""
        # the preset is left out: the values it resolved to are in, so `--preset paper` resumes the default's study
        run = {k: v for k, v in self.run.params().items()
               if k not in ("c", "preset") and not self.run.is_default_training_option(k)}  # fmt: skip
        if self.run.optimizer in ADAPTIVE_OPTIMIZERS:  # adam's eta was c / lambda0 once: never resume such a study
            run["eta_curvature"] = self.run.eta_by
        return {**run, "mode": self.mode, "resolution": self.resolution, "x_min": self.x_min, "x_max": self.x_max,
                "x_start": self.start_x, "gallop": self.gallop, "gallop_near": self.gallop_near, "close": self.close,
                "eps": self.sharp_eps}  # fmt: skip

    @property
    def study_name(self) -> str:
        digest = hashlib.sha1(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:10]
        r = self.run
        return f"{r.experiment}-{r.arch}-d{r.depth}-w{r.width}-s{r.seed}-{self.mode}-{digest}"

    @property
    def storage_url(self) -> str:
        if self.storage:
            return self.storage
        from phasediag import tracking

        uri = tracking.tracking_uri()
        folder = os.path.dirname(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else ""
        return f"sqlite:///{os.path.join(folder, 'optuna.db')}"

    @classmethod
    def from_strings(cls, values: dict[str, Any]) -> "SearchConfig":
        return parse(cls, values)


@dataclass(frozen=True)
class SlurmOptions:
    """How `--launcher slurm` submits a sweep: one SLURM job array, one task per search. Each is also a key of the
    spec's `slurm:` mapping without the slurm_ prefix (`slurm: {partition: gpu, time: 240}`); the command line wins."""

    slurm_partition: str | None = None
    """partition the tasks run in (sbatch --partition); null = the cluster's default"""
    slurm_time: int | None = None
    """time limit of each task in minutes (sbatch --time); null = 60. A task that reaches it is requeued and resumes"""
    slurm_cpus_per_task: int | None = None
    """CPU cores per task (sbatch --cpus-per-task), also its torch threads; null = 1"""
    slurm_gpus_per_task: int | None = None
    """GPUs per task (sbatch --gpus-per-task); null = 0, none"""
    slurm_mem: str | None = None
    """memory per task, e.g. 16G (sbatch --mem); null = the partition's default"""
    slurm_array_parallelism: int | None = None
    """tasks of the array running at once (sbatch --array=...%N); null = as many as the cluster allows"""
    slurm_additional: tuple[str, ...] = ()
    """more sbatch options as KEY=VALUE, e.g. qos=high account=lab (each becomes #SBATCH --KEY=VALUE); empty = none"""
    slurm_folder: str | None = None
    """where the job scripts and the tasks' logs go, on a filesystem the nodes share; null = ./slurm"""
    slurm_signal_delay: int | None = None
    """seconds before the time limit at which SLURM warns a task (SIGUSR2): it stops cleanly and is requeued; null = 90"""
    slurm_requeues: int | None = None
    """times a task reaching its time limit is requeued (its search resumes each time); null = 3"""

    PREFIX: ClassVar[str] = "slurm_"

    def __post_init__(self) -> None:
        for name in ("slurm_time", "slurm_cpus_per_task", "slurm_array_parallelism", "slurm_signal_delay"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not allowed: it must be >= 1, or null")
        for name in ("slurm_gpus_per_task", "slurm_requeues"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not allowed: it must be >= 0, or null")
        for item in self.slurm_additional:
            if "=" not in item or item.startswith("-"):
                raise ConfigError(f"slurm_additional item {item!r} is not allowed: write KEY=VALUE, e.g. qos=high")

    @classmethod
    def from_spec(cls, mapping: Any, where: str) -> "SlurmOptions":
        """The spec's `slurm:` mapping (keys without the prefix), checked like the command line."""
        if not isinstance(mapping, dict):
            raise ConfigError(f"{where} key 'slurm' must be a mapping, e.g. {{partition: gpu, time: 240}}")
        names = [f.name.removeprefix(cls.PREFIX) for f in dataclasses.fields(cls)]
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise ConfigError(f"{where} key 'slurm.{unknown[0]}' is not allowed: use {', '.join(names)}")
        try:
            return parse(cls, {f"{cls.PREFIX}{k}": v for k, v in mapping.items()})
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None

    def over(self, base: "SlurmOptions") -> "SlurmOptions":
        """Each of these options when given (not null, not empty), else base's."""
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) not in (None, ())}
        return dataclasses.replace(base, **given)


@dataclass(frozen=True)
class SweepOptions:
    """Many searches from a YAML spec (sweeps/*.yaml), shared by any number of workers."""

    spec: str
    """the sweep's YAML file (sweeps/*.yaml)"""
    workers: int = 1
    """local worker processes"""
    storage: str | None = None
    """Optuna storage URL shared by all workers: sqlite:///FILE (one machine), postgresql+psycopg2://USER@HOST:PORT/DB
    (password from PGPASSWORD or ~/.pgpass) or journal:///SHARED/PATH/optuna.log; null = optuna.db next to the
    tracking store"""
    data_dir: str | None = None
    """where this worker finds the data; null = the spec's, or the default data folder"""
    accelerator: Accelerator | None = None
    """where this worker trains: auto, cpu or gpu; null = the spec's, or auto"""
    wait: bool | None = None
    """searches RUNNING in another process: wait for them (null = true), or false: exit 1 naming them; with
    --launcher slurm, true also follows the job with a progress bar until it ends"""
    launcher: Launcher = "local"
    """where the searches run: local = the worker processes here; slurm = one SLURM job array, one task per search
    (docs/cluster.md)"""
    slurm: SlurmOptions = field(default_factory=SlurmOptions)

    WORKER_FIELDS: ClassVar[tuple[str, ...]] = ("storage", "data_dir", "accelerator", "wait")  # override every point

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers!r} is not allowed: it must be >= 1")
        check_storage(self.storage)
        if self.launcher == "slurm" and self.workers != 1:
            raise ConfigError(f"workers={self.workers} is not allowed with launcher=slurm: each search is one SLURM task "
                              "(slurm_array_parallelism sets how many run at once)")  # fmt: skip
        given = [f.name for f in dataclasses.fields(self.slurm) if getattr(self.slurm, f.name) not in (None, ())]
        if self.launcher == "local" and given:
            raise ConfigError(f"{given[0]} is given but launcher=local: add --launcher slurm, or leave it out")

    def overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.WORKER_FIELDS if getattr(self, k) is not None}


@dataclass(frozen=True)
class StatusOptions:
    """Where a sweep stands: per search done, running, failed (and why) or not started; exit 0 only when all are done."""

    spec: str
    """the sweep's YAML file (sweeps/*.yaml)"""
    storage: str | None = None
    """the Optuna storage URL the sweep ran with; null = optuna.db next to the tracking store"""

    def __post_init__(self) -> None:
        check_storage(self.storage)

    def overrides(self) -> dict[str, Any]:
        return {"storage": self.storage} if self.storage else {}
