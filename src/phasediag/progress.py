"""Progress of long work (trials of a search, searches of a sweep, the saturation grid, waiting for stale trials):
one mechanism, a tqdm bar on stderr, shown only when stderr is a terminal (logs and CI stay clean)."""

import sys
from typing import Any

from tqdm import tqdm


def bar(total: int | None = None, desc: str = "", unit: str = "it", **kwargs: Any) -> tqdm:
    """A bar to `update()` (or set `.n` and `refresh()`); a no-op object when stderr is not a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not sys.stderr.isatty(), dynamic_ncols=True, **kwargs)
