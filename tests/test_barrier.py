"""The barrier stopped at its first point above L(theta_0) gives the full curve's answer, for less."""

import math

import numpy as np
import pytest

from phasediag.run import runner
from phasediag.run.callbacks import Barrier, along_path, coarse_to_fine
from phasediag.run.config import RunConfig

S = Barrier.GRID


@pytest.mark.parametrize("n", [0, 1, 2, 3, 11, 101])
def test_coarse_to_fine_visits_every_point_once_ends_first(n):
    order = coarse_to_fine(n)
    assert sorted(order) == list(range(n))
    if n >= 2:
        assert order[:3] == [0, n - 1, (n - 1) // 2][: min(n, 3)]


def curves() -> dict[str, np.ndarray]:
    """Hand-built interpolated losses L(s), s in S: descending, bumps of several widths and places, a rise at the end."""
    base = 1.0 - 0.5 * S
    bump = lambda centre, width, height: height * np.exp(-(((S - centre) / width) ** 2))  # noqa: E731
    return {
        "monotone descent": base,
        "flat then descent": np.where(S < 0.3, 1.0, 1.0 - (S - 0.3)),
        "wide bump": base + bump(0.4, 0.2, 1.0),
        "narrow bump near the start": base + bump(0.03, 0.01, 0.2),
        "bump just below L(theta_0)": base + bump(0.05, 0.02, 0.09) * (S > 0.01),
        "one point above": np.where(np.isclose(S, 0.37), 1.2, base),
        "ends above": 1.0 + 0.2 * S,
        "not a number on the path": np.where(np.isclose(S, 0.61), np.nan, base),
    }


@pytest.mark.parametrize("name", list(curves()))
def test_the_stopped_barrier_answers_like_the_full_curve(name):
    curve = curves()[name]
    evaluated = []

    def loss_at(i: int) -> float:
        evaluated.append(i)
        return float(curve[i])

    full = along_path(lambda i: float(curve[i]), len(S))
    stopped = along_path(loss_at, len(S), stop_at_barrier=True)
    full_value, stopped_value = np.max(full) - full[0], np.max(stopped) - stopped[0]
    answer = lambda u: bool(not math.isfinite(u) or u > 0)  # noqa: E731 (critical.trial_answers' rule)
    assert answer(stopped_value) == answer(full_value)
    assert len(set(evaluated)) == len(evaluated)  # no point twice
    if answer(full_value):
        assert stopped_value <= full_value or math.isnan(full_value)  # a lower bound of U
    else:
        assert len(evaluated) == len(S) and stopped_value == full_value  # a 'no' needs every point
    if name == "wide bump":
        assert len(evaluated) <= 4  # 0, 1, 0.5, 0.25: the bump shows at the third or fourth point


def test_real_runs_answer_alike_with_and_without_the_full_curve():
    config = RunConfig(arch="fcn", depth=1, width=512, dataset="synthetic:1x8x8:128", batch_size=32, measure_examples=64,
                       loss_set="measure", log_checkpoints=False)  # fmt: skip (a barrier from c = 2^1.4 to 2^2)
    init = runner.initialize(config)
    answers = []
    for c in (2.0, 2.0**1.2, 2.0**1.6, 2.0**2.0, 1e4):
        full = runner.train(init, c, sharpness=False, barrier=True)
        stopped = runner.train(init, c, sharpness=False, barrier=True, full_barrier=False)
        if full.diverged:
            assert stopped.barrier == full.barrier == math.inf and stopped.barrier_points == 0
            answers.append(None)
            continue
        assert (stopped.barrier > 0) == (full.barrier > 0), c
        assert stopped.barrier_curve is None and len(full.barrier_curve) == full.barrier_points == len(S)
        if full.barrier > 0:
            assert 0 < stopped.barrier <= full.barrier and stopped.barrier_points < len(S)
        else:
            assert stopped.barrier == full.barrier == 0.0 and stopped.barrier_points == len(S)
        answers.append(full.barrier > 0)
    assert False in answers and True in answers  # both answers were checked
