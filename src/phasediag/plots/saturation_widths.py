"""Fig. 5 of the paper with the widths overlaid: <lambda_tau/lambda_0>, chi, chi' against c, c_crit and the FWHM of
the chi' peak per width. matplotlib, Agg backend."""

import math
from pathlib import Path


from matplotlib import colormaps
import pandas as pd

from phasediag.physics.critical import SUPPORT_NEEDED
from phasediag.plots.saturation import c_panels
from phasediag.plots import subplots


def legend_label(width: int, meta: pd.Series) -> tuple[str, bool]:
    """A width's legend entry, and whether the seed bootstrap leaves its chi' peak unsupported (said in the entry;
    with one seed there is no bootstrap and the peak is drawn as measured)."""
    label = f"w = {width}: $c_{{crit}}$ = {meta['c_crit']:.3g}, FWHM = {meta['fwhm']:.3g}"
    support = float(meta.get("c_crit_support", math.nan))
    unsupported = support < SUPPORT_NEEDED
    return (label + f" (unsupported: {support:.0%} of seed redraws)" if unsupported else label), unsupported


def saturation_widths(curves: pd.DataFrame, summary: pd.DataFrame, path: Path, title: str = "") -> Path:
    """(a) mean over seeds with a std band, (b) chi, (c) chi' (fitted points), one colour per width; a solid line at
    each width's c_crit (dotted, and said in the legend, where the seed bootstrap does not support the peak), the chi'
    peak's full width at half maximum as a bar at half height in (c), c = 2 dashed."""
    fig, axes = subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    widths = sorted(curves["width"].unique())
    colours = {w: colormaps["viridis"](0.9 * i / max(len(widths) - 1, 1)) for i, w in enumerate(widths)}
    for width, curve in curves.groupby("width", sort=True):
        meta = summary[summary["width"] == width].iloc[0]
        colour = colours[width]
        c, mean, std = (curve[k].to_numpy(float) for k in ("c", "mean", "std"))
        fit = curve["in_fit"].to_numpy(bool)
        label, unsupported = legend_label(width, meta)
        axes[0].fill_between(c, mean - std, mean + std, color=colour, alpha=0.18, lw=0)
        axes[0].plot(c, mean, "o-", color=colour, ms=2.5, lw=1, label=label)
        axes[1].plot(c[fit], curve["chi"].to_numpy(float)[fit], "-", color=colour, lw=1.2)
        axes[2].plot(c[fit], curve["chi_prime"].to_numpy(float)[fit], "-", color=colour, lw=1.2, label=label)
        if math.isfinite(meta["fwhm"]):
            axes[2].plot([meta["half_left"], meta["half_right"]], [meta["peak_height"] / 2] * 2, "|-", color=colour,
                         lw=2, ms=8)  # fmt: skip
        for ax in axes:
            if math.isfinite(meta["c_crit"]):
                ax.axvline(meta["c_crit"], color=colour, lw=1, ls=":" if unsupported else "-")
    labels = ("$\\langle\\lambda^H_\\tau/\\lambda^H_0\\rangle$", "$\\chi_\\tau$", "$\\chi'_\\tau$ (bar: FWHM)")
    c_panels(axes, labels)
    for ax in axes:
        ax.axvline(2.0, color="grey", ls="--", lw=1)
        ax.axhline(0.0, color="black", lw=0.5)
    axes[0].legend(fontsize=7)
    fig.suptitle(title or "intermediate saturation against width", fontsize=10)
    fig.savefig(path, dpi=110)
    return Path(path)
