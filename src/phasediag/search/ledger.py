"""What a search knows so far, from its trials: per question a bracket on the grid x_k = x_min + k * resolution,
the next point to train, and what a trial there must measure. Pure: no Optuna, no MLflow.

Each trial at k answers four yes/no questions (critical.QUESTIONS): did the loss increase ('loss'), did the
sharpness increase ('sharp'), did training diverge ('max'), is there a barrier ('barrier'). A constant is the
first 'yes' scanning upward (the paper's grid stops at the first divergence, and a divergence is a 'yes' to every
question), so per question the bracket is (largest k known 'no' below the first known 'yes', first known 'yes'].

The answers decide the brackets; the trials' margins (how far the largest loss and sharpness ratios were from
their thresholds, critical.trial_margins) only decide where to probe next: where they interpolate to zero, and,
where a 'no' below a constant was a close call (margin > -close: a ratio within ~5 % of an increase), its grid
neighbours.

What a bisection cannot see: answers are not always monotone in c (noise at small batches, cross-entropy, large
d/w), and the grid's constant is the first 'yes' scanning upward. The search probes every question at least every
`gallop` points from `start` up to its constant (start = 0, the bottom of the grid, by default: the coarse upward
pass), refines each bracket, and trains the neighbours of every close-call 'no' below a constant. The barrier has no
margin, so a trial inside the loss bracket (below c_barrier) measures the barrier too: the barrier windows seen on
noisy answers sit at the loss catapult. A 'yes' below a 'no' that it sees moves the constant down to it and is reported
(`non_monotone`). It misses a 'yes' window that is narrower than `gallop`, falls between its probes, and whose
neighbouring probes were not close calls; and one inside a refined bracket (between two 'no's) under the same
condition. With start above 0 (x_start = 1: c = 2), nothing below the first probe is seen unless something there
answers 'yes' first.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from phasediag.physics.critical import QUESTIONS, censor, increased, trial_answers, trial_margins

Answers = dict[str, bool | None]  # None: not measured in that trial
Margins = dict[str, float | None]  # > 0 leans 'yes'; None: not measured, or not a finite number (diverged)


@dataclass(frozen=True)
class Plan:
    """What the trial at k must measure; loss and divergence are always measured (nearly free)."""

    k: int
    sharpness: bool
    barrier: bool


@dataclass
class Ledger:
    n_points: int  # grid points k = 0 .. n_points - 1
    mode: str = "bisect"  # bisect | grid
    start: int = 0  # bisect: the first point tried
    gallop: int = 15  # bisect: above the highest 'no' with no 'yes' known, step up this many points ...
    gallop_near: int = 3  # ... or, once any transition has been seen, this many (the constants sit close together),
    # growing by a third of the distance from the lowest 'yes' (so a far transition is still reached in few steps),
    # but never more than gallop: every question is probed at least every gallop points below its constant
    close: float = 0.05  # bisect: a 'no' below a constant with margin > -close has its grid neighbours trained; 0: off
    barrier: bool = True  # is c_barrier wanted at all
    done: dict[int, Answers] = field(default_factory=dict)
    margins: dict[int, Margins] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)

    def record(self, k: int, answers: Answers, margins: Margins | None = None) -> None:
        """Merge a finished trial (several trials at one k measure different things)."""
        for known, new in ((self.done, answers), (self.margins, margins or {})):
            merged = known.setdefault(k, {q: None for q in QUESTIONS})
            merged.update({q: v for q, v in new.items() if v is not None})

    def questions(self) -> tuple[str, ...]:
        return QUESTIONS if self.barrier else tuple(q for q in QUESTIONS if q != "barrier")

    def bracket(self, q: str) -> tuple[int, int]:
        """(lo, hi): lo = largest k known 'no' below hi (-1: below the grid), hi = first known 'yes'
        (n_points: none known yet)."""
        yes = [k for k, a in self.done.items() if a[q] is True]
        hi = min(yes, default=self.n_points)
        lo = max((k for k, a in self.done.items() if a[q] is False and k < hi), default=-1)
        return lo, hi

    def is_open(self, q: str) -> bool:
        lo, hi = self.bracket(q)
        return hi - lo > 1

    @property
    def complete(self) -> bool:
        if self.mode == "grid":
            return not self._grid_remaining()
        return not any(self.is_open(q) or self.close_calls(q) for q in self.questions())

    def close_calls(self, q: str) -> list[int]:
        """Unanswered grid neighbours of the close-call 'no's below q's constant: a noisy 'yes' sits next to them."""
        if not self.close:
            return []
        hi = self.bracket(q)[1]
        calls = [k for k, m in self.margins.items() if k < hi and m[q] is not None and -self.close < m[q] <= 0
                 and self.done[k][q] is False]  # fmt: skip
        return sorted({n for k in calls for n in (k - 1, k + 1) if 0 <= n < hi and self._unanswered(n, q)})

    def _unanswered(self, k: int, q: str) -> bool:
        return self.done.get(k, {}).get(q) is None

    def first_divergence(self) -> int:
        return self.bracket("max")[1]

    def _grid_remaining(self) -> list[int]:
        """The paper's scan: every point upward until (and including) the first divergence."""
        return [k for k in range(min(self.first_divergence() + 1, self.n_points)) if k not in self.done]

    def crossing(self, q: str) -> tuple[float, bool] | None:
        """Where q's margin reaches zero, as a fractional k, and whether it was interpolated across the bracket
        (else extrapolated along two points on one side); None without two points or with a falling margin."""
        lo, hi = self.bracket(q)
        known = sorted((k, m[q]) for k, m in self.margins.items() if m[q] is not None)
        below, above = [p for p in known if p[0] <= lo], [p for p in known if p[0] >= hi]
        if below and above:
            (k1, m1), (k2, m2) = below[-1], above[0]
        elif len(below) >= 2:
            (k1, m1), (k2, m2) = below[-2:]
        elif len(above) >= 2:
            (k1, m1), (k2, m2) = above[:2]
        else:
            return None
        if m2 <= m1:
            return None
        return k1 - m1 * (k2 - k1) / (m2 - m1), bool(below and above)

    def next_point(self) -> int | None:
        """The next k to train, or None when everything still needed is already running (or done)."""
        if self.mode == "grid":
            return next((k for k in self._grid_remaining() if k not in self.pending), None)
        if not self.done and not self.pending:
            return self.start
        lowest_yes = min((k for k, answers in self.done.items() if True in answers.values()), default=None)
        # Open gaps per question; running trials already split their brackets (k workers -> k + 1 parts).
        gaps, probes = [], []
        for q in self.questions():
            lo, hi = self.bracket(q)
            cuts = [lo, *sorted(k for k in self.pending if lo < k < hi), hi]
            mine = [(a, b) for a, b in zip(cuts, cuts[1:]) if b - a > 1]
            crossing = self.crossing(q) if mine else None
            gaps += mine
            probes += [self._probe(a, b, crossing, lowest_yes) for a, b in mine]
        if not gaps:  # the brackets are closed: the close calls' neighbours, lowest first
            calls = sorted({k for q in self.questions() for k in self.close_calls(q)} - self.pending)
            return calls[0] if calls else None

        def information(k: int) -> float:  # brackets often overlap: one trial can halve several at once
            return sum(math.log2(b - a) for a, b in gaps if a < k < b)

        return max(probes, key=lambda k: (information(k), -k))

    def _probe(self, a: int, b: int, crossing: tuple[float, bool] | None, lowest_yes: int | None) -> int:
        """The point to try in the open gap (a, b): the grid point nearest the margins' zero crossing when it lies in
        the gap, else the midpoint, or (no 'yes' above yet) a gallop step up from the last 'no'."""
        step = self.gallop if lowest_yes is None else min(self.gallop, max(self.gallop_near, (a - lowest_yes) // 3))
        fallback = min(a + step, b - 1) if b == self.n_points and a >= 0 else (a + b) // 2
        if crossing is None or not a < crossing[0] <= b:
            return fallback
        k, interpolated = round(crossing[0]), crossing[1]
        if not interpolated:  # an extrapolation may be far off: no further than the fallback
            k = min(k, fallback)
        return min(max(k, a + 1), b - 1)

    def plan(self, k: int) -> Plan | None:
        """What a trial at k must measure; None if k can no longer change any answer."""
        if self.mode == "grid":
            return Plan(k, sharpness=True, barrier=self.barrier) if k in self._grid_remaining() else None
        inside = {q: self.bracket(q)[0] < k < self.bracket(q)[1] or k in self.close_calls(q) for q in self.questions()}
        if not any(inside.values()):
            return None
        # the barrier has no margin to flag a close call; its windows sit at the loss catapult, so a trial that
        # locates c_loss below c_barrier measures it too
        loss_lo, loss_hi = self.bracket("loss")
        near_catapult = loss_lo < k < loss_hi and k < self.bracket("barrier")[1] and self._unanswered(k, "barrier")
        return Plan(k, sharpness=inside["sharp"], barrier=self.barrier and (inside["barrier"] or near_catapult))

    def non_monotone(self) -> list[str]:
        """Questions answered 'yes' at some k and 'no' at a larger one."""
        found = []
        for q in QUESTIONS:
            yes = [k for k, a in self.done.items() if a[q] is True]
            if yes and any(a[q] is False and k > min(yes) for k, a in self.done.items()):
                found.append(q)
        return found

    def constants(self, x_of) -> dict[str, float]:
        """c_loss, c_sharp, c_barrier: first 'yes'; c_max: the point below the first divergence. NaN when not
        reached inside the grid. Censored like the grid scan (critical.censor), with the c_<q>_censored flags.
        `x_of(k)` maps a grid index to x = log2 c."""
        nan = float("nan")
        result = {}
        for q in self.questions():
            lo, hi = self.bracket(q)
            if q == "max":
                result["c_max"] = 2.0 ** x_of(hi - 1) if 0 < hi < self.n_points else nan
            else:
                result[f"c_{q}"] = 2.0 ** x_of(hi) if hi < self.n_points else nan
        divergence = self.first_divergence()
        return censor(result, 2.0 ** x_of(divergence) if divergence < self.n_points else nan)


Trial = tuple[Answers, Margins]


def measured_trial(loss_ratio: np.ndarray, sharpness_ratio: np.ndarray, losses: np.ndarray, barrier: float, eps: float) -> Trial:
    """A fully measured run's (answers, margins) as a search's trial would record them: the sharpness stops being
    measured at its first increase (`sharpness_until`), so its margin is that of the first ratio above the threshold."""
    rises = np.flatnonzero(increased(np.asarray(sharpness_ratio[1:], dtype=float)[:, None], eps))
    sharpness_ratio = sharpness_ratio[: rises[0] + 2] if rises.size else sharpness_ratio
    answers = trial_answers(loss_ratio, sharpness_ratio, losses, barrier, eps)
    return answers, trial_margins(loss_ratio, sharpness_ratio, answers["max"], eps)


def replay(ledger: Ledger, trials: dict[int, Trial]) -> Ledger:
    """Drive `ledger` to completion on recorded answers (every point of a grid scan, as a search would have measured
    it): runs are deterministic, so this trains exactly the points a real search would. Points above the recorded
    ones diverged (the grid scan stops at its first divergence); what a trial's plan does not measure is dropped."""
    diverged: Trial = (dict.fromkeys(QUESTIONS, True), {})
    while not ledger.complete:
        k = ledger.next_point()
        plan = ledger.plan(k)
        answers, margins = trials.get(k, diverged)
        answers = {**answers, "sharp": answers["sharp"] if plan.sharpness else None,
                   "barrier": answers["barrier"] if plan.barrier else None}  # fmt: skip
        ledger.record(k, answers, {**margins, "sharp": margins.get("sharp") if plan.sharpness else None})
    return ledger
