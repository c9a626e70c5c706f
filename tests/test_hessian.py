"""phasediag.hessian: HVPs against the dense Hessian, eigen-solvers against eigvalsh, trace, warm start, NaN, 'LA'."""

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from phasediag.physics.hessian import (
    HVP_MODES,
    Eigen,
    HessianOperator,
    dense_hessian,
    eigsh_top,
    hutchinson_trace,
    lanczos,
    power_iteration,
    top_eigenvalue,
    trainable_parameters,
)
from phasediag.physics.losses import LOSSES

HAVE_MODELS = importlib.util.find_spec("phasediag.models") is not None and (
    importlib.util.find_spec("phasediag.models").origin is not None
)
needs_models = pytest.mark.skipif(not HAVE_MODELS, reason="phasediag.models not available yet")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine two OpenMP threads made
    these products ~100x slower (measured: 2.2 s vs 0.012 s per ResNet HVP). Restore the setting afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _data(n, in_shape, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *in_shape), generator=g, dtype=torch.float64)
    y = F.one_hot(torch.randint(0, k, (n,), generator=g), k).double()
    return x, y


def _mlp(seed=0, bias=True):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5, bias=bias), nn.ReLU(), nn.Linear(5, 3, bias=bias)).double()


def _tanh_net(seed=0):  # smooth: no ReLU kinks, a genuinely non-trivial Hessian
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()


class Quadratic(nn.Module):
    """loss = 0.5 theta^T A theta (through the loss below): Hessian = A exactly."""

    def __init__(self, dim, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.theta = nn.Parameter(torch.randn(dim, generator=g, dtype=torch.float64))

    def forward(self, x):
        return self.theta.expand(x.shape[0], -1)


def quad_loss(A):
    def loss(out, _y):
        return 0.5 * torch.einsum("ni,ij,nj->n", out, A, out).mean()

    return loss


def _matrix_with_spectrum(evals, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(evals), len(evals), generator=g, dtype=torch.float64))
    return Q @ torch.diag(torch.tensor(evals, dtype=torch.float64)) @ Q.T


# ------------------------------------------------------------------------------------------ HVPs


@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("mode", HVP_MODES)
@pytest.mark.parametrize("chunk_size", [None, 4, 7])
def test_hvp_matches_dense(loss, mode, chunk_size):
    model, (x, y) = _tanh_net(), _data(17, (6,), 3)
    H = dense_hessian(model, LOSSES[loss], x, y)
    op = HessianOperator(model, LOSSES[loss], x, y, mode=mode, chunk_size=chunk_size)
    assert op.dim == H.shape[0] == sum(p.numel() for p in model.parameters())
    assert op.dtype == torch.float64 and op.device == x.device
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(op.dim, generator=g, dtype=torch.float64)
        torch.testing.assert_close(op(v), H @ v, rtol=1e-10, atol=1e-12)
    assert op.calls == 3
    assert torch.allclose(H, H.T, atol=1e-12)


@pytest.mark.parametrize("mode", HVP_MODES)
def test_chunked_equals_unchunked(mode):
    model, (x, y) = _mlp(), _data(33, (6,), 3)
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    full = HessianOperator(model, LOSSES["mse"], x, y, mode=mode)(v)
    for cs in (1, 8, 10, 33, 100):
        torch.testing.assert_close(HessianOperator(model, LOSSES["mse"], x, y, mode=mode, chunk_size=cs)(v), full)


def test_only_trainable_parameters_and_no_grad_context():
    model, (x, y) = _tanh_net(), _data(9, (6,), 3)
    model[0].weight.requires_grad_(False)
    names = [n for n, _ in trainable_parameters(model)]
    assert "0.weight" not in names and names[0] == "0.bias"
    H = dense_hessian(model, LOSSES["xent"], x, y)
    v = torch.randn(H.shape[0], dtype=torch.float64)
    with torch.no_grad():  # e.g. inside a Lightning validation hook
        for mode in HVP_MODES:
            op = HessianOperator(model, LOSSES["xent"], x, y, mode=mode, chunk_size=4)
            assert op.dim == H.shape[0] == sum(p.numel() for p in model.parameters()) - 30
            torch.testing.assert_close(op(v), H @ v)
    assert all(p.grad is None for p in model.parameters())  # the .grad fields are left alone


def test_operator_rejects_bad_input():
    model, (x, y) = _mlp(), _data(5, (6,), 3)
    with pytest.raises(ValueError, match="hvp mode 'fwd'"):
        HessianOperator(model, LOSSES["mse"], x, y, mode="fwd")
    op = HessianOperator(model, LOSSES["mse"], x, y)
    with pytest.raises(ValueError, match="dimension"):
        op(torch.zeros(op.dim + 1, dtype=torch.float64))


# ------------------------------------------------------------------------------------------ eigen-solvers


def _check_all_methods(model, loss_fn, x, y, rel=1e-4, power=True):
    H = dense_hessian(model, loss_fn, x, y)
    ev = torch.linalg.eigvalsh(H)
    top = float(ev[-1])
    P = H.shape[0]
    e = top_eigenvalue(model, loss_fn, x, y, method="lanczos", tol=1e-7, max_iter=P)
    assert isinstance(e, Eigen) and abs(e.value - top) <= rel * abs(top), (e, top)
    assert e.vector.shape == (P,) and abs(float(e.vector.norm()) - 1) < 1e-10
    assert e.residual <= 1e-7 or e.hvps == P
    # the returned vector is the top eigenvector: its Rayleigh quotient is the value
    assert abs(float(e.vector @ H.to(e.vector) @ e.vector) - top) <= rel * abs(top)
    e = top_eigenvalue(model, loss_fn, x, y, method="eigsh", tol=1e-10)
    assert abs(e.value - top) <= rel * abs(top), (e, top)
    if power:
        # power iteration converges to the largest |eigenvalue|; give it the iterations its spectrum needs
        r = max(abs(float(ev[-2])), abs(float(ev[0]))) / abs(top)
        assert r < 1, "top eigenvalue is not dominant: power iteration cannot find it"
        iters = max(20, math.ceil(math.log(1e-6) / math.log(r)))
        assert iters <= 3000, f"spectral gap too small for a quick power-iteration check (ratio {r})"
        e = top_eigenvalue(model, loss_fn, x, y, method="power", max_iter=iters)
        assert e.hvps == iters
        assert abs(e.value - top) <= rel * abs(top), (e, top, iters)
    return top


@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_top_eigenvalue_small_nets(loss):
    x, y = _data(20, (6,), 3)
    _check_all_methods(_mlp(bias=False), LOSSES[loss], x, y)
    _check_all_methods(_tanh_net(), LOSSES[loss], x, y)


def _build(arch, depth, width, in_shape, k=3, **kw):
    from phasediag.models import build_model

    return build_model(arch, depth, width, in_shape=in_shape, num_classes=k, seed=0, **kw).double()


ARCH_CASES = {
    "fcn-sp": dict(arch="fcn", depth=3, width=6, in_shape=(1, 3, 3), kw=dict(param="sp")),
    "fcn-ntp": dict(arch="fcn", depth=3, width=6, in_shape=(1, 3, 3), kw=dict(param="ntp")),
    "fcn-bias": dict(arch="fcn", depth=3, width=5, in_shape=(1, 3, 3), kw=dict(bias=True)),
    "fcn-centered": dict(arch="fcn", depth=3, width=6, in_shape=(1, 3, 3), kw=dict(output="centered")),
    "fcn-zero_readout": dict(arch="fcn", depth=3, width=6, in_shape=(1, 3, 3), kw=dict(output="zero_readout")),
    "cnn5": dict(arch="cnn", depth=5, width=2, in_shape=(1, 8, 8), kw={}),
    "cnn7": dict(arch="cnn", depth=7, width=2, in_shape=(1, 8, 8), kw={}),
    "cnn10": dict(arch="cnn", depth=10, width=3, in_shape=(1, 8, 8), kw={}),  # width 2: every ReLU dead at seed 0
    "resnet18": dict(arch="resnet", depth=18, width=1, in_shape=(3, 16, 16), kw={}),
    "resnet34": dict(arch="resnet", depth=34, width=1, in_shape=(3, 16, 16), kw={}),
    "uv": dict(arch="uv", depth=2, width=8, in_shape=(1,), kw={}),
}


@needs_models
@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("case", list(ARCH_CASES))
def test_top_eigenvalue_architectures(case, loss):
    c = ARCH_CASES[case]
    k = 1 if c["arch"] == "uv" else 3
    if c["arch"] == "uv" and loss == "xent":
        pytest.skip("the uv model has one output: cross-entropy is constant")
    model = _build(c["arch"], c["depth"], c["width"], c["in_shape"], k=k, **c["kw"])
    if c["arch"] == "resnet":
        # the dense reference costs one backward pass per parameter (P = 2895 / 5361 here): train only the stem,
        # the first block, the projection shortcuts and the readout (P = 231). Every product still
        # back-propagates through the whole network.
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(("stem.", "blocks.0.", "readout.")) or "shortcut" in name)
    n = 1 if c["arch"] == "uv" else 6
    x, y = _data(n, c["in_shape"], k, seed=1)
    if c["arch"] == "uv":  # the paper's uv problem: (x, y) = (1, 0)
        x, y = torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    H = dense_hessian(model, LOSSES[loss], x, y)
    ev = torch.linalg.eigvalsh(H)
    dominant = abs(float(ev[-1])) > 1.01 * max(abs(float(ev[0])), abs(float(ev[-2])))
    _check_all_methods(model, LOSSES[loss], x, y, power=dominant)


def test_lanczos_is_top_algebraic():
    """Most negative eigenvalue larger in magnitude than the top one: Lanczos/eigsh still return the top one."""
    A = _matrix_with_spectrum([-5.0, -1.0, -0.3, 0.2, 0.7, 1.5, 2.0])
    model, loss = Quadratic(7), quad_loss(A)
    x, y = torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)
    torch.testing.assert_close(dense_hessian(model, loss, x, y), A)
    op = HessianOperator(model, loss, x, y)
    e = lanczos(op, tol=1e-10, max_iter=7)
    assert abs(e.value - 2.0) < 1e-9
    assert abs(eigsh_top(op, tol=1e-10).value - 2.0) < 1e-9
    # power iteration finds the dominant-magnitude one instead (documented behaviour)
    assert abs(power_iteration(op, iters=200).value + 5.0) < 1e-6


def test_lanczos_breakdown_is_exact():
    """A spectrum with two distinct values: the Krylov space is 2-dimensional, Lanczos stops there, exactly."""
    A = _matrix_with_spectrum([3.0, 3.0, 3.0, 1.0, 1.0, 1.0])
    op = HessianOperator(Quadratic(6), quad_loss(A), torch.zeros(1, 1), torch.zeros(1, 1))
    e = lanczos(op, tol=0.0, max_iter=6)
    assert e.hvps == 2 and abs(e.value - 3.0) < 1e-12 and e.residual < 1e-12


def test_lanczos_residual_bound_float32():
    """At tol 1e-3 in float32 the residual bound is trustworthy: true error well inside 1e-3."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32, bias=False), nn.ReLU(), nn.Linear(32, 32, bias=False), nn.ReLU(), nn.Linear(32, 4, bias=False))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = F.one_hot(torch.randint(0, 4, (64,), generator=g), 4).float()
    top = float(torch.linalg.eigvalsh(dense_hessian(model, LOSSES["mse"], x, y).double())[-1])
    e = top_eigenvalue(model, LOSSES["mse"], x, y, tol=1e-3)
    assert e.residual <= 1e-3 and e.hvps < 30
    assert abs(e.value - top) / top < 1e-3
    assert e.vector.dtype == torch.float32


@pytest.mark.parametrize("mode", HVP_MODES)
def test_warm_start_after_perturbation(mode):
    model, (x, y) = _tanh_net(), _data(20, (6,), 3)
    cold = top_eigenvalue(model, LOSSES["mse"], x, y, tol=1e-6, max_iter=60, hvp_mode=mode)
    # from its own converged vector: stops at once
    again = top_eigenvalue(model, LOSSES["mse"], x, y, tol=1e-6, v0=cold.vector, hvp_mode=mode)
    assert again.hvps <= 2 and abs(again.value - cold.value) <= 1e-6 * cold.value
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    top = float(torch.linalg.eigvalsh(dense_hessian(model, LOSSES["mse"], x, y))[-1])
    cold2 = top_eigenvalue(model, LOSSES["mse"], x, y, tol=1e-6, max_iter=60, hvp_mode=mode)
    warm = top_eigenvalue(model, LOSSES["mse"], x, y, tol=1e-6, max_iter=60, v0=cold.vector, hvp_mode=mode)
    assert abs(warm.value - top) <= 1e-5 * top and abs(cold2.value - top) <= 1e-5 * top
    assert warm.hvps < cold2.hvps, (warm.hvps, cold2.hvps)


@pytest.mark.parametrize("method", ["lanczos", "power", "eigsh"])
@pytest.mark.parametrize("mode", HVP_MODES)
def test_nan_parameters_give_nan(method, mode):
    model, (x, y) = _mlp(), _data(8, (6,), 3)
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    e = top_eigenvalue(model, LOSSES["mse"], x, y, method=method, hvp_mode=mode)
    assert math.isnan(e.value) and e.hvps >= 1
    assert e.vector.shape == (sum(p.numel() for p in model.parameters()),)
    tr, _ = hutchinson_trace(model, LOSSES["mse"], x, y, samples=3, hvp_mode=mode)
    assert math.isnan(tr)


def test_inf_loss_gives_nan():
    model, (x, y) = _mlp(), _data(8, (6,), 3)
    with torch.no_grad():
        model[3].weight.mul_(1e300)
    for method in ("lanczos", "power", "eigsh"):
        assert math.isnan(top_eigenvalue(model, LOSSES["mse"], x, y, method=method).value)


def test_nonfinite_v0_falls_back_to_random_start():
    model, (x, y) = _tanh_net(), _data(20, (6,), 3)
    ref = top_eigenvalue(model, LOSSES["mse"], x, y, tol=1e-8, max_iter=60)
    v0 = torch.full_like(ref.vector, float("nan"))
    e = top_eigenvalue(model, LOSSES["mse"], x, y, tol=1e-8, max_iter=60, v0=v0)
    assert e.value == ref.value and e.hvps == ref.hvps


def test_reproducible_random_start():
    model, (x, y) = _tanh_net(), _data(20, (6,), 3)
    kw = dict(method="power", max_iter=5)
    a = top_eigenvalue(model, LOSSES["mse"], x, y, **kw)
    b = top_eigenvalue(model, LOSSES["mse"], x, y, **kw)
    c = top_eigenvalue(model, LOSSES["mse"], x, y, generator=torch.Generator().manual_seed(0), **kw)
    d = top_eigenvalue(model, LOSSES["mse"], x, y, generator=torch.Generator().manual_seed(7), **kw)
    assert a.value == b.value == c.value and torch.equal(a.vector, b.vector)
    assert d.value != a.value
    assert hutchinson_trace(model, LOSSES["mse"], x, y, samples=5) == hutchinson_trace(model, LOSSES["mse"], x, y, samples=5)


def test_unknown_method():
    model, (x, y) = _mlp(), _data(4, (6,), 3)
    with pytest.raises(ValueError, match=r"unknown eigen method 'arnoldi'; allowed: lanczos, power, eigsh"):
        top_eigenvalue(model, LOSSES["mse"], x, y, method="arnoldi")


# ------------------------------------------------------------------------------------------ trace


@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_hutchinson_trace(loss):
    model, (x, y) = _tanh_net(), _data(20, (6,), 3)
    tr = float(torch.trace(dense_hessian(model, LOSSES[loss], x, y)))
    est, se = hutchinson_trace(model, LOSSES[loss], x, y, samples=200, chunk_size=8, generator=torch.Generator().manual_seed(5))
    assert se > 0 and abs(est - tr) <= 4 * se, (est, se, tr)
    # Rademacher probes are exact on a diagonal Hessian
    A = torch.diag(torch.tensor([1.0, -2.0, 3.5], dtype=torch.float64))
    est, se = hutchinson_trace(Quadratic(3), quad_loss(A), torch.zeros(1, 1), torch.zeros(1, 1), samples=4)
    assert est == pytest.approx(2.5) and se == pytest.approx(0.0, abs=1e-12)
