"""One validated dataclass per job, and the parser derived from them. The dataclasses are the only declaration of
an option (name, type, allowed values, default); the CLI, the sweep YAML and `mlflow run -P` all go through
`parse`. All bad input fails here, before any data is read or run is created.

Light on purpose (no torch, numpy or MLflow): `phasediag --help` imports it.
"""

import difflib
import functools
import math
import os
import re
import tempfile
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin

from phasediag.errors import ConfigError
from phasediag.imports import is_import_path
from phasediag.run.presets import with_preset
from phasediag.vocabulary import (
    ACCELERATORS, ADAPTIVE_OPTIMIZERS, ARCHS, CNN_DEPTHS, DATASETS, ETA_CURVATURES, RESNET_DEPTHS, Accelerator, HvpMode,
    Loss, LossSchedule, Output, Param, Schedule, SharpnessMethod, LossSet, Preset, Standardize, AdamV0, EtaCurvature,
    Init, Optimizer,
)  # fmt: skip


def one_of(name: str, value: Any, allowed: Iterable, where: str = "") -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed{where}: use one of {', '.join(map(str, allowed))}")


def at_least(name: str, value: float, low: float) -> None:
    if not value >= low:
        raise ConfigError(f"{name}={value!r} is not allowed: it must be >= {low}")


def check_choices(config: Any) -> None:
    """Every number field holds its declared type, coerced (5 -> 5.0 for a float, 5.0 or '5' -> 5 for an int): one
    config, so one study name, whether it came from Python, the CLI, `mlflow run -P` or a sweep YAML. Every
    Literal-typed field holds one of its values (the CLI checks them too; this covers Python callers)."""
    names = {f.name for f in fields(config)}
    for name, kind in typing.get_type_hints(type(config)).items():
        if name not in names:
            continue  # a ClassVar
        object.__setattr__(config, name, _coerced(name, getattr(config, name), kind))
        if get_origin(kind) is Literal:
            one_of(name, getattr(config, name), get_args(kind))


def _coerced(name: str, value: Any, kind: Any) -> Any:
    """`value` as the declared number type (int only when integral); anything else unchanged."""
    if _is_optional(kind):
        inner = [k for k in get_args(kind) if k is not type(None)]
        return value if value is None or len(inner) != 1 else _coerced(name, value, inner[0])
    if _is_sequence(kind) and isinstance(value, (list, tuple)):
        return tuple(_coerced(name, item, get_args(kind)[0]) for item in value)
    if kind not in (int, float) or isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value
    if kind is int and isinstance(value, int):
        return value  # exact, however large
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not allowed: {describe(kind)}") from None
    if kind is float:
        return number
    if not number.is_integer():
        raise ConfigError(f"{name}={value!r} is not allowed: {describe(kind)}")
    return int(number)


def check_out(name: str, folder: str | None) -> None:
    """An output folder that can be created or written: not an existing file, not under a read-only folder."""
    if folder is None:
        return
    if not folder:
        raise ConfigError(f"{name}='' is not allowed: give a folder")
    path = Path(folder).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name}={folder!r} is not allowed: it is an existing file, give a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not _writable(existing):
        raise ConfigError(f"{name}={folder!r} is not allowed: {existing} is not a writable folder")


def _writable(folder: Path) -> bool:
    """A folder really can be written: a probe folder is made and removed (os.access says yes to root even on /proc)."""
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".phasediag-probe-"))
    except OSError:
        return False
    return True


PARAMS_OF = {"cnn": ("sp", "mup"), "resnet": ("sp",)}  # parameterisations of the built-in convolutional models
ADAM_FIELDS = ("beta1", "beta2", "adam_eps", "adam_v0")
TRAINING_OPTIONS = ("optimizer", "momentum", *ADAM_FIELDS, "weight_decay", "warmup_steps", "warmup_init", "init_scale", "init",
                    "eta_curvature")


def check_training_options(config: "RunConfig") -> None:
    """The optimizer, warmup and initialisation options: in range, and set only where they apply (no silent no-op)."""
    for name in ("momentum", "beta1", "beta2"):
        value = getattr(config, name)
        if not 0 <= value < 1:
            raise ConfigError(f"{name}={value!r} is not allowed: it must be in [0, 1)")
    for name in ("adam_eps", "init_scale"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name}={value!r} is not allowed: it must be a finite number > 0")
    if not (math.isfinite(config.weight_decay) and config.weight_decay >= 0):
        raise ConfigError(f"weight_decay={config.weight_decay!r} is not allowed: it must be a finite number >= 0")
    at_least("warmup_steps", config.warmup_steps, 0)
    if config.eta_curvature is not None:
        one_of("eta_curvature", config.eta_curvature, ETA_CURVATURES)
    if not 0 <= config.warmup_init <= 1:
        raise ConfigError(f"warmup_init={config.warmup_init!r} is not allowed: it must be in [0, 1] (a fraction of eta)")
    defaults = RunConfig.__dataclass_fields__
    unused = [n for n in ADAM_FIELDS if config.optimizer not in ("adam", "adamw")]
    unused += ["momentum"] if config.optimizer not in ("momentum", "nesterov") else []
    unused += ["warmup_init"] if config.warmup_steps == 0 else []
    for name in unused:
        if getattr(config, name) != defaults[name].default:
            raise ConfigError(f"{name}={getattr(config, name)!r} is not allowed with optimizer={config.optimizer!r}, "
                              f"warmup_steps={config.warmup_steps}: it would have no effect")  # fmt: skip
    if config.param == "mup" and config.arch not in ("fcn", "cnn"):
        raise ConfigError(f"param='mup' is not allowed for arch {config.arch!r}: muP needs the input, hidden and output "
                          "layers of the built-in fcn or cnn")  # fmt: skip
    if config.param == "mup" and config.arch == "fcn" and config.depth < 2:
        raise ConfigError(f"depth={config.depth!r} is not allowed with param='mup': it needs a hidden layer (depth >= 2)")
    if config.arch in ("resnet", "uv") and (config.init_scale != 2.0 or config.init != "normal"):
        raise ConfigError(f"init_scale={config.init_scale!r}, init={config.init!r} are not allowed for arch "
                          f"{config.arch!r}: use the defaults 2.0 and normal")  # fmt: skip


FILE_DATASETS = ("fashion_mnist", "mnist", "cifar10")  # read from files in data_dir


def data_folder(data_dir: str | None) -> Path:
    """Where the datasets are: data_dir, else $PHASEDIAG_DATA, else the user's cache folder (~/.cache/phasediag)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get("PHASEDIAG_DATA"):
        return Path(os.environ["PHASEDIAG_DATA"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "phasediag"


def check_data_dir(data_dir: str) -> None:
    """A data folder the user named exists: a typo is never created (nor filled with a dataset copy)."""
    if not Path(data_dir).expanduser().is_dir():
        raise ConfigError(f"data_dir={data_dir!r} is not allowed: no such folder; give an existing one, run `phasediag "
                          f"data --data_dir {data_dir}` to copy Debian's Fashion-MNIST there, or pass --download true")  # fmt: skip


@dataclass(frozen=True)
class RunConfig:
    """One early-training run at eta = c / lambda0. Field names are the MLflow param names."""

    preset: Preset | None = None
    """defaults for the sizes below, overridden by any option you give: tiny (subset 1024, measure_examples 256,
    batch_size 128, width 64: seconds per run) or paper (the paper's sizes, the defaults); null = none"""
    arch: str = "fcn"
    """model: fcn (fully connected), cnn (Myrtle CNN), resnet, uv (the two-layer linear model of Sec. 5), or your
    own: an import path package.module:factory (docs/your-own-model.md)"""
    depth: int = 4
    """number of layers d: fcn >= 1; cnn 5, 7 or 10; resnet 18 or 34; uv 2; your own model: any integer >= 1"""
    width: int = 256
    """width w: hidden units per layer (fcn, uv), channels (cnn), channels of the first stage (resnet)"""
    param: Param = "sp"
    """parameterisation: sp (standard), ntp (neural tangent) or mup (maximal update); cnn: sp or mup; resnet: sp"""
    dataset: str = "fashion_mnist"
    """training data: fashion_mnist, mnist, cifar10, uv, synthetic[:CxHxW[:N]] (random, e.g. synthetic:1x8x8:256),
    or your own: an import path package.module:loader (docs/your-own-model.md)"""
    standardize: Standardize = "per_image"
    """inputs: per_image (each example to zero mean and unit std over its entries, the paper) or none (as given)"""
    subset: int = 0
    """train on the first N training examples; 0 = the whole training split"""
    loss: Loss = "mse"
    """mse (squared error on one-hot targets) or xent (cross-entropy)"""
    c: float = 2.0
    """learning-rate constant: eta = c / lambda0, lambda0 = the sharpness at init (for other optimizers: docs/optimizers.md)"""
    seed: int = 0
    """seed of the initialisation (theta_0), and of the mini-batch order and measurement set unless sgd_seed is set"""
    sgd_seed: int | None = None
    """seed of the SGD mini-batch order and of the measurement set; null = the seed (one batch sequence per
    initialisation); an integer: the same sequence for every seed, as the paper's figures (docs/agreement.md)"""
    batch_size: int = 512
    """SGD mini-batch size B; 0 = full batch (gradient descent)"""
    steps: int = 10
    """T1: SGD steps trained and checked for a loss or sharpness increase (the paper: 10)"""
    measure_examples: int = 0
    """m: training examples the sharpness is measured on; 0 = the paper's m: 2048 for mse, 4096 for xent"""
    sharpness_method: SharpnessMethod = "lanczos"
    """top Hessian eigenvalue by lanczos (warm-started, to sharpness_tol) or power (the paper's 20 cold iterations)"""
    sharpness_tol: float = 1e-3
    """relative residual at which the Lanczos sharpness stops, in (0, 1)"""
    bias: bool = False
    """give the layers biases (the paper: none)"""
    output: Output = "plain"
    """network output: plain, centered (f minus f at init) or zero_readout (last layer initialised at 0)"""
    output_scale: float = 1.0
    """fixed factor alpha on the output; 1 = none"""
    output_sigma: float | None = None
    """alpha = width ** -sigma, times output_scale; null = no width scaling"""
    barrier: bool = False
    """also measure the loss barrier on the line from theta_0 to theta_T (for c_barrier)"""
    experiment: str = "phasediag"
    """MLflow experiment the runs are logged in"""
    schedule: Schedule = "every_step"
    """when the sharpness is measured after T1: every_step, or paper (every epoch to 100, then every 10 epochs)"""
    loss_schedule: LossSchedule = "every_step"
    """when L_t and the accuracy are measured: every_step, paper, or with_sharpness (only where the sharpness is)"""
    hvp_mode: HvpMode = "cached"
    """Hessian-vector products: cached (graph built once per eigen-solve), jvp, or double_backward"""
    accelerator: Accelerator = "auto"
    """where to train: auto (a GPU if there is one), cpu or gpu"""
    log_checkpoints: bool = True
    """log theta_0 and theta_T as MLflow artifacts (checkpoints/initial.pt, final.pt)"""
    data_dir: str | None = None
    """folder that holds the datasets; null = $PHASEDIAG_DATA, else ~/.cache/phasediag; a folder you name must exist
    (unless --download true)"""
    download: bool = False
    """let torchvision download a missing dataset (needs the network)"""
    loss_set: LossSet = "train"
    """where L_t (and the barrier) is measured: train (the training set, the paper) or measure (the m examples)"""
    output_norm: float | None = None
    """s of App. H.1: f_s = s f / ||f(theta_0)||, the norm measured once at init; null = off"""
    optimizer: Optimizer = "sgd"
    """sgd (the paper's), momentum (heavy ball), nesterov, adam or adamw (adam: lambda0 = lambda_max(P^-1 H) and eta =
    c / lambda_u, see eta_curvature and docs/optimizers.md)"""
    eta_curvature: EtaCurvature | None = None
    """what eta = c / lambda divides c by: sharpness (lambda0, the top eigenvalue of the optimizer's Hessian at init,
    pre-conditioned for adam; the paper's) or update (u.Hu / g.u along the optimizer's first update u: the first step
    raises the loss from c = 2 on a quadratic); null = sharpness for sgd, momentum, nesterov, update for adam, adamw"""
    momentum: float = 0.9
    """beta of optimizer=momentum and nesterov, in [0, 1)"""
    beta1: float = 0.9
    """Adam's first-moment decay, in [0, 1)"""
    beta2: float = 0.999
    """Adam's second-moment decay, in [0, 1)"""
    adam_eps: float = 1e-8
    """Adam's epsilon, added to sqrt(v); > 0"""
    weight_decay: float = 0.0
    """weight decay, >= 0: L2 in the gradient for sgd, momentum, nesterov and adam, decoupled for adamw"""
    adam_v0: AdamV0 = "gradient"
    """Adam's second moment at step 0: gradient (v0 = g0^2 on the first batch, no bias correction of v) or zero"""
    warmup_steps: int = 0
    """linear warmup of the learning rate over this many steps, up to eta = c / lambda0; 0 = the paper's constant eta"""
    warmup_init: float = 0.0
    """the warmup's first learning rate before its first step, as a fraction of eta, in [0, 1]"""
    init_scale: float = 2.0
    """sigma_w^2 of the ReLU layers' weights (variance sigma_w^2 / fan_in); 2 = the critical point (He), the paper"""
    init: Init = "normal"
    """weights drawn normal, or orthogonal with the same variance per entry"""

    ENVIRONMENT: ClassVar[tuple[str, ...]] = ("accelerator", "log_checkpoints", "data_dir", "download")  # not params

    def __post_init__(self) -> None:
        check_choices(self)
        if self.arch not in ARCHS and not is_import_path(self.arch):
            raise ConfigError(f"arch={self.arch!r} is not allowed: use one of {', '.join(ARCHS)}, or an import path "
                              "package.module:factory")  # fmt: skip
        if self.dataset.split(":")[0] not in DATASETS and not is_import_path(self.dataset):
            raise ConfigError(f"dataset={self.dataset!r} is not allowed: use one of {', '.join(DATASETS)}, or an "
                              "import path package.module:loader")  # fmt: skip
        at_least("width", self.width, 1)
        at_least("steps", self.steps, 1)
        at_least("subset", self.subset, 0)
        at_least("batch_size", self.batch_size, 0)
        at_least("measure_examples", self.measure_examples, 0)
        if not (math.isfinite(self.c) and self.c > 0):
            raise ConfigError(f"c={self.c!r} is not allowed: it must be a finite number > 0")
        if not (math.isfinite(self.output_scale) and self.output_scale > 0):
            raise ConfigError(f"output_scale={self.output_scale!r} is not allowed: it must be a finite number > 0")
        if self.output_sigma is not None and not math.isfinite(self.output_sigma):
            raise ConfigError(f"output_sigma={self.output_sigma!r} is not allowed: it must be a finite number or null")
        if not (0 < self.sharpness_tol < 1):
            raise ConfigError(f"sharpness_tol={self.sharpness_tol!r} is not allowed: it must be in (0, 1)")
        if self.arch in ARCHS:
            self._check_builtin_arch()
        else:
            self._check_factory_options()
        check_training_options(self)
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
        if self.data_dir is not None and self.dataset in FILE_DATASETS and not self.download:
            check_data_dir(self.data_dir)
        if self.accelerator == "gpu":
            import torch  # only when a GPU is asked for: the check needs CUDA

            if not torch.cuda.is_available():
                raise ConfigError(f"accelerator='gpu' is not allowed here: CUDA is not available; use one of "
                                  f"{', '.join(a for a in ACCELERATORS if a != 'gpu')}")  # fmt: skip

    def _check_builtin_arch(self) -> None:
        if self.arch == "fcn":
            at_least("depth", self.depth, 1)
        else:
            allowed = {"cnn": CNN_DEPTHS, "resnet": RESNET_DEPTHS, "uv": (2,)}[self.arch]
            one_of("depth", self.depth, allowed, f" for arch {self.arch!r}")
        if self.arch in ("cnn", "resnet") and self.param not in PARAMS_OF.get(self.arch, ()):
            raise ConfigError(f"param={self.param!r} is not allowed for arch {self.arch!r}: use {' or '.join(PARAMS_OF[self.arch])}")

    def _check_factory_options(self) -> None:
        """Options that need to know the network's layers apply to the built-in models only."""
        at_least("depth", self.depth, 1)
        where = f"for arch {self.arch!r} (your own model)"
        if self.param != "sp":
            raise ConfigError(f"param={self.param!r} is not allowed {where}: use sp; the factory sets its own "
                              "parameterisation")  # fmt: skip
        if self.output == "zero_readout":
            raise ConfigError(f"output='zero_readout' is not allowed {where}: use plain or centered (centered also "
                              "makes the output zero at initialisation)")  # fmt: skip
        if self.bias:
            raise ConfigError(f"bias=True is not allowed {where}: the factory decides its own biases")

    @property
    def eta_by(self) -> str:
        """eta_curvature, its null resolved: the optimizer's own (docs/optimizers.md)."""
        if self.eta_curvature is not None:
            return self.eta_curvature
        return "update" if self.optimizer in ADAPTIVE_OPTIMIZERS else "sharpness"

    @property
    def plain_sgd(self) -> bool:
        """The paper's optimizer: SGD without momentum or weight decay at a constant eta (what batched training does)."""
        return self.optimizer == "sgd" and self.weight_decay == 0 and self.warmup_steps == 0

    def is_default_training_option(self, name: str) -> bool:
        """An optimizer, warmup or initialisation option at its default: left out of a study's identity, so that the
        studies of the paper's setting keep their names."""
        return name in TRAINING_OPTIONS and getattr(self, name) == RunConfig.__dataclass_fields__[name].default

    @property
    def data_seed(self) -> int:
        """The seed of the batch order and the measurement set: sgd_seed, or the seed when it is null."""
        return self.seed if self.sgd_seed is None else self.sgd_seed

    @property
    def measure_size(self) -> int:
        """m, the number of examples of the measurement set."""
        if self.dataset == "uv":
            return 1
        return self.measure_examples or (2048 if self.loss == "mse" else 4096)

    def params(self) -> dict[str, Any]:
        """The MLflow params of a run (environment-only fields are left out)."""
        return {k: v for k, v in asdict(self).items() if k not in self.ENVIRONMENT}

    @classmethod
    def from_strings(cls, values: Mapping[str, Any]) -> "RunConfig":
        return parse(cls, values)


# --- The parser derived from the dataclasses (jsonargparse) ---------------------------------------------------------
# A dataclass field whose type is itself a dataclass (SearchConfig.run) is flattened: its fields are options of the
# same command, except those the outer class lists in `unused_run_fields`.


def flat_fields(cls: type) -> dict[str, Any]:
    """Option name -> declared type, for every field of cls and of its nested dataclass fields."""
    out: dict[str, Any] = {}
    skip = getattr(cls, "unused_run_fields", ())
    for name, kind in typing.get_type_hints(cls).items():
        if name not in {f.name for f in fields(cls)}:
            continue  # a ClassVar
        if is_dataclass(kind):
            out.update({k: v for k, v in flat_fields(kind).items() if k not in skip})
        else:
            out[name] = kind
    return out


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """cls from flat values: nested dataclass fields take the values of their own fields."""
    kwargs = {}
    for f in fields(cls):
        if is_dataclass(f.type):
            kwargs[f.name] = build(f.type, values)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def add_arguments(parser: Any, cls: type) -> None:
    """One --option per (flattened) field of cls, typed as declared; help shows the type, allowed values, default."""
    skip = set(getattr(cls, "unused_run_fields", ()))
    for f in fields(cls):
        if is_dataclass(f.type):
            parser.add_class_arguments(f.type, skip=skip, as_group=False)
    nested = {f.name for f in fields(cls) if is_dataclass(f.type)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING} - nested
    parser.add_class_arguments(cls, skip=nested, as_group=False, as_positional=bool(required & {"spec"}))


@functools.cache
def parser_for(cls: type) -> Any:
    """The parser of cls (built once: a sweep parses every point with it)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    add_arguments(parser, cls)
    return parser


def _is_sequence(kind: Any) -> bool:
    return get_origin(kind) in (tuple, list)


def _is_optional(kind: Any) -> bool:
    return get_origin(kind) in (typing.Union, types.UnionType) and type(None) in get_args(kind)


def _items(value: str) -> list[str]:
    """'0 1 2', '0,1,2' or a range '0..4' (inclusive, integers) -> ['0', '1', ...]."""
    out: list[str] = []
    for token in value.replace(",", " ").split():
        low, dots, high = token.partition("..")
        if dots and low.lstrip("-").isdigit() and high.lstrip("-").isdigit():
            out.extend(str(i) for i in range(int(low), int(high) + 1))
        else:
            out.append(token)
    return out


def normalize(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """Spellings the parser does not know: 'none' for None (MLproject, old specs), lists as '0 1 2' or '0..4', an
    integral number for an int (5.0 or '5.0')."""
    kinds = flat_fields(cls)
    out = dict(values)
    for name, value in values.items():
        kind = kinds.get(name)
        if isinstance(value, float) and kind is not None:
            out[name] = _coerced(name, value, kind)
        if not isinstance(value, str) or kind is None:
            continue
        if _is_optional(kind) and value.strip().lower() in ("none", "null", ""):
            out[name] = None
        elif _is_sequence(kind) or any(_is_sequence(k) for k in get_args(kind)):
            out[name] = _items(value)
        elif int in (kind, *get_args(kind)) and _integral(value):
            out[name] = str(int(float(value)))  # '8.0' for an int, as 8.0 is
    return out


def _integral(text: str) -> bool:
    try:
        return float(text).is_integer()
    except ValueError:
        return False


def normalize_argv(cls: type, argv: list[str]) -> list[str]:
    """The same for a command line; an option of a list type takes every value up to the next option."""
    kinds = flat_fields(cls)
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        name = token[2:] if token.startswith("--") and "=" not in token else None
        kind = kinds.get(name) if name else None
        if kind is None:
            out.append(token)
            i += 1
            continue
        j = i + 1
        list_like = _is_sequence(kind) or any(_is_sequence(k) for k in get_args(kind))
        while j < len(argv) and not argv[j].startswith("--") and (list_like or j == i + 1):
            j += 1
        out.append(token)
        if j > i + 1 or list_like:  # a list option given no value is the empty list
            value = normalize(cls, {name: " ".join(argv[i + 1 : j])})[name]
            out.append("null" if value is None else f"[{', '.join(value)}]" if isinstance(value, list) else value)
        i = j
    return out


def describe(kind: Any) -> str:
    """What a value of a declared type looks like, for an error message."""
    if get_origin(kind) is Literal:
        return f"use one of {', '.join(map(str, get_args(kind)))}"
    if _is_optional(kind):
        inner = [k for k in get_args(kind) if k is not type(None)]
        return f"{describe(inner[0]) if len(inner) == 1 else 'a value'}, or null"
    if _is_sequence(kind):
        return f"use a list of {getattr(get_args(kind)[0], '__name__', 'value')}s, e.g. 0 1 2 or 0..4"
    names = {bool: "use true or false", int: "use an integer", float: "use a number", str: "use a text value"}
    return names.get(kind, f"use a {getattr(kind, '__name__', kind)}")


def one_line(error: Exception, cls: type) -> str:
    """jsonargparse's (multi-line) parse error as `name='value' is not allowed: <what is>`."""
    text = str(error)
    key = re.search(r'Parser key "([\w.]+)"', text)
    given = re.search(r"(?:Given|Got) value: (.*)", text)
    if key and given:
        name = key.group(1)
        return f"{name}={given.group(1).strip()!r} is not allowed: {describe(flat_fields(cls).get(name, str))}"
    required = re.search(r"arguments are required: (.*)", text)
    if required:
        names = [name.split(".")[-1].lstrip("-") for name in required.group(1).split(", ")]
        return f"{', '.join('--' + n for n in names)} is required"
    unknown = re.search(r"nrecognized arguments: (.*)", text)
    if unknown:
        option = unknown.group(1).split()[0]
        return f"unknown option {option}{closest(option.lstrip('-').split('=')[0], cls, '--')}"
    return " ".join(text.split())


def closest(name: str, cls: type, prefix: str = "") -> str:
    """': did you mean --width?' for a misspelt option name, or where to find the list."""
    match = difflib.get_close_matches(name, flat_fields(cls), n=1, cutoff=0.6)
    return f": did you mean {prefix}{match[0]}?" if match else ": --help lists the options"


def resolve(cls: type, values: Mapping[str, Any], given: Iterable[str]) -> Any:
    """cls from parsed flat values (defaults included) and the names of the options the user gave: the preset fills
    those not given, and a bad default is blamed on the given option it clashes with."""
    given = set(given)
    try:
        return build(cls, with_preset(values, given, flat_fields(cls)))
    except ConfigError as error:
        raise ConfigError(blame(str(error), given, values)) from None


def blame(message: str, given: set[str], values: Mapping[str, Any]) -> str:
    """A message about an option the user did not give that names one they gave (`x_max=10 ... > x_min=11` after
    --x_min 11) leads with the given one."""
    blamed = re.match(r"(\w+)=", message)
    if not blamed or blamed.group(1) in given:
        return message
    mentioned = [name for name in sorted(given) if re.search(rf"\b{name}\b", message)]
    if not mentioned:
        return message
    default = blamed.group(1)
    ours = ", ".join(f"{name}={values.get(name)!r}" for name in mentioned)
    return (f"{ours} clashes with the default {default}={values.get(default)!r} ({message}): change "
            f"{' or '.join('--' + name for name in mentioned)}, or give --{default}")


def parse(cls: type, values: Mapping[str, Any]) -> Any:
    """cls from flat values (CLI or MLproject strings, typed YAML), each checked against its declared type."""
    from jsonargparse import ArgumentError

    unknown = sorted(set(values) - set(flat_fields(cls)))
    if unknown:
        raise ConfigError(f"unknown parameter {unknown[0]!r}{closest(unknown[0], cls)}")
    try:
        namespace = parser_for(cls).parse_object(normalize(cls, values))
    except ArgumentError as error:
        raise ConfigError(one_line(error, cls)) from None
    return resolve(cls, namespace.as_dict(), values)


@dataclass(frozen=True)
class DataConfig:
    """Prepare the offline Fashion-MNIST copy from Debian's dataset-fashion-mnist package."""

    data_dir: str | None = None
    """the folder to copy Fashion-MNIST into (created if missing); null = $PHASEDIAG_DATA, else ~/.cache/phasediag"""
