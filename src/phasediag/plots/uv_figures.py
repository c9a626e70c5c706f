"""Figs. 9 and 12 of the paper (uv model) from the tables of reports.uv_figures. matplotlib, Agg backend."""

from pathlib import Path

import matplotlib

from matplotlib import colormaps
import matplotlib.ticker
import numpy as np
import pandas as pd

from phasediag.physics.critical import DIVERGENCE_LOSS
from phasediag.plots import subplots


def trajectories(paths: pd.DataFrame, constants: pd.DataFrame, path: Path) -> Path:
    """Fig. 9: one row per width, (loss ratio, sharpness ratio) against t, one colour per c; diverged c dotted."""
    widths = list(constants["width"])
    fig, axes = subplots(len(widths), 2, figsize=(11, 3.6 * len(widths)), squeeze=False, layout="constrained")
    cs = sorted(paths["c"].unique())
    colours = {c: colormaps["coolwarm"](i / max(len(cs) - 1, 1)) for i, c in enumerate(cs)}
    for row, (_, meta) in zip(axes, constants.iterrows()):
        rows = paths[paths["width"] == meta["width"]]
        for c, one in rows.groupby("c"):
            blown = ~np.isfinite(one["loss"]) | (one["loss"] >= DIVERGENCE_LOSS)
            style = ":" if blown.any() else "-"
            keep = ~blown
            for ax, column in zip(row, ("loss_ratio", "sharpness_ratio")):
                ax.plot(one["t"][keep], one[column][keep], style, marker="o", ms=2.5, color=colours[c], label=f"c = {c:g}")
        row[0].set_ylabel("$\\mathcal{L}_t / \\mathcal{L}_0$")
        row[1].set_ylabel("$\\lambda^H_t / \\lambda^H_0$")
        constants_text = ", ".join(f"$c_{{{k[2:]}}}$ = {meta[k]:.3g}" for k in ("c_loss", "c_sharp", "c_max"))
        for ax in row:
            ax.set_yscale("log")
            ax.axhline(1.0, color="grey", lw=0.6)
            ax.set_xlabel("step $t$")
            ax.set_title(f"w = {meta['width']:g} (init {meta['init']:g}): {constants_text}", fontsize=9)
    axes[0][1].legend(fontsize=7, ncol=2, title="dotted: diverged", title_fontsize=7)
    fig.suptitle("uv model, GD on (x, y) = (1, 0): early trajectories at $\\eta = c / \\lambda^H_0$", fontsize=10)
    fig.savefig(path, dpi=110)
    return Path(path)


def relations(constants: pd.DataFrame, order: pd.DataFrame, path: Path) -> Path:
    """Fig. 12: per initialisation c_sharp against c_loss and c_max against c_sharp (colour = width, y = x dashed),
    and per width the fraction of initialisations with c_loss <= c_sharp <= c_max (bar) and with c_sharp allowed
    one grid step above c_max (a divergence is a 'yes' to every question: black tick)."""
    fig, axes = subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    widths = sorted(constants["width"].unique())
    colours = {w: colormaps["viridis"](0.9 * i / max(len(widths) - 1, 1)) for i, w in enumerate(widths)}
    jitter = np.random.default_rng(0)  # the constants sit on a grid: spread the dots a little to show how many
    for width, rows in constants.groupby("width"):
        spread = 2 ** (0.02 * jitter.standard_normal((2, len(rows))))
        axes[0].scatter(rows["c_loss"] * spread[0], rows["c_sharp"] * spread[1], s=4, alpha=0.4, color=colours[width],
                        label=f"w = {width}")  # fmt: skip
        axes[1].scatter(rows["c_sharp"] * spread[0], rows["c_max"] * spread[1], s=4, alpha=0.4, color=colours[width])
    for ax, (xl, yl) in zip(axes[:2], (("c_{loss}", "c_{sharp}"), ("c_{sharp}", "c_{max}"))):
        low, high = 0.9 * np.nanmin(constants[["c_loss", "c_sharp"]].to_numpy()), 1.1 * np.nanmax(constants["c_max"])
        ax.plot([low, high], [low, high], "k--", lw=1, label="y = x")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel(f"${xl}$")
        ax.set_ylabel(f"${yl}$")
    axes[0].legend(fontsize=7, markerscale=3)
    names = [str(w) for w in order["width"]]
    axes[2].bar(names, order["fraction"], color=[colours[w] for w in order["width"]], label="strict")
    axes[2].plot(names, order["fraction_one_step"], "k_", ms=18, mew=2, label="$c_{sharp}$ up to one grid step above $c_{max}$")
    axes[2].set_ylim(0, 1.12)
    axes[2].set_xlabel("width $w$")
    axes[2].set_ylabel("fraction of inits with $c_{loss} \\leq c_{sharp} \\leq c_{max}$")
    axes[2].legend(fontsize=7, loc="lower right")
    for x, (fraction, n) in enumerate(zip(order["fraction"], order["inits"])):
        axes[2].text(x, fraction / 2, f"{fraction:.3f}\n(n={n})", ha="center", va="center", fontsize=7, color="white")
    fig.suptitle("uv model: critical constants of each initialisation (one dot each, jittered by 2 %)", fontsize=10)
    fig.savefig(path, dpi=110)
    return Path(path)
