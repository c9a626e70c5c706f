"""Models: initial variances against App. A, signal propagation, wrappers, seeding, shapes, validation."""

import math

import pytest
import torch
from torch import nn

from phasediag.models import CNN_DEPTHS, RESNET_DEPTHS, build_model
from phasediag.models.fcn import Dense


def fcn(**kw) -> nn.Module:
    args = dict(arch="fcn", depth=4, width=256, in_shape=(64,), num_classes=10, seed=0) | kw
    return build_model(**args)


def standardized(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Random inputs with zero mean and unit variance over each example's features, so |x|^2 = dim."""
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return (x - x.mean(1, keepdim=True)) / x.std(1, correction=0, keepdim=True)


def assert_variance(w: torch.Tensor, var: float, name: str = "") -> None:
    """Sample variance of zero-mean normal weights within 5 standard errors (SE = var * sqrt(2/n))."""
    n = w.numel()
    sample = w.pow(2).mean().item()
    assert abs(sample - var) < 5 * var * math.sqrt(2 / n), f"{name}: variance {sample:.4g}, expected {var:.4g}"


# ---- initial weight variances (App. A)

@pytest.mark.parametrize("depth", [1, 3])
def test_fcn_sp_weight_variances(depth):
    net = fcn(depth=depth, width=512, param="sp")
    layers = [m for m in net.modules() if isinstance(m, Dense)]
    assert len(layers) == depth
    for i, layer in enumerate(layers):
        fan_in = layer.weight.shape[1]
        gain = 1.0 if layer is net.readout else 2.0
        assert layer.multiplier == 1.0
        assert_variance(layer.weight, gain / fan_in, f"layer {i}")


def test_fcn_ntp_weight_variances_and_multipliers():
    net = fcn(depth=3, width=512, param="ntp")
    for layer in [m for m in net.modules() if isinstance(m, Dense)]:
        fan_in = layer.weight.shape[1]
        gain = 1.0 if layer is net.readout else 2.0
        assert_variance(layer.weight, 1.0)
        assert layer.multiplier == pytest.approx(math.sqrt(gain / fan_in))


def test_cnn_weight_variances():
    net = build_model("cnn", 5, 64, in_shape=(3, 8, 8), num_classes=10, seed=0)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    for conv in convs:
        assert_variance(conv.weight, 2 / (9 * conv.in_channels), str(conv))
    assert_variance(net.readout.weight, 1 / 64, "readout")


def test_resnet_weight_variances():
    """LeCun normal everywhere (flax's default, the authors' ResNet): variance 1/fan_in, stem to readout."""
    net = build_model("resnet", 18, 8, in_shape=(3, 16, 16), num_classes=10, seed=0)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 16 + 3  # stem, two per basic block, three projection shortcuts
    for conv in convs:
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        assert_variance(conv.weight, 1 / fan_in, str(conv))
    assert_variance(net.readout.weight, 1 / 64, "readout")


# ---- the output at init: L0 = O(1) (footnote 5)

def images(shape: tuple[int, ...], n: int = 32) -> torch.Tensor:
    """Standardised Gaussian images (zero mean, unit population std per image, like run.data.standardize), from a
    generator seed no model uses (the same stream would put the first layer's weights along the inputs)."""
    x = standardized(n, math.prod(shape), seed=12345)
    return x.view(n, *shape)


def mean_output_norm2(net: nn.Module, x: torch.Tensor) -> float:
    """<||f(x; theta_0)||^2> / k over the examples."""
    with torch.no_grad():
        out = net(x)
    return out.pow(2).sum(1).mean().item() / out.shape[1]


@pytest.mark.parametrize("depth", RESNET_DEPTHS)
@pytest.mark.parametrize("width", [8, 16, 32])
def test_resnet_output_is_order_one_at_init(depth, width):
    """CIFAR-shaped inputs: <||f||^2>/k <= 10 for every seed tried (He-normal convolutions gave 50-8000)."""
    x = images((3, 32, 32), 16)
    for seed in range(2):
        net = build_model("resnet", depth, width, in_shape=(3, 32, 32), num_classes=10, seed=seed)
        assert mean_output_norm2(net, x) <= 10, seed


@pytest.mark.parametrize(
    "arch, depth, width, shape",
    [("fcn", 4, 256, (3, 32, 32)), ("fcn", 8, 512, (1, 28, 28)), ("fcn", 4, 256, (1, 28, 28)),
     ("cnn", 5, 32, (3, 32, 32)), ("cnn", 7, 32, (3, 32, 32)), ("cnn", 10, 32, (3, 32, 32)),
     ("cnn", 10, 32, (1, 28, 28)), ("uv", 2, 512, (1,))],
)  # fmt: skip
def test_every_other_architecture_output_is_order_one_at_init(arch, depth, width, shape):
    x = torch.ones(1, 1) if arch == "uv" else images(shape, 16)
    classes = 1 if arch == "uv" else 10
    for seed in range(2):
        net = build_model(arch, depth, width, in_shape=shape, num_classes=classes, seed=seed, param="sp")
        assert mean_output_norm2(net, x) <= 10, seed


def test_uv_weight_variances():
    net = build_model("uv", 2, 4096, in_shape=(1,), num_classes=1, seed=0)
    assert_variance(net.u, 1.0, "u")
    assert_variance(net.v, 1.0, "v")


def test_bias_starts_at_zero():
    net = fcn(depth=3, bias=True)
    biases = [p for name, p in net.named_parameters() if name.endswith("bias")]
    assert len(biases) == 3 and all(torch.all(b == 0) for b in biases)


# ---- signal propagation at init

@pytest.mark.parametrize("param", ["sp", "ntp"])
def test_fcn_each_layer_output_variance(param):
    """Given a layer's input a, h_j(x)^2 has mean gain/fan_in * |a(x)|^2, independently over units j.

    Units are iid but examples share weights, so the standard error comes from the spread over units.
    """
    net = fcn(depth=4, width=1024, param=param, num_classes=1000)
    a = standardized(16, 64)
    for i, layer in enumerate(m for m in net.modules() if isinstance(m, Dense)):
        h = layer(a)
        gain = 1.0 if layer is net.readout else 2.0
        expected = gain / a.shape[1] * a.pow(2).sum(1, keepdim=True)
        per_unit = (h.pow(2) / expected).mean(0)
        se = per_unit.std().item() / math.sqrt(len(per_unit))
        assert abs(per_unit.mean().item() - 1) < 5 * se, f"layer {i}: ratio {per_unit.mean():.4f} +- {se:.4f}"
        a = torch.relu(h)


@pytest.mark.parametrize("param", ["sp", "ntp"])
def test_fcn_output_variance_over_inits(param):
    """At criticality E_theta[f(x)^2] = |x|^2 / fan_in exactly, at any depth and width: 1 for standardized x."""
    x = standardized(8, 64)
    per_seed = torch.tensor([fcn(param=param, width=128, seed=s)(x).pow(2).mean().item() for s in range(40)])
    se = per_seed.std().item() / math.sqrt(len(per_seed))
    assert se < 0.1
    assert abs(per_seed.mean().item() - 1) < 5 * se


def test_ntp_and_sp_give_the_same_function():
    """Same seed, same standard normals: an NTP net computes the SP net's function (hence its distribution)."""
    x = standardized(32, 64)
    for seed in range(3):
        f_sp, f_ntp = fcn(param="sp", seed=seed)(x), fcn(param="ntp", seed=seed)(x)
        torch.testing.assert_close(f_ntp, f_sp, rtol=1e-4, atol=1e-5)


# ---- output wrappers

TINY = [
    dict(arch="fcn", depth=3, width=8, in_shape=(1, 8, 8), num_classes=10),
    dict(arch="cnn", depth=5, width=4, in_shape=(1, 8, 8), num_classes=10),
    dict(arch="resnet", depth=18, width=2, in_shape=(3, 16, 16), num_classes=10),
    dict(arch="uv", depth=2, width=8, in_shape=(1,), num_classes=1),
]


def inputs(in_shape, n: int = 4) -> torch.Tensor:
    return torch.randn(n, *in_shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kw", TINY, ids=lambda kw: kw["arch"])
@pytest.mark.parametrize("output", ["centered", "zero_readout"])
@pytest.mark.parametrize("bias", [False, True])
def test_centered_and_zero_readout_start_at_zero(kw, output, bias):
    if kw["arch"] == "uv" and output == "zero_readout":
        pytest.skip("the uv model has no readout layer")
    net = build_model(**kw, seed=0, output=output, bias=bias)
    assert torch.all(net(inputs(kw["in_shape"])) == 0)


@pytest.mark.parametrize("kw", TINY, ids=lambda kw: kw["arch"])
def test_output_scale_multiplies_the_output(kw):
    x = inputs(kw["in_shape"])
    plain = build_model(**kw, seed=0)(x)
    assert plain.abs().max() > 0
    torch.testing.assert_close(build_model(**kw, seed=0, output_scale=3.0)(x), 3.0 * plain)
    alpha = 0.5 * kw["width"] ** -0.5
    torch.testing.assert_close(build_model(**kw, seed=0, output_scale=0.5, output_sigma=0.5)(x), alpha * plain)


def test_centered_keeps_theta0_out_of_the_parameters_and_in_the_state_dict():
    kw = TINY[0]
    plain, net = build_model(**kw, seed=0), build_model(**kw, seed=0, output="centered")
    names = [name for name, _ in net.named_parameters()]
    assert len(names) == len(list(plain.parameters())) == len(list(net.parameters()))
    frozen = set(net.state_dict()) - set(names)
    assert len(frozen) == len(names)

    # training moves theta, not theta0
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1)
    x = inputs(kw["in_shape"])
    assert net(x).abs().max() > 0
    torch.testing.assert_close(net.net0(x), plain(x))

    # theta0 is saved and restored with the state_dict, and follows .to()
    other = build_model(**kw, seed=1, output="centered")
    other.load_state_dict(net.state_dict())
    torch.testing.assert_close(other(x), net(x))
    other.double()
    assert all(other.state_dict()[k].dtype == torch.float64 for k in frozen)


# ---- seeding

@pytest.mark.parametrize("kw", TINY, ids=lambda kw: kw["arch"])
def test_init_is_determined_by_the_seed_alone(kw):
    torch.manual_seed(0)
    a = build_model(**kw, seed=7).state_dict()
    torch.manual_seed(1)
    state = torch.get_rng_state()
    b = build_model(**kw, seed=7).state_dict()
    assert torch.equal(torch.get_rng_state(), state), "building a model must not draw from the global RNG"
    c = build_model(**kw, seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.equal(a[k], c[k]) for k in a)


# ---- shapes

@pytest.mark.parametrize("depth", CNN_DEPTHS)
@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("side", [8, 28])
def test_cnn_output_shape(depth, width, side):
    net = build_model("cnn", depth, width, in_shape=(1, side, side), num_classes=10, seed=0)
    assert net(torch.randn(2, 1, side, side)).shape == (2, 10)


# The spatial side after each conv (and its pooling): the authors pool after the 0-based convs {1, 2, 3}, {1, 3, 5},
# {2, 5, 8}, i.e. the 2nd, 3rd, 4th (d = 5) ...; a 28x28 image stops halving at 7x7.
SIDES = {
    (5, 32): [32, 16, 8, 4], (5, 28): [28, 14, 7, 7],
    (7, 32): [32, 16, 16, 8, 8, 4], (7, 28): [28, 14, 14, 7, 7, 7],
    (10, 32): [32, 32, 16, 16, 16, 8, 8, 8, 4], (10, 28): [28, 28, 14, 14, 14, 7, 7, 7, 7],
}  # fmt: skip


@pytest.mark.parametrize("depth, side", list(SIDES))
def test_cnn_spatial_size_after_every_conv(depth, side):
    net = build_model("cnn", depth, 2, in_shape=(1, side, side), num_classes=10, seed=0)
    x, sides = torch.randn(1, 1, side, side), []
    for layer in net.features:
        x = layer(x)
        if isinstance(layer, nn.ReLU):
            sides.append(x.shape[-1])
        elif isinstance(layer, nn.AvgPool2d):
            sides[-1] = x.shape[-1]
    assert sides == SIDES[depth, side]


@pytest.mark.parametrize("depth", RESNET_DEPTHS)
def test_resnet_output_shape(depth):
    net = build_model("resnet", depth, 2, in_shape=(3, 16, 16), num_classes=10, seed=0)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("depth", [1, 2, 8])
def test_fcn_output_shape(depth):
    net = build_model("fcn", depth, 16, in_shape=(1, 28, 28), num_classes=10, seed=0)
    assert net(torch.randn(5, 1, 28, 28)).shape == (5, 10)


def test_uv_output():
    net = build_model("uv", 2, 16, in_shape=(1,), num_classes=1, seed=0)
    x = torch.tensor([[1.0], [2.0], [-1.0]])
    expected = x * (net.u @ net.v) / 4.0
    torch.testing.assert_close(net(x), expected)
    assert net(x).shape == (3, 1)


# ---- validation

BASE = dict(arch="fcn", depth=3, width=8, in_shape=(4,), num_classes=2, seed=0)
CNN = dict(BASE, arch="cnn", depth=5, in_shape=(1, 8, 8))
UV = dict(BASE, arch="uv", depth=2, in_shape=(1,), num_classes=1)


@pytest.mark.parametrize("kw, named", [
    (dict(BASE, arch="mlp"), "arch='mlp'"),
    (dict(BASE, depth=0), "depth=0"),
    (dict(BASE, depth=2.5), "depth=2.5"),
    (dict(BASE, width=0), "width=0"),
    (dict(BASE, width=True), "width=True"),
    (dict(BASE, param="mu"), "param='mu'"),
    (dict(BASE, output="shifted"), "output='shifted'"),
    (dict(BASE, num_classes=0), "num_classes=0"),
    (dict(BASE, in_shape=()), "in_shape=()"),
    (dict(BASE, in_shape=(4, 0)), "in_shape=(4, 0)"),
    (dict(BASE, seed="zero"), "seed='zero'"),
    (dict(BASE, output_scale=0.0), "output_scale=0.0"),
    (dict(BASE, output_scale=float("nan")), "output_scale=nan"),
    (dict(BASE, output_sigma=float("inf")), "output_sigma=inf"),
    (dict(CNN, depth=6), "depth=6 is not allowed for arch 'cnn': use one of 5, 7, 10"),
    (dict(CNN, param="ntp"), "param='ntp' is not allowed for arch 'cnn'"),
    (dict(CNN, in_shape=(64,)), "in_shape=(64,)"),
    (dict(CNN, depth=10, in_shape=(1, 4, 4)), "in_shape=(1, 4, 4)"),
    (dict(CNN, arch="resnet", depth=50, in_shape=(3, 16, 16)), "depth=50 is not allowed for arch 'resnet'"),
    (dict(CNN, arch="resnet", depth=18, param="ntp"), "param='ntp' is not allowed for arch 'resnet'"),
    (dict(UV, depth=3), "depth=3 is not allowed for arch 'uv'"),
    (dict(UV, in_shape=(2,)), "in_shape=(2,)"),
    (dict(UV, num_classes=2), "num_classes=2"),
    (dict(UV, output="zero_readout"), "output='zero_readout' is not allowed for arch 'uv'"),
])
def test_bad_values_raise_one_clear_line(kw, named):
    with pytest.raises(ValueError) as err:
        build_model(**kw)
    message = str(err.value)
    assert named in message and "use " in message and "\n" not in message
