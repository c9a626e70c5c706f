"""What a search and a sweep are asked to do: dataclasses only (light: the CLI imports them for --help)."""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from phasediag.physics import grid
from phasediag.run.config import ConfigError, RunConfig, check_choices, parse
from phasediag.vocabulary import ZERO_OUTPUTS, Accelerator, SearchMode

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


def check_storage(url: str | None) -> None:
    """A storage URL names no password: it would be printed, logged and shown by `ps`; libpq reads it from the
    environment instead."""
    from urllib.parse import urlsplit

    if url and urlsplit(url).password is not None:
        raise ConfigError("storage URL holds a password: remove it and set PGPASSWORD, or put it in ~/.pgpass (docs/cluster.md)")


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
    gallop: float = 1.0
    """bisect: step in x = log2 c upward from the highest 'no' while no 'yes' is known above it; no step below a
    constant is ever larger, so a 'yes' window at least this wide is always seen (0.5: narrower ones, 4-5 more runs)"""
    gallop_near: float = 0.3
    """bisect: the same step once any transition has been seen (the constants sit close together)"""
    close: float = 0.01
    """bisect: a 'no' below a constant whose loss or sharpness ratio rounded to 1.00 (margin, the log of the largest
    ratio over its threshold, above -close) has its untrained grid neighbours trained too; 0 = off"""
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
    """searches RUNNING in another process: wait for them (null = true), or false: exit 1 naming them"""

    WORKER_FIELDS: ClassVar[tuple[str, ...]] = ("storage", "data_dir", "accelerator", "wait")  # override every point

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers!r} is not allowed: it must be >= 1")
        check_storage(self.storage)

    def overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.WORKER_FIELDS if getattr(self, k) is not None}