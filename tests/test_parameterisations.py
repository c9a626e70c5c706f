"""muP, the weight-variance scale sigma_w^2 and orthogonal initialisation: a coordinate check, the variance
recursion of a ReLU network, orthogonality, the defaults unchanged, and a factory's model re-drawn."""

import math

import pytest
import torch
from torch import nn

from phasediag.models import build_model
from phasediag.models.init import redraw_
from phasediag.physics.losses import mse

WIDTHS = (128, 512, 2048)


def fcn(param: str, width: int, depth: int = 3, **options) -> nn.Module:
    return build_model("fcn", depth, width, param=param, in_shape=(16,), num_classes=4, seed=0, **options)


def coordinates(param: str, width: int, steps: int = 3, lr: float = 0.5) -> dict[str, float]:
    """RMS per coordinate of the last hidden layer and of the output at init, and of their change after `steps` SGD
    steps at a width-independent learning rate (muP's c = 0) on a fixed batch."""
    net = fcn(param, width)
    generator = torch.Generator().manual_seed(1)
    inputs, targets = torch.randn(64, 16, generator=generator), torch.randn(64, 4, generator=generator)
    hidden0, out0 = net.hidden(inputs).detach(), net(inputs).detach()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        mse(net(inputs), targets).backward()
        optimizer.step()
    rms = lambda t: t.pow(2).mean().sqrt().item()  # noqa: E731
    return {"hidden": rms(hidden0), "output": rms(out0), "hidden_change": rms(net.hidden(inputs).detach() - hidden0),
            "output_change": rms(net(inputs).detach() - out0)}  # fmt: skip


def spread(values: list[float]) -> float:
    return max(values) / min(values)


def test_mup_coordinate_check():
    """muP (16x range of widths): hidden activations and their change after 3 steps within 25%, the output's change
    within 50% (measured: 4%, 10%, 14%), the output at init ~ 1/sqrt(w); NTP's hidden change falls as 1/sqrt(w) and
    SP's grows without bound at the same learning rate."""
    mup = {w: coordinates("mup", w) for w in WIDTHS}
    assert spread([mup[w]["hidden"] for w in WIDTHS]) < 1.25
    assert spread([mup[w]["hidden_change"] for w in WIDTHS]) < 1.25
    assert spread([mup[w]["output_change"] for w in WIDTHS]) < 1.5
    assert mup[2048]["output"] / mup[128]["output"] == pytest.approx(0.25, rel=0.2)
    ntp = [coordinates("ntp", w)["hidden_change"] for w in WIDTHS]
    assert ntp[0] / ntp[-1] > 3
    sp = [coordinates("sp", w)["hidden_change"] for w in WIDTHS]
    assert not sp[-1] < 10 * sp[0]


def test_mup_is_sp_in_function_but_the_readout():
    """Same draws: muP's hidden layers compute SP's function at init, its output is SP's readout / sqrt(w)."""
    sp, mup = fcn("sp", 256), fcn("mup", 256)
    x = torch.randn(8, 16)
    torch.testing.assert_close(mup.hidden(x), sp.hidden(x))
    torch.testing.assert_close(mup(x), sp(x) / math.sqrt(256), rtol=1e-4, atol=1e-6)


def test_mup_cnn_computes_sp_features_and_a_smaller_readout():
    """muP's first convolution (input layer: multiplier sqrt(w), std / sqrt(w)) and hidden ones give SP's features."""
    sp = build_model("cnn", 5, 32, in_shape=(1, 8, 8), num_classes=3, seed=0)
    mup = build_model("cnn", 5, 32, param="mup", in_shape=(1, 8, 8), num_classes=3, seed=0)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(mup.features(x), sp.features(x), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(mup(x), sp(x) / math.sqrt(32), rtol=1e-4, atol=1e-6)
    assert mup.features[0].multiplier == pytest.approx(math.sqrt(32))
    assert not any(getattr(m, "multiplier", 1.0) != 1.0 for m in sp.modules())  # SP: the paper's convolutions


@pytest.mark.parametrize("init_scale", [1.0, 2.0, 3.0])
def test_init_scale_sets_the_relu_variance_recursion(init_scale):
    """q_l = (sigma_w^2 / 2) q_{l-1} per ReLU layer at large width: after 5 hidden layers, (sigma_w^2 / 2)^5 within 15%."""
    depth, width = 6, 2048
    net = fcn("sp", width, depth, init_scale=init_scale)
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(3))
    first = net.hidden[:1](x).pow(2).mean().item()  # the first pre-activation: sigma_w^2 |x|^2 / fan_in
    assert first == pytest.approx(init_scale * x.pow(2).mean().item(), rel=0.1)
    last = net.hidden[:-1](x).pow(2).mean().item()  # the last pre-activation, after depth - 2 ReLU layers
    assert last / first == pytest.approx((init_scale / 2) ** (depth - 2), rel=0.15)


def test_orthogonal_init_is_orthogonal_at_the_same_variance():
    net = fcn("sp", 64, 4, init="orthogonal", init_scale=2.0)
    hidden = net.hidden[2].weight.detach()  # 64 x 64
    torch.testing.assert_close(hidden @ hidden.T, 2.0 * torch.eye(64), atol=1e-5, rtol=0)  # rows of norm sigma_w
    first = net.hidden[0].weight.detach()  # 64 x 16: orthonormal columns, entries' mean square 2 / 16
    assert first.pow(2).mean().item() == pytest.approx(2.0 / 16, rel=1e-5)
    cnn = build_model("cnn", 5, 8, in_shape=(1, 8, 8), num_classes=3, seed=0, init="orthogonal")
    conv = cnn.features[2].weight.detach().reshape(8, -1)  # 8 x 72
    torch.testing.assert_close(conv @ conv.T, conv.pow(2).sum(1).mean() * torch.eye(8), atol=1e-5, rtol=0)


def test_defaults_draw_the_paper_initialisation():
    for arch, depth, shape in (("fcn", 3, (16,)), ("cnn", 5, (1, 8, 8))):
        default = build_model(arch, depth, 32, in_shape=shape, num_classes=3, seed=5)
        explicit = build_model(arch, depth, 32, in_shape=shape, num_classes=3, seed=5, init_scale=2.0, init="normal")
        for a, b in zip(default.parameters(), explicit.parameters()):
            assert torch.equal(a, b)
    conv = build_model("cnn", 5, 32, in_shape=(1, 8, 8), num_classes=3, seed=5).features[2].weight
    assert conv.pow(2).mean().item() == pytest.approx(2.0 / (32 * 9), rel=0.05)  # He normal


def test_a_factory_model_is_redrawn_at_init_scale():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 4, 64), nn.ReLU(), nn.Linear(64, 64))
    redraw_(net, 1.5, "normal", torch.Generator().manual_seed(0))
    assert net[0].weight.pow(2).mean().item() == pytest.approx(1.5 / 27, rel=0.1)
    assert net[3].weight.pow(2).mean().item() == pytest.approx(1.5 / 128, rel=0.05)
    redraw_(net, 2.0, "orthogonal", torch.Generator().manual_seed(0))
    square = net[5].weight.detach()
    torch.testing.assert_close(square @ square.T, 2.0 * torch.eye(64), atol=1e-5, rtol=0)
