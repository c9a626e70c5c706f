"""SIGTERM and SIGINT: stop at once, end the runs KILLED with the signal as reason, fail the trial (its c is then
retried), exit 128 + signal number (143, 130), like a shell reports a process killed by that signal.

Lightning turns a KeyboardInterrupt inside `Trainer.fit` into `sys.exit(1)`; `interruption` sees through that by
remembering which signal arrived.

Inside `deferred()` (Optuna's bookkeeping around our objectives) a signal is only recorded: an exception raised
half-way through Optuna's `tell` leaves the trial RUNNING and Optuna itself failing (found by CI). Our own code,
inside `interruptible()`, stops at once; `raise_if_received` stops at the next safe point.
"""

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []  # the first signal this process got
_raising = [True]  # whether the handler raises now (False inside deferred())


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived. A KeyboardInterrupt, so that Optuna marks the running trial FAILED."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def reason(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def _handler(signum: int, frame) -> None:
    if _received:  # a second signal (Ctrl-C pressed twice, or the supervisor passing it on): already stopping
        return
    _received.append(signum)
    if _raising[-1]:
        raise Interrupted(signum)


def raise_if_received() -> None:
    """Raise Interrupted if a signal has arrived. Called at safe points (every SGD step, every run): the handler's
    exception is lost when the signal lands in a finalizer (a `__del__` during garbage collection, where Python only
    prints it), and the process would otherwise go on as if nothing had happened."""
    if _received:
        raise Interrupted(_received[0])


@contextmanager
def _raising_set_to(raising: bool) -> Iterator[None]:
    _raising.append(raising)
    try:
        yield
    finally:
        _raising.pop()


@contextmanager
def deferred() -> Iterator[None]:
    """A signal that arrives inside is recorded and raised on leaving, or by an `interruptible()` region inside."""
    with _raising_set_to(False):
        yield
    raise_if_received()


@contextmanager
def interruptible() -> Iterator[None]:
    """Our own computation (training, a whole search): a signal stops it at once, also inside `deferred()`."""
    raise_if_received()
    with _raising_set_to(True):
        yield


def sleep(seconds: float) -> None:
    """Wait (for other workers), stopping at once on a signal even inside `deferred()`."""
    with interruptible():
        time.sleep(seconds)


def install() -> None:
    """Handle SIGTERM and SIGINT in this process (main thread only, where Python delivers signals)."""
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _handler)


def interruption(error: BaseException) -> Interrupted | None:
    """The signal behind `error`, if any: an Interrupted, Ctrl-C without our handler, or Lightning's exit(1)."""
    if isinstance(error, Interrupted):
        return error
    if isinstance(error, KeyboardInterrupt):
        return Interrupted(signal.SIGINT)
    if isinstance(error, SystemExit) and _received:
        return Interrupted(_received[0])
    return None
