"""Your own model: arch = "package.module:factory", with factory(*, depth, width, in_shape, num_classes) ->
torch.nn.Module. phasediag seeds the construction, so a seed gives the same theta_0 whatever the global RNG state,
and checks what comes back; each error is one line naming the factory."""

import warnings

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from phasediag.imports import UserCodeError, one_line, resolve

LARGE_OUTPUT = 10.0  # mean ||f(x; theta_0)||^2 / k above this is not L0 = O(1) (the paper's footnote 5)


class LargeInitialOutput(UserWarning):
    """Your own network's output at initialisation is far from O(1)."""


def build_custom(path: str, depth: int, width: int, *, in_shape: tuple[int, ...], num_classes: int,
                 seed: int) -> nn.Module:  # fmt: skip
    """The factory's network, built with the CPU RNG seeded by `seed` (the caller's RNG state is left as it was)."""
    factory = resolve("arch", path)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        try:
            net = factory(depth=depth, width=width, in_shape=in_shape, num_classes=num_classes)
        except Exception as error:
            raise UserCodeError(f"arch={path!r}: the factory raised {one_line(error)} (called with depth={depth}, "
                                f"width={width}, in_shape={in_shape}, num_classes={num_classes})") from None  # fmt: skip
    if not isinstance(net, nn.Module):
        raise UserCodeError(f"arch={path!r}: the factory returned a {type(net).__name__}, not a torch.nn.Module")
    if not any(p.requires_grad for p in net.parameters()):
        raise UserCodeError(f"arch={path!r}: the factory's network has no trainable parameters")
    # the Hessian, the batched copies and the barrier need f(x; theta) to be a fixed function of theta
    random = sorted({type(m).__name__ for m in net.modules() if isinstance(m, (_DropoutNd, _BatchNorm))
                     and (not isinstance(m, _DropoutNd) or m.p > 0)})  # fmt: skip
    if random:
        raise UserCodeError(f"arch={path!r}: the network holds {', '.join(random)}: its output must be a "
                            "deterministic function of the parameters (no dropout; LayerNorm, not BatchNorm)")  # fmt: skip
    return net


@torch.no_grad()
def check_output(path: str, net: nn.Module, inputs: torch.Tensor, num_classes: int) -> torch.Tensor:
    """net(inputs): raises UserCodeError naming the factory when the forward pass raises, or gives an output that is
    not (examples, num_classes) or not finite."""
    try:
        out = net(inputs)
    except Exception as error:
        raise UserCodeError(f"arch={path!r}: the network's forward pass on inputs of shape {tuple(inputs.shape)} "
                            f"raised {one_line(error)}") from None  # fmt: skip
    expected = (len(inputs), num_classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserCodeError(f"arch={path!r}: the network's output is {got}, expected a tensor of shape {expected} "
                            "(examples, num_classes)")  # fmt: skip
    if not torch.isfinite(out).all():
        raise UserCodeError(f"arch={path!r}: the network's output at initialisation is not finite (NaN or inf)")
    return out


def check_initial_output(path: str, net: nn.Module, inputs: torch.Tensor, num_classes: int) -> float:
    """mean ||f(x; theta_0)||^2 / k over `inputs` (k = num_classes), after `check_output`; a LargeInitialOutput
    warning when it is above LARGE_OUTPUT."""
    power = check_output(path, net, inputs, num_classes).pow(2).mean().item()
    if power > LARGE_OUTPUT:
        warnings.warn(f"arch={path!r}: mean ||f(x; theta_0)||^2 / k = {power:.4g} at initialisation, above "
                      f"{LARGE_OUTPUT:g}: the phase diagram assumes L0 = O(1) (the paper's footnote 5); scale the "
                      "network's readout down, or pass output_scale", LargeInitialOutput, stacklevel=2)  # fmt: skip
    return power
