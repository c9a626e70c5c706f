"""Logging for the command line and its worker processes (never at import): phasediag's INFO and everybody's
WARNING and up on stderr, stdout being for results."""

import logging
import sys
import warnings

# Lightning's device/tip/stop lines and MLflow's store set-up are INFO; urllib3's per-retry lines would drown the one-line outage error.
# Lightning sets its package loggers to INFO when it is imported, which may be after this: its lines are also
# quieted at the loggers they come from, which it leaves alone.
QUIET = {
    **dict.fromkeys(["lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                     "lightning.fabric.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"], logging.WARNING),
    "urllib3": logging.ERROR,
    "mlflow.store.db.utils": logging.WARNING,  # "Creating initial MLflow database tables...", on a new store
}  # fmt: skip


def filter_warnings() -> None:
    """The warnings that are nobody's concern but Lightning's (the CLI for its process, the API inside each call)."""
    # Lightning 2.6's own pytree helper still builds torch's deprecated LeafSpec (torch 2.14): not a user's concern.
    warnings.filterwarnings("ignore", r".*isinstance.treespec, LeafSpec", FutureWarning)


def configure() -> None:
    """Once per process: the CLI's main and each spawned worker call it."""
    filter_warnings()
    root = logging.getLogger()
    if any(getattr(h, "phasediag", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.phasediag = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(lambda record: record.levelno >= logging.WARNING or record.name.startswith("phasediag"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name, level in QUIET.items():
        logging.getLogger(name).setLevel(level)
