"""The uv model of Sec. 5 / App. B in closed form: f(x) = v.u x / sqrt(w), GD on the single example (x, y) = (1, 0).

A run's whole state is three numbers, A = |u|^2, B = |v|^2, D = u.v (DESIGN sec. 9), so everything here is
vectorised over any leading shape, typically (initialisations, learning rates). With f = D / sqrt(w) and
L = f^2 / 2 the Hessian is H = g g^T + (f / sqrt(w)) J, g = (v, u) / sqrt(w), J = [[0, I], [I, 0]]: on span{g, J g}
it reduces to [[s/w, 3 f/sqrt(w)], [f/sqrt(w), 0]] (s = A + B), on the complement it is (f / sqrt(w)) J.
"""

from typing import Literal, NamedTuple

import numpy as np
from scipy.special import gammaln

from phasediag.physics import critical, grid
C_FIT_MAX = grid.UV_C_FIT_MAX  # the paper removes larger c before taking Def. 4's derivatives (App. B)
Scaling = Literal["c", "k"]  # eta = c / lambda_0 or eta = k / tr(H_0)


class State(NamedTuple):
    A: np.ndarray  # |u|^2
    B: np.ndarray  # |v|^2
    D: np.ndarray  # u.v


def state_from_vectors(u: np.ndarray, v: np.ndarray) -> State:
    """(A, B, D) of vectors u, v with the width on the last axis."""
    return State((u * u).sum(-1), (v * v).sum(-1), (u * v).sum(-1))


def sample(width: int, inits: int, seed: int) -> State:
    """u_i, v_i ~ N(0, 1), seeded by (seed, width); init j is the same whatever `inits` and the other widths are."""
    uv = np.random.default_rng([seed, width]).standard_normal((inits, 2, width))
    return state_from_vectors(uv[:, 0], uv[:, 1])


def log2_grid(x_min: float, x_max: float, step: float) -> np.ndarray:
    """c = 2^x for x = x_min, x_min + step, ..., x_max (x rounded so that e.g. x = 2 gives exactly c = 4)."""
    return 2.0 ** np.array(grid.log2_points(x_min, x_max, step))


def output(state: State, width: int) -> np.ndarray:
    return state.D / np.sqrt(width)


def loss(state: State, width: int) -> np.ndarray:
    return 0.5 * output(state, width) ** 2


def trace(state: State, width: int) -> np.ndarray:
    """tr(H) = (|u|^2 + |v|^2) / w (Eq. 6), equal to the NTK."""
    return (state.A + state.B) / width


def eigenvalues(state: State, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lambda+, lambda-, mu): the 2x2 block's eigenvalues and mu = f / sqrt(w).

    +mu and -mu each have multiplicity w - 1; lambda+ is the top one (>= tr(H) >= 2 |mu|, since A + B >= 2 |D|).
    """
    a, mu = trace(state, width), output(state, width) / np.sqrt(width)
    plus = 0.5 * (a + np.sqrt(a**2 + 12 * mu**2))
    return plus, -3 * mu**2 / plus, mu  # lambda- from the product of the roots: no cancellation


def sharpness(state: State, width: int) -> np.ndarray:
    """Top Hessian eigenvalue lambda+."""
    return eigenvalues(state, width)[0]


def frobenius2(state: State, width: int) -> np.ndarray:
    """||H||_F^2 = tr(H)^2 + 4 L (1 + 2/w) (Eq. 7)."""
    return trace(state, width) ** 2 + 4 * loss(state, width) * (1 + 2 / width)


def correlation(state: State) -> np.ndarray:
    """The weight correlation u.v / (|u| |v|) of Fig. 8."""
    return state.D / np.sqrt(state.A * state.B)


MEASURES = {  # name -> fn(state, width)
    "loss": loss,
    "sharpness": sharpness,
    "trace": trace,
    "frobenius2": frobenius2,
    "correlation": lambda state, width: correlation(state),
}
ALL = tuple(MEASURES)


def step(state: State, eta: np.ndarray | float, width: int) -> State:
    """One GD step u' = u - e v, v' = v - e u with e = eta f / sqrt(w) (Eqs. 8-9), on (A, B, D)."""
    A, B, D = state
    e = eta * output(state, width) / np.sqrt(width)
    return State(A - 2 * e * D + e**2 * B, B - 2 * e * D + e**2 * A, D * (1 + e**2) - e * (A + B))


def run(
    state0: State, eta: np.ndarray, width: int, steps: int, measures: tuple[str, ...] = ALL
) -> dict[str, np.ndarray]:
    """GD from state0 (broadcast against eta); each measure as an array (..., steps + 1), t = 0 first.

    Divergent runs overflow to inf / NaN on purpose: critical.diverged reads them as diverged.
    """
    shape = np.broadcast_shapes(np.shape(eta), *(np.shape(x) for x in state0))
    state = State(*(np.broadcast_to(x, shape) for x in state0))
    history: dict[str, list[np.ndarray]] = {name: [] for name in measures}
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps + 1):
            for name in measures:
                history[name].append(MEASURES[name](state, width))
            if t < steps:
                state = step(state, eta, width)
    return {name: np.stack(values, axis=-1) for name, values in history.items()}


def sweep(
    state0: State, width: int, grid: np.ndarray, scaling: Scaling, steps: int, measures: tuple[str, ...] = ALL
) -> dict[str, np.ndarray]:
    """Every init at every grid value of c (eta = c / lambda_0) or k (eta = k / tr(H_0)).

    state0 has shape (inits,); each measure comes back as (inits, len(grid), steps + 1).
    """
    norm = sharpness(state0, width) if scaling == "c" else trace(state0, width)
    column = State(*(x[:, None] for x in state0))
    return run(column, np.asarray(grid)[None, :] / norm[:, None], width, steps, measures)


def _ratio(history: np.ndarray) -> np.ndarray:
    """x_t / x_0 for t >= 1."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return history[..., 1:] / history[..., :1]


def _scan(grid: np.ndarray, history: dict[str, np.ndarray], sharp: str) -> dict[str, np.ndarray]:
    """The paper's upward scan with `sharp` as the sharpness measure: c_loss, c_sharp, c_max per init (censored)."""
    with np.errstate(over="ignore"):  # rounding ratios of runs that blew up
        answers = {
            "loss": critical.increased(_ratio(history["loss"])),
            "sharp": critical.increased(_ratio(history[sharp])),
            "max": critical.diverged(history["loss"]),
        }
    return critical.constants_on_grid(grid, answers)


def critical_constants(state0: State, width: int, grid: np.ndarray, steps: int = 10) -> dict[str, np.ndarray]:
    """Per init: c_loss, c_sharp, c_max (eta = c / lambda_0, sharpness lambda+) and k_loss, k_trace, k_max, k_frob
    (eta = k / tr(H_0), sharpness measured by tr(H) and by ||H||_F^2), over t in [1, steps] (Fig. 7); each
    censored by critical.censor, with its 0/1 flag (c_loss_censored, ..., k_frob_censored)."""
    by_c = _scan(grid, sweep(state0, width, grid, "c", steps, ("loss", "sharpness")), "sharpness")
    by_k = sweep(state0, width, grid, "k", steps, ("loss", "trace", "frobenius2"))
    by_trace, by_frob = _scan(grid, by_k, "trace"), _scan(grid, by_k, "frobenius2")
    renamed = {"k_loss": (by_trace, "c_loss"), "k_trace": (by_trace, "c_sharp"), "k_max": (by_trace, "c_max"),
               "k_frob": (by_frob, "c_sharp")}  # fmt: skip
    k_constants = {}
    for name, (scan, column) in renamed.items():
        k_constants[name] = scan[column]
        if f"{column}_censored" in scan:
            k_constants[f"{name}_censored"] = scan[f"{column}_censored"]
    return {**by_c, **k_constants}


def normalised_sharpness(state0: State, width: int, grid: np.ndarray, tau: int = 100) -> np.ndarray:
    """lambda_tau / lambda_0 per (init, c) with eta = c / lambda_0 (Fig. 10); NaN where the run diverged."""
    history = sweep(state0, width, grid, "c", tau, ("loss", "sharpness"))
    ratio = _ratio(history["sharpness"])[..., -1]
    return np.where(critical.diverged(history["loss"]), np.nan, ratio)


def first_step_loss_ratio(state0: State, width: int, k: np.ndarray) -> np.ndarray:
    """L_1 / L_0 per (init, k) with eta = k / tr(H_0) (Fig. 11 b)."""
    return _ratio(sweep(state0, width, k, "k", 1, ("loss",))["loss"])[..., 0]


def mean_f2_over_trace2(width: int) -> float:
    """<f_0^2 / tr(H_0)^2> = w / (4 (w + 1)) (Eq. 14)."""
    return width / (4 * (width + 1))


def mean_f4_over_trace4(width: int) -> float:
    """<f_0^4 / tr(H_0)^4> = 3 (w + 2) w^3 / 16 * Gamma(w) / Gamma(w + 4) (Eq. 15)."""
    return 3 * (width + 2) * width**3 / 16 * np.exp(gammaln(width) - gammaln(width + 4))


def mean_first_step_loss_ratio(k: np.ndarray, width: int) -> np.ndarray:
    """<L_1 / L_0> for eta = k / tr(H_0): Eq. (13) with the moments (14)-(15), which is Eq. (16)."""
    k = np.asarray(k, dtype=float)
    return (
        (1 - k) ** 2
        + 2 * (1 - k) * k**2 / width * mean_f2_over_trace2(width)
        + k**4 / width**2 * mean_f4_over_trace4(width)
    )


def balanced_loss(trace_h: np.ndarray, corr: np.ndarray, width: int) -> np.ndarray:
    """L at given tr(H) and weight correlation when |u| = |v| (the Fig. 8 background): L = w corr^2 tr^2 / 8."""
    return width * corr**2 * trace_h**2 / 8
