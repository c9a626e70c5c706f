"""Every closed set of names in the project, defined once. Each is a `Literal` type, so that the dataclasses that
use it declare the allowed values (the CLI lists and checks them from there), and a tuple of the same values."""

from typing import Literal, get_args

Arch = Literal["fcn", "cnn", "resnet", "uv"]  # the built-in models; `arch` also takes an import path module:factory
Param = Literal["sp", "ntp", "mup"]  # standard, neural-tangent or maximal-update parameterisation (docs/optimizers.md)
Output = Literal["plain", "centered", "zero_readout"]
Loss = Literal["mse", "xent"]
SharpnessMethod = Literal["lanczos", "power"]
HvpMode = Literal["cached", "jvp", "double_backward"]
Accelerator = Literal["auto", "cpu", "gpu"]
Schedule = Literal["every_step", "paper"]
# when L_t is measured: also "with_sharpness", only where the sharpness is (Measurements adds t = 0 and the last step)
LossSchedule = Literal["every_step", "paper", "with_sharpness"]
SearchMode = Literal["bisect", "grid"]
Launcher = Literal["local", "slurm"]  # where a sweep's searches run: here, or as one SLURM job array
Constant = Literal["c_loss", "c_sharp", "c_max", "c_barrier"]  # the critical constants of one search
DiagramAxis = Literal["auto", "width", "depth", "warmup_steps", "init_scale"]  # a phase diagram's y axis
WidthAxis = Literal["inverse", "log2"]  # a phase diagram's widths: 1/w (the paper) or w on a log2 axis
DerivativeVariable = Literal["c", "log2c"]  # what Def. 4 differentiates in: c (the paper) or x = log2 c
LossSet = Literal["train", "measure"]  # where L_t is measured: the training set (the paper) or the m examples
Preset = Literal["tiny", "paper"]  # named sets of defaults (run.presets): a first try, or the paper's sizes
Optimizer = Literal["sgd", "momentum", "nesterov", "adam", "adamw"]  # sgd: the paper's plain SGD
# what eta = c / lambda divides by: the (pre-conditioned) sharpness at init, or the curvature along the first update
EtaCurvature = Literal["sharpness", "update"]
AdamV0 = Literal["gradient", "zero"]  # Adam's second moment at step 0: g_0^2 (Kalra & Barkeshli 2024) or 0 (plain)
Init = Literal["normal", "orthogonal"]  # how weights are drawn: Gaussian, or orthogonal with the same variance
Standardize = Literal["per_image", "none"]  # the inputs: each image to zero mean and unit std (the paper), or as given

ARCHS: tuple[str, ...] = get_args(Arch)
PARAMS: tuple[str, ...] = get_args(Param)
OUTPUTS: tuple[str, ...] = get_args(Output)
LOSS_NAMES: tuple[str, ...] = get_args(Loss)
SHARPNESS_METHODS: tuple[str, ...] = get_args(SharpnessMethod)
HVP_MODES: tuple[str, ...] = get_args(HvpMode)
ACCELERATORS: tuple[str, ...] = get_args(Accelerator)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
LOSS_SCHEDULES: tuple[str, ...] = get_args(LossSchedule)
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
LAUNCHERS: tuple[str, ...] = get_args(Launcher)
CONSTANTS: tuple[str, ...] = get_args(Constant)
DIAGRAM_AXES: tuple[str, ...] = get_args(DiagramAxis)
LOSS_SETS: tuple[str, ...] = get_args(LossSet)
PRESETS: tuple[str, ...] = get_args(Preset)
DERIVATIVE_VARIABLES: tuple[str, ...] = get_args(DerivativeVariable)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
ADAM_V0S: tuple[str, ...] = get_args(AdamV0)
ETA_CURVATURES: tuple[str, ...] = get_args(EtaCurvature)
INITS: tuple[str, ...] = get_args(Init)
ADAPTIVE_OPTIMIZERS = ("adam", "adamw")  # their stability is set by the pre-conditioned sharpness
STANDARDIZE: tuple[str, ...] = get_args(Standardize)
# 'synthetic' also takes a shape and size suffix (synthetic:CxHxW:N), and dataset an import path module:loader, so
# dataset is a str checked against these.
DATASETS = ("fashion_mnist", "mnist", "cifar10", "synthetic", "uv")
ZERO_OUTPUTS = ("centered", "zero_readout")  # outputs that are 0 at initialisation
CNN_DEPTHS = (5, 7, 10)  # Myrtle CNNs (models.cnn.POOL_AFTER)
RESNET_DEPTHS = (18, 34)  # (models.resnet.STAGES)
# Your own model or data: `package.module:attribute` (attribute may be dotted), e.g. examples.models:mixer.
IMPORT_PATH = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*"
