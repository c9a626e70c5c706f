"""What a search knows so far, from its trials: per question a bracket on the grid x_k = x_min + k * resolution,
the next point to train, and what a trial there must measure. Pure: no Optuna, no MLflow.

Each trial at k answers four yes/no questions (critical.QUESTIONS): did the loss increase ('loss'), did the
sharpness increase ('sharp'), did training diverge ('max'), is there a barrier ('barrier'). A constant is the
first 'yes' scanning upward (the paper's grid stops at the first divergence, and a divergence is a 'yes' to every
question), so per question the bracket is (largest k known 'no' below the first known 'yes', first known 'yes'].
"""

import math
from dataclasses import dataclass, field

from phasediag.critical import QUESTIONS

Answers = dict[str, bool | None]  # None: not measured in that trial


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
    gallop: int = 10  # bisect: above the highest 'no' with no 'yes' known, step up this many points
    barrier: bool = True  # is c_barrier wanted at all
    done: dict[int, Answers] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)

    def record(self, k: int, answers: Answers) -> None:
        """Merge a finished trial (several trials at one k measure different things)."""
        merged = self.done.setdefault(k, {q: None for q in QUESTIONS})
        for q, a in answers.items():
            if a is not None:
                merged[q] = a

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

    def next_point(self) -> int | None:
        """The next k to train, or None when everything still needed is already running (or done)."""
        if self.mode == "grid":
            return next((k for k in self._grid_remaining() if k not in self.pending), None)
        # Open gaps per question; running trials already split their brackets (k workers -> k + 1 parts).
        gaps = []
        for q in self.questions():
            lo, hi = self.bracket(q)
            cuts = [lo, *sorted(k for k in self.pending if lo < k < hi), hi]
            gaps += [(a, b) for a, b in zip(cuts, cuts[1:]) if b - a > 1]
        if not gaps:
            return None

        def information(k: int) -> float:  # brackets often overlap: one trial can halve several at once
            return sum(math.log2(b - a) for a, b in gaps if a < k < b)

        def probe(a: int, b: int) -> int:  # no 'yes' above yet: step up from the last 'no' (transitions sit low)
            return min(a + self.gallop, b - 1) if b == self.n_points and a >= 0 else (a + b) // 2

        return max((probe(a, b) for a, b in gaps), key=lambda k: (information(k), -k))

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
        reached inside the grid. `x_of(k)` maps a grid index to x = log2 c."""
        nan = float("nan")
        result = {}
        for q in self.questions():
            lo, hi = self.bracket(q)
            if q == "max":
                result["c_max"] = 2.0 ** x_of(hi - 1) if 0 < hi < self.n_points else nan
            else:
                result[f"c_{q}"] = 2.0 ** x_of(hi) if hi < self.n_points else nan
        return result
