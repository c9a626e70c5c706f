"""K copies of one network with stacked parameters (leading dimension K): batched loss, Hessian-vector products
and Lanczos, vmapped over the copies with ``torch.func``. Pure torch: no Lightning, no MLflow.

Every copy shares the architecture, the buffers and the examples; only the trainable parameters differ. A product
is forward-over-reverse (``jvp`` of ``grad``, the ``"jvp"`` mode of :class:`hessian.HessianOperator`) so that it
reads the parameters at each call and can run on any subset of the copies: a copy whose Lanczos has converged
drops out of the next products.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from phasediag.physics.hessian import Eigen, LossFn, trainable_parameters

Stacked = dict[str, torch.Tensor]  # parameter name -> (K, *shape)


def stack(model: nn.Module, k: int) -> Stacked:
    """K copies of the model's trainable parameters, detached, on its device."""
    return {name: p.detach().unsqueeze(0).repeat(k, *([1] * p.dim())) for name, p in trainable_parameters(model)}


def copy_of(params: Stacked, k: int) -> dict[str, torch.Tensor]:
    """Copy k's parameters (views)."""
    return {name: t[k] for name, t in params.items()}


def outputs(model: nn.Module, params: Stacked, inputs: torch.Tensor) -> torch.Tensor:
    """f(inputs; theta_k) for every copy: (K, N, outputs). The model's own buffers are shared."""
    return vmap(lambda p: functional_call(model, p, (inputs,)))(params)


def losses(model: nn.Module, loss_fn: LossFn, params: Stacked, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean loss of every copy on (inputs, targets): (K,)."""
    return vmap(lambda p: loss_fn(functional_call(model, p, (inputs,)), targets))(params)


class BatchedHessian:
    """``V[i] -> H_{copies[i]} V[i]``: Hessian-vector products of the mean loss on (inputs, targets) for a subset of
    the copies at once. ``params`` is read at each call (so it may be updated in place between calls);
    ``chunk_size`` splits the examples to bound the memory of one product. ``calls`` counts batched calls."""

    def __init__(
        self, model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor, params: Stacked,
        *, chunk_size: int | None = None,
    ) -> None:  # fmt: skip
        n = inputs.shape[0]
        if n == 0 or targets.shape[0] != n:
            raise ValueError(f"inputs ({n}) and targets ({targets.shape[0]}) must hold the same, non-zero, number of examples")
        self.params = params
        self.names = list(params)
        first = params[self.names[0]]
        self.shapes = [params[name].shape[1:] for name in self.names]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.dim = sum(self.sizes)
        self.device, self.dtype = first.device, first.dtype
        self.calls = 0
        step = n if chunk_size is None else max(1, min(chunk_size, n))
        self.chunks = [(inputs[i : i + step], targets[i : i + step], (min(i + step, n) - i) / n) for i in range(0, n, step)]

        def loss_of(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return loss_fn(functional_call(model, p, (x,)), y)

        gradient = grad(loss_of)

        def hvp(p: dict, v: dict, x: torch.Tensor, y: torch.Tensor) -> dict:
            return jvp(lambda q: gradient(q, x, y), (p,), (v,))[1]

        self._hvp = vmap(hvp, in_dims=(0, 0, None, None))

    def __call__(self, vectors: torch.Tensor, copies: torch.Tensor) -> torch.Tensor:
        """vectors: (len(copies), dim) -> the products, same shape."""
        p = {name: self.params[name][copies].detach() for name in self.names}
        v = {name: t.view(len(copies), *shape) for name, t, shape in zip(self.names, vectors.split(self.sizes, 1), self.shapes)}
        self.calls += 1
        total = None
        with torch.enable_grad():
            for x, y, w in self.chunks:
                part = self._hvp(p, v, x, y)
                flat = torch.cat([part[name].reshape(len(copies), -1) for name in self.names], 1) * w
                total = flat if total is None else total + flat
        return total.detach()


def start_vectors(op: BatchedHessian, v0: list[torch.Tensor | None], generators: list[torch.Generator]) -> torch.Tensor:
    """Unit start vectors, one per copy: v0[k] when usable (finite, non-zero), else a draw from generators[k]
    (the same draw as the sequential solver's)."""
    rows = []
    for v, g in zip(v0, generators):
        if v is not None:
            v = v.detach().reshape(-1).to(device=op.device, dtype=op.dtype)
            n = float(torch.linalg.vector_norm(v))
            if math.isfinite(n) and n > 0:
                rows.append(v / n)
                continue
        r = torch.randn(op.dim, generator=g, device=g.device, dtype=op.dtype).to(op.device)
        rows.append(r / torch.linalg.vector_norm(r))
    return torch.stack(rows)


def lanczos(
    op: BatchedHessian, copies: torch.Tensor, start: torch.Tensor, tol: float = 1e-3, max_iter: int = 30
) -> list[Eigen]:
    """Top eigenpair of each copy's Hessian: :func:`hessian.lanczos` run for every copy at once, each in its own
    Krylov space from its own start vector (``start[i]`` for ``copies[i]``), with the same residual stop, breakdown
    test and iteration cap. A copy leaves the batch when it stops, so later products cost only the rest."""
    max_iter = min(max_iter, op.dim)
    count = len(copies)
    eps = torch.finfo(op.dtype).eps
    Q = torch.zeros((count, max_iter, op.dim), device=op.device, dtype=op.dtype)
    Q[:, 0] = start
    alphas: list[list[float]] = [[] for _ in range(count)]
    betas: list[list[float]] = [[] for _ in range(count)]
    last_beta = torch.zeros(count, device=op.device, dtype=op.dtype)
    results: list[Eigen | None] = [None] * count
    active = torch.arange(count, device=op.device)
    for j in range(max_iter):
        m = j + 1
        q = Q[active, j]
        w = op(q, copies[active])
        alpha = (q * w).sum(1)
        w = w - alpha[:, None] * q
        if j > 0:
            w = w - last_beta[active, None] * Q[active, j - 1]
        basis = Q[active, :m]
        for _ in range(2):  # full re-orthogonalisation, twice is enough
            w = w - torch.einsum("imp,im->ip", basis, torch.einsum("imp,ip->im", basis, w))
        numbers = torch.stack([alpha, torch.linalg.vector_norm(w, dim=1)], 1).tolist()
        going = []
        for i, (a, b) in zip(active.tolist(), numbers):
            if not (math.isfinite(a) and math.isfinite(b)):
                results[i] = Eigen(float("nan"), Q[i, 0], m, float("nan"))
                continue
            alphas[i].append(a)
            T = np.diag(alphas[i]) + np.diag(betas[i], 1) + np.diag(betas[i], -1)
            evals, evecs = np.linalg.eigh(T)
            theta, s = float(evals[-1]), evecs[:, -1]
            bound = abs(b * s[-1])
            breakdown = b <= 10 * eps * max(abs(evals[0]), abs(evals[-1]), b) or m == op.dim
            if breakdown or bound <= tol * abs(theta) or m == max_iter:
                y = torch.as_tensor(s, device=op.device, dtype=op.dtype) @ Q[i, :m]
                residual = bound / abs(theta) if theta != 0 else (0.0 if bound == 0 else math.inf)
                results[i] = Eigen(theta, y / torch.linalg.vector_norm(y), m, residual)
                continue
            betas[i].append(b)
            going.append(i)
        if not going:
            break
        rows = active.tolist()
        keep = torch.tensor([rows.index(i) for i in going], device=op.device)
        active = torch.tensor(going, device=op.device)
        last_beta[active] = torch.tensor([betas[i][-1] for i in going], device=op.device, dtype=op.dtype)
        Q[active, m] = w[keep] / last_beta[active, None]
    return results
