"""Progress of long work (trials of a search, searches of a sweep, the saturation grid): a tqdm bar on stderr when
stderr is a terminal; otherwise (a log file, a batch job, CI) log lines, at most one every THROTTLE_S seconds."""

import logging
import math
import sys
import time
from typing import Any

from tqdm import tqdm

THROTTLE_S = 10.0
log = logging.getLogger(__name__)


class Lines:
    """The part of tqdm's interface the project uses (update, n, set_postfix, refresh, close, with), as log lines:
    one when something finished, at most every THROTTLE_S seconds, and the last one at close."""

    disable = True  # no bar

    def __init__(self, total: int | None, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.postfix = ""
        self._shown: tuple[int, str] = (0, "")
        self._at = -math.inf

    def update(self, n: int = 1) -> None:
        self.n += n
        self.refresh()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        self.refresh()

    def refresh(self, last: bool = False) -> None:
        state = (self.n, self.postfix)
        if state == self._shown or (not last and time.monotonic() - self._at < THROTTLE_S and self.n != self.total):
            return
        of = f"/{self.total}" if self.total else ""
        log.info("%s: %d%s %s(s) done%s", self.desc, self.n, of, self.unit, f" ({self.postfix})" if self.postfix else "")
        self._shown, self._at = state, time.monotonic()

    def close(self) -> None:
        self.refresh(last=True)

    def __enter__(self) -> "Lines":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bar(total: int | None = None, desc: str = "", unit: str = "it", **kwargs: Any) -> "tqdm | Lines":
    """A bar to `update()` (or set `.n` and `refresh()`) on a terminal; log lines elsewhere."""
    if not sys.stderr.isatty():
        return Lines(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, **kwargs)
