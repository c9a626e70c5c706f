"""phasediag.uvmodel: closed forms against autograd, the 3-number recurrence against vector GD, App. B identities
and averages, the critical constants against a literal loop, and the uv job's files."""

import math
import warnings

import numpy as np
import pytest
import torch

from phasediag.physics import uvmodel as uv
from phasediag.physics.hessian import dense_hessian
from phasediag.physics.losses import mse
from phasediag.models import build_model

GRID = uv.log2_grid(-1.0, 4.0, 0.1)
STEP = 2**0.1  # one grid step, as a factor in c or k
X, Y = torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)


def torch_uv(width: int, seed: int) -> torch.nn.Module:
    return build_model("uv", 2, width, in_shape=(1,), num_classes=1, seed=seed).double()


def state_of(model: torch.nn.Module) -> uv.State:
    return uv.state_from_vectors(model.u.detach().numpy(), model.v.detach().numpy())


def torch_gd_step(model: torch.nn.Module, eta: float) -> None:
    model.zero_grad()
    mse(model(X), Y).backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= eta * p.grad


def closed_form_spectrum(state: uv.State, width: int) -> np.ndarray:
    plus, minus, mu = uv.eigenvalues(state, width)
    return np.sort(np.concatenate([[plus, minus], np.full(width - 1, mu), np.full(width - 1, -mu)]))


@pytest.mark.parametrize("width", [2, 5, 16])
def test_closed_forms_match_dense_autograd_hessian(width):
    model = torch_uv(width, seed=width)
    eta = 2.5 / uv.sharpness(state_of(model), width)  # a catapult, so the checks also cover large f
    for t in range(4):
        state = state_of(model)
        hessian = dense_hessian(model, mse, X, Y).numpy()
        spectrum = np.linalg.eigvalsh(hessian)
        scale = spectrum.max()
        np.testing.assert_allclose(uv.sharpness(state, width), scale, rtol=1e-6)
        np.testing.assert_allclose(closed_form_spectrum(state, width), spectrum, rtol=1e-6, atol=1e-6 * scale)
        np.testing.assert_allclose(uv.trace(state, width), np.trace(hessian), rtol=1e-6)
        np.testing.assert_allclose(uv.frobenius2(state, width), (hessian**2).sum(), rtol=1e-6)
        np.testing.assert_allclose(uv.loss(state, width), mse(model(X), Y).item(), rtol=1e-6)
        torch_gd_step(model, eta)


def test_recurrence_matches_vector_gd():
    width, inits = 7, 5
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal((2, inits, width))
    state = uv.state_from_vectors(u, v)
    eta = (np.array([0.3, 1.2, 2.1, 2.9, 3.8]) / uv.trace(state, width))[:, None]  # k = eta tr(H0): up to catapults
    for _ in range(10):
        f = (u * v).sum(-1, keepdims=True) / math.sqrt(width)
        u, v = u - eta * f * v / math.sqrt(width), v - eta * f * u / math.sqrt(width)  # Eqs. (8)-(9)
        state = uv.step(state, eta[:, 0], width)
        np.testing.assert_allclose(state, uv.state_from_vectors(u, v), rtol=1e-9, atol=1e-9)


def test_function_space_and_trace_updates_match_parameter_updates():
    width = 6
    state = uv.sample(width, 50, seed=3)
    eta = np.linspace(0.1, 3.5, 50) / uv.trace(state, width)
    for _ in range(5):
        f, tr = uv.output(state, width), uv.trace(state, width)
        state = uv.step(state, eta, width)
        f_next = f * (1 - eta * tr + eta**2 * f**2 / width)  # Eq. (10)
        np.testing.assert_allclose(uv.output(state, width), f_next, rtol=1e-9)
        np.testing.assert_allclose(uv.trace(state, width), tr + eta * f**2 / width * (eta * tr - 4), rtol=1e-9)


@pytest.mark.parametrize("width", [1, 2, 8, 32])
def test_initial_moments_match_eqs_14_15(width):
    state = uv.sample(width, 200_000 // width, seed=0)
    ratio2 = uv.output(state, width) ** 2 / uv.trace(state, width) ** 2
    for samples, expected in ((ratio2, uv.mean_f2_over_trace2(width)), (ratio2**2, uv.mean_f4_over_trace4(width))):
        standard_error = samples.std() / math.sqrt(samples.size)
        assert abs(samples.mean() - expected) < 4 * standard_error


def test_eq16_is_its_printed_form():
    k = np.linspace(0, 5, 11)
    for w in (1, 2, 8, 512):
        printed = (1 - k) ** 2 + k**2 * (1 - k) / (2 * (w + 1)) + 3 * k**4 / (16 * (w + 3) * (w + 1))
        np.testing.assert_allclose(uv.mean_first_step_loss_ratio(k, w), printed, rtol=1e-12)


@pytest.mark.parametrize("width", [2, 4, 8, 512])
def test_simulated_first_step_crosses_one_where_eq16_says(width):
    ratio = uv.first_step_loss_ratio(uv.sample(width, 2000, seed=0), width, GRID).mean(0)
    simulated = GRID[np.argmax(ratio > 1)]
    analytic = GRID[np.argmax(uv.mean_first_step_loss_ratio(GRID, width) > 1)]
    assert analytic / STEP - 1e-9 <= simulated <= analytic * STEP + 1e-9


@pytest.fixture(scope="module")
def constants():
    return {w: uv.critical_constants(uv.sample(w, 500, seed=0), w, GRID) for w in (2, 8, 32, 512)}


def test_k_max_is_4_at_every_width(constants):
    for w, values in constants.items():
        assert 4 / STEP <= np.mean(values["k_max"]) <= 4 * STEP, w
        # tr(H) only grows for k > 4 (Eq. 10), where GD nearly always diverges: k_trace is censored (= k_max) for
        # 98.6-99.8% of the inits; the others first meet a trace increase at some k > 4
        censored = values["k_trace_censored"] == 1
        assert censored.mean() > 0.98 and np.all(values["k_trace"][censored] == values["k_max"][censored]), w
        assert np.all(values["k_trace"][~censored] > 4), w


def test_mean_c_loss_falls_towards_2_with_width(constants):
    means = [np.mean(values["c_loss"]) for values in constants.values()]
    assert all(a > b for a, b in zip(means, means[1:])), means
    assert 2.0 <= means[-1] <= 2.0 * STEP + 1e-9, means


def test_no_warnings_from_divergent_runs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uv.critical_constants(uv.sample(4, 20, seed=0), 4, uv.log2_grid(-1.0, 6.0, 0.5))
        uv.normalised_sharpness(uv.sample(4, 20, seed=0), 4, np.array([1.0, 8.0]), tau=100)


def _dense_hessian_numpy(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """H = g g^T + (f/sqrt(w)) [[0, I], [I, 0]], g = (v, u)/sqrt(w) (checked against autograd above)."""
    width = len(u)
    g = np.concatenate([v, u]) / math.sqrt(width)
    mixed = np.kron(np.array([[0.0, 1.0], [1.0, 0.0]]), np.eye(width))
    return np.outer(g, g) + (u @ v) / width * mixed


def _literal_scan(u0: np.ndarray, v0: np.ndarray, scaling: str, steps: int = 10) -> dict[str, float]:
    """The paper's protocol spelled out: for c = 2^x upward, GD on the vectors; stop at the first divergence. A
    constant first met at the divergence is the last c before it (censored)."""
    width = len(u0)
    h0 = _dense_hessian_numpy(u0, v0)
    norm = np.linalg.eigvalsh(h0)[-1] if scaling == "c" else np.trace(h0)
    found: dict[str, float] = {}
    previous = math.nan
    for c in GRID:
        u, v, eta = u0.copy(), v0.copy(), c / norm
        history = {"loss": [], "sharp": [], "trace": [], "frob": []}
        diverged = False
        for t in range(steps + 1):
            h = _dense_hessian_numpy(u, v)
            loss = 0.5 * (u @ v) ** 2 / width
            history["loss"].append(loss)
            history["sharp"].append(np.linalg.eigvalsh(h)[-1])
            history["trace"].append(np.trace(h))
            history["frob"].append((h**2).sum())
            if not np.isfinite(loss) or loss >= 1e5:
                diverged = True
                break
            f = u @ v / math.sqrt(width)
            u, v = u - eta * f * v / math.sqrt(width), v - eta * f * u / math.sqrt(width)
        for name, values in history.items():
            increased = any(round(x / values[0], 2) > 1 for x in values[1:])
            if diverged and name not in found:
                found[name], found[f"{name}_censored"] = previous, 1.0
            elif increased and name not in found:
                found[name], found[f"{name}_censored"] = c, 0.0
        if diverged:
            found["max"] = previous
            return found
        previous = c
    return found


def test_constants_match_a_literal_loop():
    for width in (2, 4):
        state_vectors = np.random.default_rng([0, width]).standard_normal((4, 2, width))
        state = uv.state_from_vectors(state_vectors[:, 0], state_vectors[:, 1])
        np.testing.assert_allclose(state, uv.sample(width, 4, seed=0))
        vectorised = uv.critical_constants(state, width, GRID)
        for i, (u0, v0) in enumerate(state_vectors):
            by_c, by_k = _literal_scan(u0, v0, "c"), _literal_scan(u0, v0, "k")
            expected = {
                "c_loss": by_c["loss"], "c_sharp": by_c["sharp"], "c_max": by_c["max"],
                "k_loss": by_k["loss"], "k_trace": by_k["trace"], "k_max": by_k["max"], "k_frob": by_k["frob"],
                "c_loss_censored": by_c["loss_censored"], "c_sharp_censored": by_c["sharp_censored"],
                "k_trace_censored": by_k["trace_censored"], "k_frob_censored": by_k["frob_censored"],
            }
            for name, value in expected.items():
                assert vectorised[name][i] == pytest.approx(value), (width, i, name)


def test_run_uv_writes_tables_and_figures(tmp_path):
    from phasediag.reports.uv import run_uv

    result = run_uv([2, 8], inits=40, out=tmp_path, log=False)
    tables = ("critical", "first_step", "saturation", "trajectories", "phase_diagram")
    figures = ("fig7_phase_diagrams", "fig8_trajectories", "fig10_saturation", "fig11_first_step")
    names = {f"uv_{name}.csv" for name in tables} | {f"uv_{name}.png" for name in figures}
    assert names <= {p.name for p in tmp_path.iterdir()}
    header = (tmp_path / "uv_critical.csv").read_text().splitlines()[0]
    assert header == ("width,init,lambda0,trace0,c_loss,c_sharp,c_max,k_loss,k_trace,k_max,k_frob,"
                      "c_loss_censored,c_sharp_censored,k_loss_censored,k_trace_censored,k_frob_censored")
    assert (tmp_path / "uv_first_step.csv").read_text().startswith("width,k,mean_loss_ratio")
    assert result["run_id"] is None and {"c_loss_mean_w8", "k_max_mean_w2", "c_crit_w8"} <= set(result["means"])
