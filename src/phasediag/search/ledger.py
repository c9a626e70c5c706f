"""What a search knows so far, from its trials: per question a bracket on the grid x_k = x_min + k * resolution,
the next point to train, and what a trial there must measure. Pure: no Optuna, no MLflow.

Each trial at k answers four yes/no questions (critical.QUESTIONS): did the loss increase ('loss'), did the
sharpness increase ('sharp'), did training diverge ('max'), is there a barrier ('barrier'). A constant is the
first 'yes' scanning upward (the paper's grid stops at the first divergence, and a divergence is a 'yes' to every
question), so per question the bracket is (largest k known 'no' below the first known 'yes', first known 'yes'].

The answers decide the brackets; the trials' margins (how far the largest loss and sharpness ratios were from
their thresholds, critical.trial_margins) only decide where to probe next: where they interpolate to zero.
"""

import math
from dataclasses import dataclass, field

from phasediag.physics.critical import QUESTIONS, censor

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
    gallop: int = 10  # bisect: above the highest 'no' with no 'yes' known, step up this many points ...
    gallop_near: int = 3  # ... or, once any transition has been seen, this many (the constants sit close together),
    # growing by a third of the distance from the lowest 'yes' (so a far transition is still reached in few steps)
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
        return not any(self.is_open(q) for q in self.questions())

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
        if not gaps:
            return None

        def information(k: int) -> float:  # brackets often overlap: one trial can halve several at once
            return sum(math.log2(b - a) for a, b in gaps if a < k < b)

        return max(probes, key=lambda k: (information(k), -k))

    def _probe(self, a: int, b: int, crossing: tuple[float, bool] | None, lowest_yes: int | None) -> int:
        """The point to try in the open gap (a, b): the grid point nearest the margins' zero crossing when it lies in
        the gap, else the midpoint, or (no 'yes' above yet) a gallop step up from the last 'no'."""
        step = self.gallop if lowest_yes is None else max(self.gallop_near, (a - lowest_yes) // 3)
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
        inside = {q: self.bracket(q)[0] < k < self.bracket(q)[1] for q in self.questions()}
        if not any(inside.values()):
            return None
        return Plan(k, sharpness=inside["sharp"], barrier=inside.get("barrier", False))

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
