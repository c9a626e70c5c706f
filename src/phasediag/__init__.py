"""phasediag: early-training phase diagrams of deep networks (Kalra & Barkeshli, NeurIPS 2023).

The Python API (phasediag.api; docs/python-api.md):

    import phasediag
    found = phasediag.search(dataset="synthetic:1x8x8:256", measure_examples=64, batch_size=64, depth=2, width=32)
    found.c_loss, found.c_sharp, found.c_max, found.runs

Light on purpose: phasediag.api and the option dataclasses it imports load no torch, Lightning, MLflow, Optuna, numpy
or pandas; each call imports what it needs. The API is bound here, not through a lazy module __getattr__: `run` and
`search` are also subpackages, and the first import of phasediag.run.* or phasediag.search.* would otherwise set those
attributes to the subpackages, which a module __getattr__ never overrides.
"""

from phasediag.api import RunResult, SearchResult, SweepResult, diagram, results, run, search, sweep, trajectories
from phasediag.errors import ConfigError

__version__ = "0.1.0"
__all__ = ["run", "search", "sweep", "results", "diagram", "trajectories", "RunResult", "SearchResult", "SweepResult",
           "ConfigError"]  # fmt: skip
