"""Output wrappers of Sec. 4 (App. G, H): centering, zero readout, output scale."""

import copy

import torch
from torch import nn


def frozen_copy(net: nn.Module) -> nn.Module:
    """A copy of `net` whose parameters are buffers: it follows .to() and state_dict, but is never trained."""
    frozen = copy.deepcopy(net)
    for module in frozen.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            delattr(module, name)
            module.register_buffer(name, p.detach().clone())
    return frozen


class Centered(nn.Module):
    """f(x; theta) - f(x; theta0): output zero at init, same gradients and Hessian as the plain net."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.net0 = frozen_copy(net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) - self.net0(x)


class Scaled(nn.Module):
    """alpha * f(x; theta) with a fixed alpha."""

    def __init__(self, net: nn.Module, scale: float):
        super().__init__()
        self.net = net
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.net(x)

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4g}"


@torch.no_grad()
def mean_output_norm(net: nn.Module, inputs: torch.Tensor) -> float:
    """||f(theta)|| of App. H.1: the per-example output norm ||f(x)||_2 averaged over `inputs`."""
    return torch.linalg.vector_norm(net(inputs), dim=1).mean().item()


@torch.no_grad()
def mean_output_power(net: nn.Module, inputs: torch.Tensor) -> float:
    """mean ||f(x)||^2 / k over `inputs`, k outputs: O(1) when L0 = O(1) (the paper's footnote 5)."""
    return net(inputs).pow(2).mean().item()


@torch.no_grad()
def zero_readout_(net: nn.Module) -> nn.Module:
    """Set the readout weights to zero (output zero at init; the hidden layers keep their random init)."""
    net.readout.weight.zero_()
    return net
