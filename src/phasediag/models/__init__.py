"""Models of App. A and the factory that builds and initialises them reproducibly from a seed."""

import math
import numbers
from collections.abc import Callable

import torch
from torch import nn

from phasediag.imports import is_import_path
from phasediag.vocabulary import ARCHS, CNN_DEPTHS, OUTPUTS, PARAMS, RESNET_DEPTHS

from .cnn import MyrtleCNN, pool_after
from .custom import build_custom
from .fcn import FCN, Dense
from .init import draw_, redraw_
from .resnet import ResNet
from .uv import UV
from .wrappers import Centered, Scaled, zero_readout_

__all__ = ["ARCHS", "OUTPUTS", "PARAMS", "CNN_DEPTHS", "RESNET_DEPTHS", "build_model", "stem_and_head",
           "FCN", "MyrtleCNN", "ResNet", "UV", "Dense", "Centered", "Scaled"]


def build_model(arch: str, depth: int, width: int, *, param: str = "sp", in_shape: tuple[int, ...],
                num_classes: int, seed: int, bias: bool = False, output: str = "plain",
                output_scale: float = 1.0, output_sigma: float | None = None, init_scale: float = 2.0,
                init: str = "normal") -> nn.Module:  # fmt: skip
    """A freshly initialised model, identical for a given seed whatever the global RNG state.

    init_scale (sigma_w^2 of the ReLU layers) and init (normal or orthogonal) shape the draw of the fcn and cnn; a
    factory's model, when either is not the default, has every Linear and Conv weight re-drawn (models.init.redraw_).

    arch is a built-in name or an import path "package.module:factory" (models.custom). in_shape is the shape of one
    example, e.g. (1, 28, 28) or (1,) for the uv model. The output is multiplied by
    output_scale * width**(-output_sigma) (the latter only when output_sigma is given).
    """
    in_shape = tuple(in_shape)
    _check(arch, depth, width, param, in_shape, num_classes, seed, output, output_scale, output_sigma, bias)
    if is_import_path(arch):
        net = build_custom(arch, int(depth), int(width), in_shape=in_shape, num_classes=int(num_classes), seed=int(seed))
        if (init_scale, init) != (2.0, "normal"):
            redraw_(net, init_scale, init, torch.Generator().manual_seed(int(seed)))
    else:
        # build on the meta device so construction draws nothing from the global RNG, then initialise once
        with torch.device("meta"):
            net = _make(arch, int(depth), int(width), param, in_shape, int(num_classes), bias, init_scale)
        net.to_empty(device="cpu")
        _initialise(net, torch.Generator().manual_seed(int(seed)), init)

    if output == "zero_readout":
        zero_readout_(net)
    elif output == "centered":
        net = Centered(net)
    alpha = output_scale * (width ** -output_sigma if output_sigma is not None else 1.0)
    return net if alpha == 1.0 else Scaled(net, alpha)


def stem_and_head(net: nn.Module) -> tuple[Callable, Callable] | None:
    """(stem, head) with net(x) = head(stem(x)) and stem affine in its own parameters, for the FCN (plain or scaled);
    None for the other models (a factory's network included, even one built from the same layers)."""
    if isinstance(net, FCN):
        return net.stem, net.head
    if isinstance(net, Scaled) and isinstance(net.net, FCN):
        return net.net.stem, lambda h: net.scale * net.net.head(h)
    return None


def _make(arch: str, depth: int, width: int, param: str, in_shape: tuple[int, ...], num_classes: int,
          bias: bool, init_scale: float = 2.0) -> nn.Module:
    if arch == "fcn":
        return FCN(math.prod(in_shape), depth, width, num_classes, param=param, bias=bias, init_scale=init_scale)
    if arch == "cnn":
        return MyrtleCNN(depth, width, in_shape, num_classes, bias=bias, param=param, init_scale=init_scale)
    if arch == "resnet":
        return ResNet(depth, width, in_shape[0], num_classes, bias=bias)
    return UV(width)


@torch.no_grad()
def _initialise(net: nn.Module, generator: torch.Generator, init: str = "normal") -> None:
    """Draw every weight from `generator`, in module order (`init`: normal or orthogonal); biases start at zero.
    Convolutions have their own std (the Myrtle CNN's), else are N(0, gain/fan_in) with the architecture's CONV_GAIN
    (LeCun for the ResNet)."""
    conv_gain = getattr(net, "CONV_GAIN", None)
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            std = getattr(module, "std", None) or math.sqrt(conv_gain / module.weight[0].numel())
            draw_(module.weight, std, init, generator)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, Dense):
            module.reset_parameters(generator, init)
        elif isinstance(module, UV):
            module.reset_parameters(generator)


def _check(arch, depth, width, param, in_shape, num_classes, seed, output, output_scale, output_sigma, bias) -> None:
    """Raise ValueError, in one line naming the value and what is allowed, on the first bad argument."""
    _require(arch in ARCHS or is_import_path(arch), "arch", arch, _one_of(ARCHS) + ", or an import path module:factory")
    _require(output in OUTPUTS, "output", output, _one_of(OUTPUTS))
    _require(param in PARAMS, "param", param, _one_of(PARAMS))
    _require(_is_int(width) and width >= 1, "width", width, "an integer >= 1")
    _require(_is_int(num_classes) and num_classes >= 1, "num_classes", num_classes, "an integer >= 1")
    _require(_is_int(seed), "seed", seed, "an integer")
    _require(len(in_shape) > 0 and all(_is_int(n) and n >= 1 for n in in_shape), "in_shape", in_shape,
             "a non-empty tuple of positive integers")
    _require(_is_real(output_scale) and output_scale > 0, "output_scale", output_scale, "a finite number > 0")
    _require(output_sigma is None or _is_real(output_sigma), "output_sigma", output_sigma, "None or a finite number")

    if arch == "fcn" or is_import_path(arch):
        _require(_is_int(depth) and depth >= 1, "depth", depth, "an integer >= 1", arch)
    if is_import_path(arch):  # the factory decides these; zero_readout would need to know its readout layer
        _require(param == "sp", "param", param, "sp (the factory sets its own parameterisation)", arch)
        _require(output != "zero_readout", "output", output, "plain or centered", arch)
        _require(not bias, "bias", bias, "False (the factory decides its own biases)", arch)
    elif arch in ("cnn", "resnet"):
        depths = CNN_DEPTHS if arch == "cnn" else RESNET_DEPTHS
        _require(_is_int(depth) and depth in depths, "depth", depth, _one_of(depths), arch)
        _require(param in ("sp", "mup") if arch == "cnn" else param == "sp", "param", param,
                 "sp or mup" if arch == "cnn" else "sp", arch)  # fmt: skip
        _require(len(in_shape) == 3, "in_shape", in_shape, "(channels, height, width)", arch)
        if arch == "cnn":
            side = 2 ** len(pool_after(depth, in_shape))  # each 2x2 pooling halves the image
            _require(min(in_shape[1:]) >= side, "in_shape", in_shape, f"height and width >= {side} at depth {depth}",
                     arch)
    elif arch == "uv":
        _require(_is_int(depth) and depth == 2, "depth", depth, "2", arch)
        _require(in_shape == (1,), "in_shape", in_shape, "(1,)", arch)
        _require(num_classes == 1, "num_classes", num_classes, "1", arch)
        _require(output != "zero_readout", "output", output, "plain or centered", arch)


def _require(ok: bool, name: str, value: object, allowed: str, arch: str | None = None) -> None:
    if not ok:
        where = f" for arch {arch!r}" if arch else ""
        raise ValueError(f"{name}={value!r} is not allowed{where}: use {allowed}")


def _one_of(options: tuple) -> str:
    return "one of " + ", ".join(map(str, options))


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)
