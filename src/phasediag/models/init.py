"""How weights are drawn (`init`): normal, or orthogonal with the same mean square per entry; and the re-draw of a
factory's Linear and Conv weights at variance init_scale / fan_in."""

import math

import torch
from torch import nn

REDRAWN = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # the layers of your own model that init_scale / init re-draw


@torch.no_grad()
def draw_(weight: torch.Tensor, std: float, init: str, generator: torch.Generator) -> torch.Tensor:
    """weight ~ N(0, std^2) (init=normal), or init=orthogonal: a (semi-)orthogonal matrix of shape
    (fan_out, fan_in = the rest) scaled so that its entries' mean square is std^2, as the normal draw's."""
    if init == "normal":
        return weight.normal_(0.0, std, generator=generator)
    fan_out, fan_in = weight.shape[0], weight[0].numel()
    return nn.init.orthogonal_(weight, gain=std * math.sqrt(max(fan_out, fan_in)), generator=generator)


@torch.no_grad()
def redraw_(net: nn.Module, init_scale: float, init: str, generator: torch.Generator) -> nn.Module:
    """Every Linear and Conv weight of `net` drawn anew at variance init_scale / fan_in (biases kept): for a model
    from a factory, whose layers' roles phasediag does not know (its readout included)."""
    for module in net.modules():
        if isinstance(module, REDRAWN):
            draw_(module.weight, math.sqrt(init_scale / module.weight[0].numel()), init, generator)
    return net
