"""One validated dataclass per job. All bad input fails here, before any data is read or run is created."""

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

ARCHS = ("fcn", "cnn", "resnet", "uv")
PARAMS = ("sp", "ntp")
CNN_DEPTHS = (5, 7, 10)
RESNET_DEPTHS = (18, 34)
OUTPUTS = ("plain", "centered", "zero_readout")
LOSS_NAMES = ("mse", "xent")
DATASETS = ("fashion_mnist", "mnist", "cifar10", "synthetic", "uv")
SHARPNESS_METHODS = ("lanczos", "power")
HVP_MODES = ("cached", "jvp", "double_backward")
ACCELERATORS = ("auto", "cpu", "gpu")
SCHEDULES = ("every_step", "paper")
LOSS_SETS = ("train", "measure")


class ConfigError(ValueError):
    """Bad user input; the message is one line naming the value and what is allowed."""


def _one_of(name: str, value: Any, allowed: tuple, where: str = "") -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed{where}: use one of {', '.join(map(str, allowed))}")


def _at_least(name: str, value: float, low: float) -> None:
    if not value >= low:
        raise ConfigError(f"{name}={value!r} is not allowed: it must be >= {low}")


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{value!r} is not a boolean: use true or false")


@dataclass(frozen=True)
class RunConfig:
    """One early-training run at eta = c / lambda0. Field names are the MLflow param names."""

    arch: str = "fcn"
    depth: int = 4
    width: int = 256
    param: str = "sp"
    dataset: str = "fashion_mnist"
    subset: int = 0  # first N training examples; 0 = the whole training split
    loss: str = "mse"
    c: float = 2.0
    seed: int = 0
    batch_size: int = 512  # 0 = full batch (gradient descent)
    steps: int = 10  # T1
    measure_examples: int = 0  # 0 = the paper's m: 2048 for mse, 4096 for xent
    sharpness_method: str = "lanczos"
    sharpness_tol: float = 1e-3
    bias: bool = False
    output: str = "plain"
    output_scale: float = 1.0
    output_sigma: float | None = None  # alpha = width ** -sigma, times output_scale
    barrier: bool = False
    experiment: str = "phasediag"
    schedule: str = "every_step"  # when to measure sharpness after T1... see callbacks.measure_schedule
    hvp_mode: str = "cached"
    accelerator: str = "auto"
    log_checkpoints: bool = True
    data_dir: str = "data"
    download: bool = False  # let torchvision download a missing dataset (needs the network)
    loss_set: str = "train"  # L_t (and the barrier) on the training set (the paper), or "measure": the m examples
    output_norm: float | None = None  # s of App. H.1: f_s = s f / ||f(theta_0)||, the norm measured once at init

    def __post_init__(self) -> None:
        _one_of("arch", self.arch, ARCHS)
        _one_of("param", self.param, PARAMS)
        _one_of("loss", self.loss, LOSS_NAMES)
        _one_of("output", self.output, OUTPUTS)
        _one_of("sharpness_method", self.sharpness_method, SHARPNESS_METHODS)
        _one_of("hvp_mode", self.hvp_mode, HVP_MODES)
        _one_of("accelerator", self.accelerator, ACCELERATORS)
        _one_of("schedule", self.schedule, SCHEDULES)
        _one_of("loss_set", self.loss_set, LOSS_SETS)
        if self.dataset.split(":")[0] not in DATASETS:
            raise ConfigError(f"dataset={self.dataset!r} is not allowed: use one of {', '.join(DATASETS)}")
        _at_least("width", self.width, 1)
        _at_least("steps", self.steps, 1)
        _at_least("subset", self.subset, 0)
        _at_least("batch_size", self.batch_size, 0)
        _at_least("measure_examples", self.measure_examples, 0)
        if not (math.isfinite(self.c) and self.c > 0):
            raise ConfigError(f"c={self.c!r} is not allowed: it must be a finite number > 0")
        if not (0 < self.sharpness_tol < 1):
            raise ConfigError(f"sharpness_tol={self.sharpness_tol!r} is not allowed: it must be in (0, 1)")
        if self.arch == "fcn":
            _at_least("depth", self.depth, 1)
        else:
            allowed = {"cnn": CNN_DEPTHS, "resnet": RESNET_DEPTHS, "uv": (2,)}[self.arch]
            _one_of("depth", self.depth, allowed, f" for arch {self.arch!r}")
        if self.arch in ("cnn", "resnet") and self.param != "sp":
            raise ConfigError(f"param={self.param!r} is not allowed for arch {self.arch!r}: use sp")
        if (self.arch == "uv") != (self.dataset == "uv"):
            raise ConfigError(f"dataset={self.dataset!r} with arch={self.arch!r}: the uv model trains on dataset 'uv' only, and vice versa")
        if self.output_norm is not None:
            if not (math.isfinite(self.output_norm) and self.output_norm > 0):
                raise ConfigError(f"output_norm={self.output_norm!r} is not allowed: it must be a finite number > 0 (or none)")
            if self.output != "plain" or self.output_scale != 1.0 or self.output_sigma is not None:
                raise ConfigError(f"output_norm={self.output_norm!r} is not allowed with output={self.output!r}, output_scale="
                                  f"{self.output_scale!r}, output_sigma={self.output_sigma!r}: use it with the plain, "
                                  "unscaled output only")  # fmt: skip
        if not self.experiment:
            raise ConfigError("experiment='' is not allowed: give a name")

    @property
    def measure_size(self) -> int:
        """m, the number of examples of the measurement set."""
        if self.dataset == "uv":
            return 1
        return self.measure_examples or (2048 if self.loss == "mse" else 4096)

    def params(self) -> dict[str, Any]:
        """The MLflow params of a run (environment-only fields are left out)."""
        skip = {"accelerator", "log_checkpoints", "data_dir", "download"}
        return {k: v for k, v in asdict(self).items() if k not in skip}

    @classmethod
    def from_strings(cls, values: dict[str, Any]) -> "RunConfig":
        """Build from CLI/MLproject strings, converting each field to its declared type."""
        return cls(**coerce(cls, values))


def coerce(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Convert strings to the dataclass field types; unknown keys are an error naming the allowed ones."""
    types = {f.name: f.type for f in fields(cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in types:
            raise ConfigError(f"unknown parameter {key!r}: allowed are {', '.join(types)}")
        kind = types[key]
        if value is None or isinstance(value, str) and value.lower() in ("none", "") and "None" in str(kind):
            out[key] = None
            continue
        try:
            if kind in (bool, "bool"):
                out[key] = parse_bool(value)
            elif kind in (int, "int"):
                out[key] = int(value)
            elif kind in (float, "float") or "float" in str(kind):
                out[key] = float(value)
            else:
                out[key] = value
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} is not a valid {getattr(kind, '__name__', kind)}") from None
    return out
