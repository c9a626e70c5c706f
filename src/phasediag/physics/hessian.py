"""Hessian-vector products and top-eigenvalue solvers for the loss of a model on a fixed set of examples.

Pure torch (``torch``, ``torch.func``) plus scipy for the ``eigsh`` cross-check: no Lightning, no MLflow.

* :class:`HessianOperator` -- ``v -> H v`` for the mean loss over all examples, chunked over the examples,
  on the model's device. Three ways to compute a product (DESIGN sec. 9):

  - ``"cached"`` (default): per chunk, the gradient is built once with ``create_graph=True`` when the
    operator is built, and every product is one backward pass through that graph (~1.9x a gradient on CPU).
    The graph holds the parameters' values at construction: build a new operator after the parameters change
    (an in-place update such as ``optimizer.step()`` makes the old one raise on its next product).
  - ``"jvp"``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad`` (~3.3x on CPU); no graph kept,
    lowest memory. Reads the parameters at each product.
  - ``"double_backward"``: recompute the gradient with ``create_graph=True`` at every product (~2.9x).

* :class:`PreconditionedOperator` -- ``P^-1/2 H P^-1/2`` for a diagonal pre-conditioner (Adam's sharpness).

* :func:`lanczos` (the solver to use), :func:`power_iteration` (the paper's estimator), :func:`eigsh_top`
  (scipy cross-check), :func:`top_eigenvalue` (one call from a model), :func:`hutchinson_trace`,
  :func:`dense_hessian` (tiny models, tests).

All solvers return :class:`Eigen` and never raise on NaN/inf: the value is then ``nan``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from phasediag.vocabulary import HVP_MODES

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

METHODS = ("lanczos", "power", "eigsh")


@dataclass
class Eigen:
    """One eigenpair estimate of the Hessian.

    ``vector`` is flat, unit norm, on the model's device (usable as the next ``v0``); ``hvps`` counts the
    Hessian-vector products spent; ``residual`` is ``||H v - value v|| / |value|`` (exact for power iteration
    and eigsh, the Lanczos bound ``|beta_j s_j| / |theta|`` for lanczos); ``nan`` when the solve met NaN/inf.
    """

    value: float
    vector: torch.Tensor
    hvps: int
    residual: float


# --------------------------------------------------------------------------------------------- helpers


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) for the parameters with ``requires_grad``, in ``named_parameters`` order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def flatten(tensors) -> torch.Tensor:
    """Concatenate tensors into one flat vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def _default_generator(generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(0)


def _random_unit(op: "HessianOperator", generator: torch.Generator | None) -> torch.Tensor:
    g = _default_generator(generator)
    v = torch.randn(op.dim, generator=g, device=g.device, dtype=op.dtype).to(op.device)
    return v / torch.linalg.vector_norm(v)


def _start_vector(op: "HessianOperator", v0: torch.Tensor | None, generator) -> torch.Tensor:
    """Unit start vector: ``v0`` if it is usable (finite, non-zero), else a seeded random one."""
    if v0 is not None:
        v = v0.detach().reshape(-1).to(device=op.device, dtype=op.dtype)
        if v.numel() != op.dim:
            raise ValueError(f"v0 has {v.numel()} entries, the operator has dimension {op.dim}")
        n = float(torch.linalg.vector_norm(v))
        if math.isfinite(n) and n > 0:
            return v / n
    return _random_unit(op, generator)


# --------------------------------------------------------------------------------------------- operator


class HessianOperator:
    """``H v`` for ``mean loss_fn(model(inputs), targets)`` w.r.t. the trainable parameters (flat, size ``dim``).

    ``chunk_size`` splits the examples into chunks (mean loss = sum of chunk means weighted by chunk size / n).
    Chunking lowers peak memory for ``"jvp"`` and ``"double_backward"``; ``"cached"`` keeps every chunk's graph
    for the operator's lifetime, so there it saves nothing.
    ``mode`` is one of ``"cached"``, ``"jvp"``, ``"double_backward"``. ``calls`` counts products.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        chunk_size: int | None = None,
        mode: str = "cached",
    ) -> None:
        if mode not in HVP_MODES:
            raise ValueError(f"unknown hvp mode {mode!r}; allowed: {', '.join(HVP_MODES)}")
        named = trainable_parameters(model)
        if not named:
            raise ValueError("the model has no trainable parameters")
        n = inputs.shape[0]
        if n == 0 or targets.shape[0] != n:
            raise ValueError(f"inputs ({n}) and targets ({targets.shape[0]}) must hold the same, non-zero, number of examples")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
        self.model, self.loss_fn, self.mode = model, loss_fn, mode
        self.names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self.shapes = [p.shape for p in self.params]
        self.sizes = [p.numel() for p in self.params]
        self.dim = sum(self.sizes)
        self.device = self.params[0].device
        self.dtype = self.params[0].dtype
        self.calls = 0
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        step = n if chunk_size is None else min(chunk_size, n)
        self.chunks = [
            (inputs[i : i + step], targets[i : i + step], (min(i + step, n) - i) / n) for i in range(0, n, step)
        ]
        self._grads: list[torch.Tensor] | None = None
        if mode == "cached":
            with torch.enable_grad():
                total = None
                for x, y, w in self.chunks:
                    g = self._grad(x, y, w, create_graph=True)
                    total = g if total is None else [a + b for a, b in zip(total, g)]
            self._grads = total
        elif mode == "jvp":
            self._build_jvp()

    # -- pieces
    def _grad(self, x, y, w, *, create_graph: bool) -> list[torch.Tensor]:
        loss = self.loss_fn(self.model(x), y) * w
        gs = torch.autograd.grad(loss, self.params, create_graph=create_graph, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, self.params)]

    def _backward_hvp(self, grads: list[torch.Tensor], vs: list[torch.Tensor], retain: bool) -> list[torch.Tensor]:
        idx = [i for i, g in enumerate(grads) if g.requires_grad]
        if not idx:  # gradient independent of the parameters: H = 0
            return [torch.zeros_like(p) for p in self.params]
        hv = torch.autograd.grad(
            [grads[i] for i in idx], self.params, grad_outputs=[vs[i] for i in idx], retain_graph=retain, allow_unused=True
        )
        return [torch.zeros_like(p) if h is None else h for p, h in zip(self.params, hv)]

    def _build_jvp(self) -> None:
        model, loss_fn = self.model, self.loss_fn

        def loss_of(p: dict, x, y, w):
            return loss_fn(functional_call(model, p, (x,)), y) * w

        grad_fn = torch.func.grad(loss_of)

        def hvp(p: dict, t: dict, x, y, w) -> dict:
            return torch.func.jvp(lambda q: grad_fn(q, x, y, w), (p,), (t,))[1]

        self._jvp_hvp = hvp

    # -- product
    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        v = v.reshape(-1)
        if v.numel() != self.dim:
            raise ValueError(f"vector has {v.numel()} entries, the operator has dimension {self.dim}")
        v = v.detach().to(device=self.device, dtype=self.dtype)
        vs = [t.view(s) for t, s in zip(v.split(self.sizes), self.shapes)]
        self.calls += 1
        with torch.enable_grad():
            if self.mode == "cached":
                hv = self._backward_hvp(self._grads, vs, retain=True)
            elif self.mode == "double_backward":
                hv = None
                for x, y, w in self.chunks:
                    part = self._backward_hvp(self._grad(x, y, w, create_graph=True), vs, retain=False)
                    hv = part if hv is None else [a + b for a, b in zip(hv, part)]
            else:  # jvp
                p = {n: q.detach() for n, q in zip(self.names, self.params)}
                t = dict(zip(self.names, vs))
                hv = None
                for x, y, w in self.chunks:
                    d = self._jvp_hvp(p, t, x, y, w)
                    part = [d[n] for n in self.names]
                    hv = part if hv is None else [a + b for a, b in zip(hv, part)]
        return flatten(hv).detach()

    matvec = __call__

    def __repr__(self) -> str:
        return f"HessianOperator(dim={self.dim}, mode={self.mode!r}, chunks={len(self.chunks)}, device={self.device}, dtype={self.dtype})"


class PreconditionedOperator:
    """``v -> P^-1/2 H P^-1/2 v`` for a positive diagonal pre-conditioner ``P`` (flat, one entry per parameter):
    symmetric, with the eigenvalues of ``P^-1 H``, so its top one is the pre-conditioned sharpness
    ``lambda_max(P^-1 H)`` (Adam's stability, Cohen et al. 2022). Any solver takes it in place of ``op``."""

    def __init__(self, op: HessianOperator, preconditioner: torch.Tensor) -> None:
        p = preconditioner.detach().reshape(-1).to(device=op.device, dtype=op.dtype)
        if p.numel() != op.dim or not bool(torch.all(p > 0)):
            raise ValueError(f"the pre-conditioner must hold {op.dim} positive entries, got {p.numel()}")
        self.op, self.scale = op, p.rsqrt()
        self.dim, self.device, self.dtype = op.dim, op.device, op.dtype

    @property
    def calls(self) -> int:
        return self.op.calls

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.scale * self.op(self.scale * v.reshape(-1).to(device=self.device, dtype=self.dtype))


# --------------------------------------------------------------------------------------------- solvers


def _nan_eigen(v: torch.Tensor, hvps: int) -> Eigen:
    return Eigen(float("nan"), v, hvps, float("nan"))


def power_iteration(
    op: HessianOperator, v0: torch.Tensor | None = None, iters: int = 20, generator: torch.Generator | None = None
) -> Eigen:
    """The paper's estimator: ``iters`` products from ``v0`` (else a seeded random start), no stopping test.

    Returns the last iterate ``v`` (unit), its Rayleigh quotient ``v.Hv`` and ``||Hv - value v|| / |value|``.
    Converges to the eigenvalue of largest magnitude, which is the top one only if the negative ones are smaller.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    v = _start_vector(op, v0, generator)
    for i in range(iters - 1):
        w = op(v)
        nrm = float(torch.linalg.vector_norm(w))
        if not math.isfinite(nrm):
            return _nan_eigen(v, i + 1)
        if nrm == 0:  # H v = 0: v is an eigenvector with eigenvalue 0
            return Eigen(0.0, v, i + 1, 0.0)
        v = w / nrm
    w = op(v)
    rq = torch.dot(v, w)
    value, res = torch.stack([rq, torch.linalg.vector_norm(w - rq * v)]).tolist()
    if not (math.isfinite(value) and math.isfinite(res)):
        return _nan_eigen(v, iters)
    residual = res / abs(value) if value != 0 else (0.0 if res == 0 else math.inf)
    return Eigen(value, v, iters, residual)


def lanczos(
    op: HessianOperator,
    v0: torch.Tensor | None = None,
    tol: float = 1e-3,
    max_iter: int = 30,
    generator: torch.Generator | None = None,
) -> Eigen:
    """Top algebraic eigenvalue ('LA') by Lanczos with full re-orthogonalisation.

    Starts from ``v0`` (warm start) or a seeded random vector; after each product ``j`` it takes the top Ritz
    pair ``(theta, s)`` of the tridiagonal ``T_j`` and stops when ``|beta_j * s[-1]| <= tol * |theta|`` (the
    residual norm of the Ritz vector), on breakdown (``beta_j ~ 0``: the Krylov space is invariant, theta exact),
    or after ``max_iter`` products (the best Ritz pair is returned; compare ``residual`` with ``tol``).
    One scalar is read to the host per product for the test; vectors stay on the operator's device.
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    max_iter = min(max_iter, op.dim)
    q = _start_vector(op, v0, generator)
    eps = torch.finfo(op.dtype).eps
    Q = torch.empty((min(max_iter, 32), op.dim), device=op.device, dtype=op.dtype)  # grows by doubling
    Q[0] = q
    alphas: list[float] = []
    betas: list[float] = []
    theta, s, bound = float("nan"), np.ones(1), float("nan")
    for j in range(max_iter):
        m = j + 1
        w = op(Q[j])
        alpha = torch.dot(Q[j], w)
        w = w - alpha * Q[j]
        if j > 0:
            w = w - betas[-1] * Q[j - 1]
        Qm = Q[:m]
        for _ in range(2):  # full re-orthogonalisation, twice is enough
            w = w - Qm.T @ (Qm @ w)
        a, b = torch.stack([alpha, torch.linalg.vector_norm(w)]).tolist()
        if not (math.isfinite(a) and math.isfinite(b)):
            return _nan_eigen(q, m)
        alphas.append(a)
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        evals, evecs = np.linalg.eigh(T)
        theta, s = float(evals[-1]), evecs[:, -1]
        bound = abs(b * s[-1])
        anorm = max(abs(evals[0]), abs(evals[-1]), b)
        breakdown = b <= 10 * eps * anorm or m == op.dim
        if breakdown or bound <= tol * abs(theta):
            break
        if m == max_iter:
            break
        if m == Q.shape[0]:
            Q = torch.cat([Q, torch.empty((min(Q.shape[0], max_iter - m), op.dim), device=op.device, dtype=op.dtype)])
        betas.append(b)
        Q[m] = w / b
    m = len(alphas)
    y = torch.as_tensor(s, device=op.device, dtype=op.dtype) @ Q[:m]
    y = y / torch.linalg.vector_norm(y)
    residual = bound / abs(theta) if theta != 0 else (0.0 if bound == 0 else math.inf)
    return Eigen(theta, y, m, residual)


class _NonFinite(Exception):
    pass


def eigsh_top(
    op: HessianOperator, tol: float = 1e-6, v0: torch.Tensor | None = None, maxiter: int | None = None
) -> Eigen:
    """Cross-check only: scipy ``eigsh(which='LA', k=1)`` over a LinearOperator (host round trip per product).

    ``hvps`` includes one extra product used to compute the true residual ``||Hv - value v|| / |value|``.
    """
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

    start = op.calls

    def matvec(x):
        hv = op(torch.as_tensor(np.asarray(x).reshape(-1), dtype=op.dtype, device=op.device))
        out = hv.cpu().double().numpy()
        if not np.all(np.isfinite(out)):
            raise _NonFinite
        return out

    v0_np = None if v0 is None else v0.detach().reshape(-1).cpu().double().numpy()
    if v0_np is not None and not (np.all(np.isfinite(v0_np)) and np.any(v0_np)):
        v0_np = None
    if v0_np is None:  # ARPACK's own random start is not seeded by us: make it deterministic
        v0_np = _random_unit(op, None).cpu().double().numpy()
    try:
        if op.dim < 3:  # ARPACK needs k < ncv <= n
            H = np.stack([matvec(e) for e in np.eye(op.dim)], axis=1)
            vals, vecs = np.linalg.eigh((H + H.T) / 2)
            vals, vecs = vals[-1:], vecs[:, -1:]
        else:
            A = LinearOperator((op.dim, op.dim), matvec=matvec, dtype=np.float64)
            vals, vecs = eigsh(A, k=1, which="LA", tol=tol, v0=v0_np, maxiter=maxiter)
    except (_NonFinite, ArpackError, ArpackNoConvergence):
        return _nan_eigen(_random_unit(op, None), op.calls - start)
    value = float(vals[0])
    v = torch.as_tensor(vecs[:, 0], device=op.device, dtype=op.dtype)
    v = v / torch.linalg.vector_norm(v)
    res = float(torch.linalg.vector_norm(op(v) - value * v))
    residual = res / abs(value) if value != 0 else (0.0 if res == 0 else math.inf)
    if not math.isfinite(value):
        return _nan_eigen(v, op.calls - start)
    return Eigen(value, v, op.calls - start, residual)


def top_eigenvalue(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    method: str = "lanczos",
    tol: float = 1e-3,
    max_iter: int | None = None,
    v0: torch.Tensor | None = None,
    chunk_size: int | None = None,
    hvp_mode: str = "cached",
    generator: torch.Generator | None = None,
    preconditioner: torch.Tensor | None = None,
) -> Eigen:
    """Sharpness: top eigenvalue of the Hessian of the mean loss on (inputs, targets); with a diagonal
    ``preconditioner`` P (flat), the pre-conditioned sharpness lambda_max(P^-1 H) (``vector`` then lives in the
    space of ``PreconditionedOperator``: warm-start the next pre-conditioned solve with it).

    ``method``: ``"lanczos"`` (residual stop at ``tol``, ``max_iter`` default 30), ``"power"`` (``max_iter``
    fixed iterations, default 20; ``tol`` unused), ``"eigsh"`` (scipy cross-check; ``max_iter`` = ARPACK restarts).
    """
    if method not in METHODS:
        raise ValueError(f"unknown eigen method {method!r}; allowed: {', '.join(METHODS)}")
    op = HessianOperator(model, loss_fn, inputs, targets, chunk_size=chunk_size, mode=hvp_mode)
    if preconditioner is not None:
        op = PreconditionedOperator(op, preconditioner)
    if method == "lanczos":
        return lanczos(op, v0=v0, tol=tol, max_iter=30 if max_iter is None else max_iter, generator=generator)
    if method == "power":
        return power_iteration(op, v0=v0, iters=20 if max_iter is None else max_iter, generator=generator)
    return eigsh_top(op, tol=tol, v0=v0, maxiter=max_iter)


def hutchinson_trace(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    samples: int = 100,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    hvp_mode: str = "cached",
) -> tuple[float, float]:
    """(estimate, standard error) of tr(H) from ``samples`` Rademacher probes z: mean of z.Hz."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    op = HessianOperator(model, loss_fn, inputs, targets, chunk_size=chunk_size, mode=hvp_mode)
    g = _default_generator(generator)
    vals = []
    for _ in range(samples):
        z = torch.randint(0, 2, (op.dim,), generator=g, device=g.device).to(op.device, op.dtype).mul_(2).sub_(1)
        vals.append(torch.dot(z, op(z)))
    vals = torch.stack(vals).double()
    est = float(vals.mean())
    se = float(vals.std(correction=1) / math.sqrt(samples)) if samples > 1 else float("nan")
    return est, se


def dense_hessian(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The full P x P Hessian (trainable parameters, flat, named_parameters order). Tiny models only."""
    named = trainable_parameters(model)
    names = [n for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    flat0 = flatten([p.detach() for _, p in named])
    device = flat0.device
    inputs, targets = inputs.to(device), targets.to(device)

    def f(flat):
        p = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return loss_fn(functional_call(model, p, (inputs,)), targets)

    with torch.enable_grad():
        return torch.autograd.functional.hessian(f, flat0)
