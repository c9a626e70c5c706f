"""matplotlib figures: phase diagrams and trajectories, saturation, the uv model.

Figures are built with `matplotlib.figure.Figure`, outside pyplot: no backend is chosen and no global figure registry
is touched, at import or at call (savefig renders PNG with Agg by itself)."""

from typing import Any

from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], layout: str | None = None, **kwargs: Any) -> tuple[Figure, Any]:
    """A figure and its axes, like pyplot.subplots."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, **kwargs)
