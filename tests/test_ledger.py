"""The bisection ledger against the paper's grid scan, on hand-built answer tables (no training)."""

import numpy as np
import pytest

from phasediag.physics.critical import QUESTIONS, constants_on_grid
from phasediag.run.config import RunConfig
from phasediag.search.config import SearchConfig
from phasediag.search.ledger import Ledger

N = 111  # x in [-1, 10] at 0.1
START = 20  # x = 1, the first point of the fast option (x_start = 1)
DEFAULT = SearchConfig(RunConfig())  # the default search: a coarse upward pass from x_min, close calls refined
FAST = dict(start=START, gallop=10, close=0.0)  # x_start=1 gallop=1 close=0: the previous default


def x_of(k: int) -> float:
    return round(-1 + 0.1 * k, 10)


def table(first: dict[str, int], flips: dict[str, list[int]] | None = None) -> dict[str, np.ndarray]:
    """Answers on the whole grid: 'yes' from first[q] on (divergence makes every answer yes), with optional flipped points."""
    answers = {q: np.arange(N) >= first[q] for q in QUESTIONS}
    for q, ks in (flips or {}).items():
        answers[q][ks] = ~answers[q][ks]
    for q in QUESTIONS:
        answers[q] |= answers["max"]
    return answers


def solve(
    answers: dict[str, np.ndarray], mode: str = "bisect", workers: int = 1, margins: dict[str, np.ndarray] | None = None,
    **options,
) -> tuple[Ledger, int]:
    """Drive the ledger (the default search's, with `options` changed) with an oracle; `workers` proposals are taken
    before any of them finishes."""
    ledger, trials = DEFAULT.empty_ledger(), 0
    ledger.mode = mode
    for name, value in options.items():
        setattr(ledger, name, value)
    while not ledger.complete:
        batch = []
        for _ in range(workers):
            k = ledger.next_point()
            if k is None:
                break
            assert k not in ledger.pending, "two workers were given the same point"
            batch.append((k, ledger.plan(k)))  # a worker plans its trial when it starts it
            ledger.pending.add(k)
        for k, plan in batch:
            ledger.pending.discard(k)
            got = {q: bool(answers[q][k]) for q in QUESTIONS}
            if not plan.sharpness:
                got["sharp"] = None
            if not plan.barrier:
                got["barrier"] = None
            measured = {q: float(m[k]) for q, m in (margins or {}).items() if got[q] is not None and not got["max"]}
            ledger.record(k, got, measured)
            trials += 1
    return ledger, trials


def grid_constants(answers: dict[str, np.ndarray]) -> dict[str, float]:
    c = 2.0 ** np.array([x_of(k) for k in range(N)])
    return {k: float(v) for k, v in constants_on_grid(c, {q: answers[q] for q in QUESTIONS}).items()}


@pytest.mark.parametrize(
    "first",
    [
        {"loss": 30, "sharp": 34, "barrier": 59, "max": 62},
        {"loss": 21, "sharp": 21, "barrier": 40, "max": 41},
        {"loss": 0, "sharp": 5, "barrier": 9, "max": 12},  # transitions at the bottom of the grid
        {"loss": 50, "sharp": 200, "barrier": 200, "max": 200},  # nothing diverges inside the grid
        {"loss": 35, "sharp": 30, "barrier": 70, "max": 60},  # c_sharp < c_loss, barrier only through divergence
    ],
)
def test_bisection_equals_grid_on_monotone_answers(first):
    answers = table(first)
    ledger, trials = solve(answers)
    expected = grid_constants(answers)
    got = ledger.constants(x_of)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, nan_ok=True), name
    grid_ledger, grid_trials = solve(answers, "grid")
    assert grid_ledger.constants(x_of) == pytest.approx(expected, nan_ok=True)
    if first["max"] < N:
        assert grid_trials == first["max"] + 1  # the paper's scan stops at the first divergence
        assert trials <= max(16, 2 * grid_trials // 5)  # answers alone; the margins save more (next test)


def smooth_margins(first: dict[str, int], slope: dict[str, float]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Answers from margins that rise smoothly through zero just below first[q] (like log max_t r_t in c)."""
    k = np.arange(N)
    margins = {q: slope[q] * (k - first[q] + 0.5) for q in ("loss", "sharp")}
    answers = table(first)
    for q, m in margins.items():
        answers[q] = (m > 0) | answers["max"]
    return answers, margins


@pytest.mark.parametrize("slope", [{"loss": 0.1, "sharp": 0.05}, {"loss": 0.02, "sharp": 0.3}])
def test_margins_place_probes_near_the_crossings_and_keep_the_answers(slope):
    first = {"loss": 37, "sharp": 44, "barrier": 48, "max": 48}
    answers, margins = smooth_margins(first, slope)
    with_margins, trials = solve(answers, margins=margins)
    without, bisection_trials = solve(answers)
    assert with_margins.constants(x_of) == pytest.approx(grid_constants(answers))
    assert without.constants(x_of) == pytest.approx(grid_constants(answers))
    assert trials <= bisection_trials  # the close calls next to a shallow crossing can take back what the margins saved
    assert trials <= (first["max"] + 1) // 3


def test_the_next_probe_is_the_grid_point_nearest_the_interpolated_crossing():
    ledger = Ledger(N, start=START)
    ledger.record(20, {"loss": False, "sharp": False, "max": False, "barrier": False}, {"loss": -1.0, "sharp": -0.5})
    ledger.record(30, {"loss": True, "sharp": False, "max": False, "barrier": False}, {"loss": 1.5, "sharp": -0.2})
    assert ledger.crossing("loss") == (pytest.approx(24.0), True)  # between the bracket's ends
    assert ledger.crossing("sharp") == (pytest.approx(36.667, abs=1e-3), False)  # extrapolated from below
    ledger.record(31, dict.fromkeys(QUESTIONS, True))  # diverged: only the loss bracket stays open
    assert ledger.next_point() == 24
    ledger.record(24, {"loss": True, "sharp": False, "max": False, "barrier": False}, {"loss": 0.05, "sharp": -0.4})
    assert ledger.next_point() == 23  # the crossing is at 23.8: the 'no' next to it closes the bracket


def test_a_falling_or_missing_margin_leaves_bisection_in_charge():
    ledger = Ledger(N, start=START)
    ledger.record(20, {"loss": False, "sharp": False, "max": False, "barrier": False}, {"loss": -1.0, "sharp": -0.5})
    ledger.record(30, {"loss": False, "sharp": False, "max": False, "barrier": False}, {"loss": -2.0, "sharp": None})
    assert ledger.crossing("loss") is None and ledger.crossing("sharp") is None
    assert ledger.next_point() == 45  # the gallop (1.5 in x)


def test_running_trials_are_split_not_duplicated():
    answers = table({"loss": 30, "sharp": 34, "barrier": 59, "max": 62})
    ledger, trials = solve(answers, workers=3)
    assert ledger.constants(x_of) == pytest.approx(grid_constants(answers))


def test_sharpness_is_measured_inside_its_bracket_and_the_barrier_also_inside_the_loss_bracket():
    ledger = Ledger(N)
    ledger.record(40, {"loss": True, "sharp": True, "max": False, "barrier": False})
    ledger.record(60, {"loss": True, "sharp": True, "max": True, "barrier": True})
    ledger.record(20, {"loss": False, "sharp": False, "max": False, "barrier": False})
    assert ledger.plan(30).sharpness and ledger.plan(30).barrier  # in the loss bracket (20, 40): a window may sit there
    assert ledger.plan(50).barrier and not ledger.plan(50).sharpness
    ledger.record(59, {"loss": True, "sharp": None, "max": False, "barrier": True})
    ledger.record(39, {"loss": True, "sharp": True, "max": False, "barrier": None})
    assert ledger.plan(10) is None  # below every bracket: nothing to learn there
    ledger.record(30, {"loss": True, "sharp": False, "max": False, "barrier": None})
    assert ledger.plan(35).sharpness and not ledger.plan(35).barrier  # above the loss bracket (20, 30], below 40's 'no'


def test_non_monotone_answers_are_reported():
    answers = table({"loss": 30, "sharp": 34, "barrier": 59, "max": 62}, flips={"max": [45]})  # an early divergence
    ledger, _ = solve(answers)
    ledger.record(45, {q: bool(answers[q][45]) for q in QUESTIONS})
    ledger.record(50, {q: bool(answers[q][50]) for q in QUESTIONS})
    assert "max" in ledger.non_monotone()
    assert ledger.constants(x_of)["c_max"] == pytest.approx(2 ** x_of(44))  # first divergence wins, as on the grid


# --- Non-monotone answers: what the default search and the fast option see -------------------------------------------
CLEAN = {"loss": 35, "sharp": 40, "barrier": 50, "max": 55}
FAR, CLOSE = -0.5, -0.005  # margins: a clear 'no', and a 'no' whose ratio rounded to 1.00


def with_one_offs(q: str, ks: list[int], close_to: list[int] = ()) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """CLEAN answers plus a 'yes' to q at ks only; margins far from the threshold except at close_to."""
    answers = table(CLEAN, flips={q: ks})
    margins = {m: np.where(answers[m], 0.5, FAR) for m in ("loss", "sharp")}
    if close_to:  # the barrier has no margin
        margins[q][list(close_to)] = CLOSE
    return answers, margins


def outcome(q: str, answers: dict[str, np.ndarray], margins: dict[str, np.ndarray], **options) -> str:
    """'found' (the grid's constant), 'flagged' (another value, with q in non_monotone) or 'missed' (silently)."""
    ledger, _ = solve(answers, margins=margins, **options)
    name = f"c_{q}"
    if ledger.constants(x_of)[name] == pytest.approx(grid_constants(answers)[name]):
        return "found"
    return "flagged" if q in ledger.non_monotone() else "missed"


@pytest.mark.parametrize(
    "case, q, ks, close_to, default, fast",
    [
        # a one-off sharpness increase at c = 1.32 (x = 0.4), 'no' at c = 2, clean from c = 8: found where the ratio
        # hovers at 1.00 from the coarse probe at c = 1 (x = 0) up to it, missed where its neighbours are clear
        ("lone yes below the first probe, close calls up to it", "sharp", [14], [10, 11, 12, 13, 15], "found", "missed"),
        ("lone yes below the first probe, neighbours clear", "sharp", [14], [], "missed", "missed"),
        ("yes window as wide as the coarse step below c = 2", "sharp", list(range(3, 18)), [], "found", "missed"),
        ("yes window on a coarse probe", "loss", [15], [], "found", "missed"),
        # a barrier 'yes' at the loss catapult only (a cross-entropy seed): measured where the loss constant is trained
        ("barrier window at the loss's first yes", "barrier", [35, 36], [], "found", "found"),
        ("barrier window between two no's, away from any other constant", "barrier", [44], [], "missed", "missed"),
        # inside the bracket (30, 35]: a 'yes' between the two 'no's that the refinement trains (32 and 34)
        # (the fast option finds this one too: the close margins move its regula falsi probe onto 33)
        ("yes between two no's in a bracket, neighbours close calls", "loss", [33], [32, 34], "found", "found"),
        ("yes between two no's in a bracket, neighbours clear", "loss", [33], [], "missed", "missed"),
    ],
)
def test_non_monotone_answers_are_found_or_missed_as_documented(case, q, ks, close_to, default, fast):
    answers, margins = with_one_offs(q, ks, close_to)
    assert outcome(q, answers, margins) == default, case
    assert outcome(q, answers, margins, **FAST) == fast, case


def test_a_yes_found_below_a_no_is_the_constant_and_is_flagged():
    answers, margins = with_one_offs("sharp", [14], [10, 11, 12, 13, 15])
    ledger, trials = solve(answers, margins=margins)
    assert ledger.constants(x_of)["c_sharp"] == pytest.approx(2**0.4)  # the grid's c_sharp = 1.32
    assert ledger.non_monotone() == ["sharp"]  # reported on the parent run
    fast, fast_trials = solve(answers, margins=margins, **FAST)
    assert fast.constants(x_of)["c_sharp"] == pytest.approx(2**3.0) and fast.non_monotone() == []  # 8.0, silently
    assert trials <= fast_trials + 10  # the coarse pass below c = 2 and the close calls: the price of seeing it


def test_close_calls_train_the_neighbours_of_a_close_no_below_the_constant():
    ledger = Ledger(N, start=0, close=0.01)
    ledger.record(30, {"loss": False, "sharp": False, "max": False, "barrier": False}, {"loss": -0.005, "sharp": -0.5})
    ledger.record(31, {"loss": True, "sharp": True, "max": True, "barrier": True})
    assert ledger.close_calls("loss") == [29] and ledger.close_calls("sharp") == []  # 31 is the constant itself
    assert not ledger.complete and ledger.plan(29).sharpness is False
    ledger.record(29, {"loss": False, "sharp": None, "max": False, "barrier": None}, {"loss": -0.2})
    assert ledger.close_calls("loss") == [] and ledger.complete  # a clear 'no': the chain stops
