"""What each report is asked to do: dataclasses only (light: the CLI imports them for --help)."""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from phasediag.physics import grid
from phasediag.run.config import ConfigError, RunConfig, check_choices, check_out, parse
from phasediag.vocabulary import DerivativeVariable, DiagramAxis, WidthAxis

if TYPE_CHECKING:
    import numpy as np

TAU_CONSTANT = {"mse": 200.0, "xent": 100.0}  # c tau ~ 200 (Sec. 3), ~ 100 for cross-entropy (App. F)


@dataclass(frozen=True)
class SaturationConfig:
    """Intermediate saturation (Sec. 3, Fig. 5): <lambda_tau/lambda_0> against c, chi, chi', c_crit."""

    run: RunConfig
    """the model, data and training set-up; see unused_run_fields"""
    seeds: tuple[int, ...] = (0, 1, 2)
    """initialisation seeds, averaged over (e.g. 0 1 2, or 0..7)"""
    x_min: float = -1.0
    """lowest x = log2 c of the scan"""
    x_max: float = 4.0
    """highest x = log2 c of the scan"""
    x_step: float = 0.1
    """scan step in x = log2 c"""
    tau_constant: float | None = None
    """measurement time tau = round(tau_constant / c) SGD steps; null = 200 for mse, 100 for xent"""
    tau_fixed: int | None = None
    """a fixed tau in SGD steps for every c instead (the paper's uv model: 100); null = use tau_constant"""
    tau_halfwidth: int = 5
    """sharpness averaged over t in [tau - h, tau + h]; 0 = at tau only"""
    window: int = grid.SAVGOL_WINDOW
    """Savitzky-Golay window in grid points (odd, >= 3)"""
    polyorder: int = 3
    """Savitzky-Golay polynomial order: >= 2 (chi' is a second derivative) and < window"""
    variable: DerivativeVariable = "c"
    """what Def. 4 differentiates in: c (the paper) or log2c (x = log2 c)"""
    x_fit_max: float | None = None
    """derivatives only for x = log2 c <= x_fit_max; null = c <= 3.5 for the uv model (App. B), no limit otherwise"""
    out: str = "out/saturation"
    """folder for the PNG and CSV files"""
    log: bool = True
    """also log one MLflow run with the files (false: files only)"""

    # c is the grid, steps follow from tau, the sharpness schedule is the window, the seed is a list, no barrier and
    # no checkpoints (there are no per-c runs).
    unused_run_fields: ClassVar[tuple[str, ...]] = ("c", "steps", "schedule", "seed", "barrier", "log_checkpoints")

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.seeds:
            raise ConfigError("seeds is empty: give at least one seed, e.g. --seeds 0 1 2")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds={' '.join(map(str, self.seeds))!r} repeats a seed")
        if not all(math.isfinite(v) for v in (self.x_min, self.x_max, self.x_step)):
            raise ConfigError("x_min, x_max and x_step must be finite numbers")
        if not self.x_max > self.x_min:
            raise ConfigError(f"x_max={self.x_max!r} is not allowed: it must be > x_min={self.x_min!r}")
        if not 0 < self.x_step <= self.x_max - self.x_min:
            raise ConfigError(f"x_step={self.x_step!r} is not allowed: it must be in (0, x_max - x_min]")
        if self.tau_constant is not None and not (math.isfinite(self.tau_constant) and self.tau_constant > 0):
            raise ConfigError(f"tau_constant={self.tau_constant!r} is not allowed: it must be a finite number > 0")
        if self.tau_fixed is not None and not self.tau_fixed >= 1:
            raise ConfigError(f"tau_fixed={self.tau_fixed!r} is not allowed: it must be an integer >= 1")
        if not self.tau_halfwidth >= 0:
            raise ConfigError(f"tau_halfwidth={self.tau_halfwidth!r} is not allowed: it must be >= 0")
        if self.window < 3 or self.window % 2 == 0:
            raise ConfigError(f"window={self.window!r} is not allowed: it must be an odd integer >= 3")
        if not 2 <= self.polyorder < self.window:
            raise ConfigError(f"polyorder={self.polyorder!r} is not allowed: it must be >= 2 and < window={self.window}")
        if self.x_fit_max is not None and not self.x_fit_max > self.x_min:
            raise ConfigError(f"x_fit_max={self.x_fit_max!r} is not allowed: it must be > x_min={self.x_min!r}")
        top = self.x_max if self.fit_max is None else self.fit_max
        fit_points = sum(x <= top + 1e-9 for x in grid.log2_points(self.x_min, self.x_max, self.x_step))
        if fit_points < self.window:
            raise ConfigError(f"the grid has {fit_points} points to fit, fewer than window={self.window}: "
                              "widen [x_min, x_max] (or x_fit_max) or lower x_step")  # fmt: skip
        check_out("out", self.out)

    @property
    def x(self) -> "np.ndarray":
        """x = log2 c: x_min, x_min + x_step, ..., <= x_max."""
        import numpy as np

        return np.array(grid.log2_points(self.x_min, self.x_max, self.x_step))

    @property
    def fit_max(self) -> float | None:
        """The largest x used by the derivatives: x_fit_max, or for the uv model log2 3.5 (App. B)."""
        if self.x_fit_max is None and self.run.arch == "uv":
            return math.log2(grid.UV_C_FIT_MAX)
        return self.x_fit_max

    @property
    def tau_const(self) -> float:
        return self.tau_constant if self.tau_constant is not None else TAU_CONSTANT[self.run.loss]

    def tau(self, c: float) -> int:
        """The measurement time: tau_fixed, or round(tau_constant / c) (halves up), at least 1."""
        if self.tau_fixed is not None:
            return int(self.tau_fixed)
        return max(1, int(math.floor(self.tau_const / c + 0.5)))

    def window_steps(self, tau: int) -> range:
        """The steps t at which the sharpness is measured and averaged: [tau - h, tau + h], t >= 1."""
        return range(max(1, tau - self.tau_halfwidth), tau + self.tau_halfwidth + 1)

    def params(self) -> dict[str, Any]:
        """The parent run's params: the run set-up (without c, steps, schedule, seed...) and the scan."""
        run = {k: v for k, v in self.run.params().items() if k not in self.unused_run_fields}
        return {**run, "seeds": ",".join(map(str, self.seeds)), "x_min": self.x_min, "x_max": self.x_max,
                "x_step": self.x_step, "tau_constant": self.tau_const, "tau_fixed": self.tau_fixed,
                "tau_halfwidth": self.tau_halfwidth, "window": self.window, "polyorder": self.polyorder,
                "variable": self.variable, "x_fit_max": self.x_fit_max}  # fmt: skip

    @classmethod
    def from_strings(cls, values: dict[str, Any]) -> "SaturationConfig":
        return parse(cls, values)


@dataclass(frozen=True)
class AnalysisConfig:
    """Figures and tables from an experiment's runs in the tracking store."""

    experiment: str
    """the MLflow experiment that holds the searches"""
    out: str | None = None
    """folder for the PNG and CSV files; null = out/<experiment>"""
    log: bool = True
    """also log the files as an analysis run (false: files only)"""

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.experiment:
            raise ConfigError("experiment='' is not allowed: give a name")
        check_out("out", self.out)


@dataclass(frozen=True)
class DiagramConfig(AnalysisConfig):
    """Phase diagram, relations and c_barrier of an experiment's searches (Figs. 3, 4, 6)."""

    x: DiagramAxis = "auto"
    """y axis: width (y = 1/w, a panel per depth), depth (y = d, a panel per width), warmup_steps or init_scale (a panel
    per (d, w)), auto = width if several"""
    width_axis: WidthAxis = "inverse"
    """how widths are drawn: inverse (1/w, the paper's) or log2 (w on a log2 axis, as in the authors' notebook)"""


@dataclass(frozen=True)
class TrajectoriesConfig(AnalysisConfig):
    """Loss and sharpness against step, interpolated loss, for one search (Figs. 1, 2)."""

    search: str | None = None
    """the search's parent run id or study name; null = the experiment's only search"""
    c: tuple[float, ...] = ()
    """the values of c to show (trained ones); empty = every run, at most 12 spread over c"""


@dataclass(frozen=True)
class ClaimsConfig(AnalysisConfig):
    """Check the paper's claims on an experiment's own data (claims.md)."""

    saturation_experiment: str | None = None
    """where to look for saturation runs (c_crit); null = the same experiment"""
    uv_experiment: str | None = None
    """where to look for the uv job's run (phasediag uv); null = the same experiment"""


@dataclass(frozen=True)
class UVConfig:
    """The uv model of Sec. 5: exact phase diagrams, Eq. (16), Figs. 7, 8, 10, 11."""

    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256, 512)
    """widths w of the uv model"""
    inits: int = 500
    """random initialisations per width"""
    seed: int = 0
    """seed of the initialisations"""
    c_step: float = 0.1
    """grid step in x = log2 c"""
    steps: int = 10
    """gradient-descent steps per run"""
    out: str = "out/uv"
    """folder for the PNG and CSV files"""
    experiment: str = "uv"
    """MLflow experiment of the logged run"""
    log: bool = True
    """also log one MLflow run with the files (false: files only)"""

    def __post_init__(self) -> None:
        if not self.widths or min(self.widths) < 1 or self.inits < 1 or self.steps < 1 or not self.c_step > 0:
            raise ConfigError("widths, inits and steps must be >= 1 and c_step > 0")
        check_out("out", self.out)


@dataclass(frozen=True)
class SaturationWidthsConfig(SaturationConfig):
    """Fig. 5: the saturation scan at several widths, overlaid, with c_crit and the FWHM of chi' per width."""

    widths: tuple[int, ...] = (32, 128, 512)
    """widths, one scan each (replace --width)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.widths or min(self.widths) < 1 or len(set(self.widths)) != len(self.widths):
            raise ConfigError(f"widths={self.widths!r} is not allowed: give distinct integers >= 1")


@dataclass(frozen=True)
class UVFiguresConfig:
    """The uv model's trajectories (Fig. 9) and per-initialisation relations of the constants (Fig. 12)."""

    widths: tuple[int, ...] = (2, 8, 32, 128, 512)
    """widths w of Fig. 12"""
    inits: int = 500
    """random initialisations per width"""
    seed: int = 0
    """seed of the initialisations"""
    init: int = 0
    """which initialisation (0-based) Fig. 9 draws"""
    steps: int = 10
    """gradient-descent steps per run"""
    out: str = "out/uv_figures"
    """folder for the PNG and CSV files"""
    experiment: str = "uv"
    """MLflow experiment of the logged run"""
    log: bool = True
    """also log one MLflow run with the files (false: files only)"""

    def __post_init__(self) -> None:
        if not self.widths or min(self.widths) < 1 or self.inits < 1 or self.steps < 1 or self.init < 0:
            raise ConfigError(f"widths={self.widths!r}, inits={self.inits}, steps={self.steps}, init={self.init}: "
                              "widths, inits and steps must be >= 1, init >= 0")  # fmt: skip
        check_out("out", self.out)


@dataclass(frozen=True)
class LongrunConfig:
    """Fig. 1: long training with the paper's measurement schedule, and the four regimes on the measured curves."""

    run: RunConfig
    """model, data, seed and training set-up; see unused_run_fields"""
    cs: tuple[float, ...] = (1.0, 2.0, 4.0)
    """learning-rate constants c, one run each (eta = c / lambda0)"""
    epochs: int = 1000
    """training epochs (the paper's Fig. 1: 1000)"""
    out: str = "out/longrun"
    """folder for the PNG and CSV files"""
    log: bool = True
    """also log one MLflow run with the files (false: files only)"""

    unused_run_fields: ClassVar[tuple[str, ...]] = ("c", "steps", "schedule", "barrier", "log_checkpoints")

    def __post_init__(self) -> None:
        if not self.cs or not all(math.isfinite(c) and c > 0 for c in self.cs):
            raise ConfigError(f"cs={' '.join(map(str, self.cs))!r} is not allowed: give one or more numbers > 0")
        if len(set(self.cs)) != len(self.cs):
            raise ConfigError(f"cs={' '.join(map(str, self.cs))!r} repeats a value")
        if not self.epochs >= 1:
            raise ConfigError(f"epochs={self.epochs!r} is not allowed: it must be an integer >= 1")
        check_out("out", self.out)

    def params(self) -> dict[str, Any]:
        run = {k: v for k, v in self.run.params().items() if k not in self.unused_run_fields}
        return {**run, "cs": ",".join(f"{c:g}" for c in self.cs), "epochs": self.epochs, "schedule": "paper"}

    @classmethod
    def from_strings(cls, values: dict[str, Any]) -> "LongrunConfig":
        return parse(cls, values)
