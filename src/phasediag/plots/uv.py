"""Figures of the uv model (Figs. 7, 8, 10, 11 of the paper) from the tables of reports.uv. matplotlib."""

from pathlib import Path

import matplotlib
import matplotlib.ticker

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.colors import LogNorm

from phasediag.physics import critical
from phasediag.physics import uvmodel
from phasediag.plots.phase import REGIONS  # the same colours as the networks' phase diagrams
from phasediag.plots import subplots
from phasediag.plots.saturation import c_panels, chi_labels
MARKERS = {"loss": ("o", "tab:blue"), "sharp": ("s", "tab:red"), "max": ("^", "black")}


def _width_colours(widths) -> dict[int, tuple]:
    widths = sorted(set(int(w) for w in widths))
    cmap = matplotlib.colormaps.get_cmap("viridis")
    return {w: cmap(i / max(len(widths) - 1, 1)) for i, w in enumerate(widths)}


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return Path(path)


def _phase_panel(ax: Axes, summary: pd.DataFrame, names: dict[str, str], symbol: str, title: str) -> None:
    """One phase diagram: means with 25-75% bars against 1/w, quadratic fits in 1/w, filled phases, 2 dashed."""
    y = 1.0 / summary["width"].to_numpy(float)
    ys = np.linspace(0.0, 1.05 * y.max(), 200)
    fits = {}
    for key, column in names.items():
        mean, q25, q75 = (summary[f"{column}_{stat}"].to_numpy(float) for stat in ("mean", "q25", "q75"))
        marker, colour = MARKERS[key]
        label = f"$\\langle {symbol}_{{{column.split('_')[1]}}} \\rangle$"
        ax.hlines(y, q25, q75, color=colour, lw=1.2)  # not xerr: a skewed mean can lie outside [q25, q75]
        ax.plot(mean, y, marker, color=colour, ms=4, label=label)
        fits[key] = critical.polyfit_curve(y, mean)(ys)
        ax.plot(fits[key], ys, color=colour, lw=1)
    left, right = 0.9, 1.2 * float(summary[f"{names['max']}_q75"].max())
    # phase boundaries from left to right; a sharpness constant beyond c_max (trace) leaves no catapult of it
    edges = [np.full_like(ys, left), fits["loss"], np.minimum(fits["sharp"], fits["max"]), fits["max"],
             np.full_like(ys, right)]
    for (label, colour), x0, x1 in zip(REGIONS, edges[:-1], edges[1:]):
        ax.fill_betweenx(ys, x0, np.maximum(x0, x1), color=colour, lw=0, label=label, zorder=0)
    ax.axvline(2.0, color="grey", ls="--", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlim(left, right)
    ax.set_ylim(0.0, ys[-1])
    ax.set_xlabel(f"${symbol}$ (log scale)")
    ax.set_ylabel("$1/w$")
    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())


def phase_diagrams(summary: pd.DataFrame, path: Path) -> Path:
    """Fig. 7 (a, b, c) from critical.aggregate of the constants by width."""
    fig, axes = subplots(1, 3, figsize=(15, 4.2))
    panels = [
        ({"loss": "c_loss", "sharp": "c_sharp", "max": "c_max"}, "c",
         "(a) sharpness $\\lambda^H_t$, $\\eta = c/\\lambda^H_0$"),
        ({"loss": "k_loss", "sharp": "k_trace", "max": "k_max"}, "k", "(b) trace tr$(H_t)$, $\\eta = k/$tr$(H_0)$"),
        ({"loss": "k_loss", "sharp": "k_frob", "max": "k_max"}, "k", "(c) $\\|H_t\\|_F^2$, $\\eta = k/$tr$(H_0)$"),
    ]
    for ax, (names, symbol, title) in zip(axes, panels):
        _phase_panel(ax, summary, names, symbol, title)
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[:3], labels[:3], fontsize=8, loc="upper left")  # the constants; phases go below
    fig.legend(handles[3:], labels[3:], loc="lower center", ncol=4, fontsize=9, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("uv model: phase diagrams of early training (mean over inits, bars 25-75%)")
    return _save(fig, path)


def trajectories(table: pd.DataFrame, path: Path) -> Path:
    """Fig. 8: GD paths in the (tr H, weight correlation) plane over the loss at |u| = |v| (darker = smaller loss)."""
    widths, cs = sorted(table["width"].unique(), reverse=True), sorted(table["c"].unique())
    fig, axes = subplots(len(widths), len(cs), figsize=(5 * len(cs), 4 * len(widths)), squeeze=False,
                             layout="constrained")
    for row, width in zip(axes, widths):
        rows = table[table["width"] == width]
        tmax = 1.15 * rows["trace"].max()
        rmax = min(1.0, 1.3 * rows["correlation"].abs().max())
        grid_t, grid_r = np.meshgrid(np.linspace(1e-3 * tmax, tmax, 300), np.linspace(-rmax, rmax, 300))
        background = uvmodel.balanced_loss(grid_t, grid_r, width) + 1e-12
        for ax, c in zip(row, cs):
            path_ = rows[rows["c"] == c].sort_values("t")
            mesh = ax.pcolormesh(grid_t, grid_r, background, norm=LogNorm(vmin=1e-4, vmax=background.max()),
                                 cmap="magma", shading="auto")
            ax.plot(path_["trace"], path_["correlation"], "-", color="white", lw=1)
            points = ax.scatter(path_["trace"], path_["correlation"], c=path_["loss"], cmap="magma",
                                norm=mesh.norm, edgecolors="cyan", s=40, zorder=3)
            ax.annotate("t=0", (path_["trace"].iloc[0], path_["correlation"].iloc[0]), color="cyan",
                        textcoords="offset points", xytext=(5, 5), fontsize=8)
            ax.set_title(f"w = {width}, c = {c}", fontsize=10)
            ax.set_xlabel("tr$(H)$")
            ax.set_ylabel("$u \\cdot v / (|u||v|)$")
        fig.colorbar(points, ax=row.tolist(), label="loss")
    fig.suptitle("uv model: first GD steps in the (trace, weight correlation) plane")
    return _save(fig, path)


def saturation(table: pd.DataFrame, path: Path, variable: str = "c") -> Path:
    """Fig. 10: <lambda_tau / lambda_0> against c (std band), chi and chi' with c_crit per width."""
    fig, axes = subplots(1, 3, figsize=(15, 4))
    colours = _width_colours(table["width"])
    for width, rows in table.groupby("width"):
        colour, c = colours[width], rows["c"].to_numpy()
        mean, std = rows["mean_ratio"].to_numpy(), rows["std_ratio"].to_numpy()
        axes[0].plot(c, mean, "o-", ms=3, color=colour, label=f"w = {width}")
        axes[0].fill_between(c, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
        axes[1].plot(c, rows["chi"], color=colour)
        axes[2].plot(c, rows["chi_prime"], color=colour)
        for ax in axes:
            ax.axvline(rows["c_crit"].iloc[0], color=colour, ls="--", lw=0.8)
    labels = ("$\\langle\\lambda^H_\\tau/\\lambda^H_0\\rangle$, $\\tau = 100$", *chi_labels(variable))
    c_panels(axes, labels)
    axes[0].legend(fontsize=7)
    fig.suptitle("uv model: intermediate saturation; dashed lines: $c_{crit}$ = argmax $\\chi'_\\tau$")
    return _save(fig, path)


def first_step(table: pd.DataFrame, constants: pd.DataFrame, path: Path) -> Path:
    """Fig. 11: (a) Eq. 16, (b) simulated <L1/L0> with std band, against k; (c) lambda0 and tr(H0) against width."""
    fig, axes = subplots(1, 3, figsize=(15, 4))
    colours = _width_colours(table["width"])
    k_dense = np.linspace(0.0, 5.0, 400)
    for width, rows in table.groupby("width"):
        colour = colours[width]
        axes[0].plot(k_dense, uvmodel.mean_first_step_loss_ratio(k_dense, width), color=colour, label=f"w = {width}")
        rows = rows[rows["k"] <= 5.0]
        k, mean, std = rows["k"], rows["mean_loss_ratio"], rows["std_loss_ratio"]
        axes[1].plot(k, mean, "o-", ms=3, color=colour, label=f"w = {width}")
        axes[1].fill_between(k, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
    for ax, title in zip(axes[:2], ("(a) Eq. (16)", "(b) simulated, mean $\\pm$ std over inits")):
        ax.axhline(1.0, color="black", lw=0.8)
        for k in (2.0, 4.0):
            ax.axvline(k, color="grey", ls="--", lw=0.8)
        ax.set_xlim(0.0, 5.0)
        ax.set_ylim(0.0, 3.0)
        ax.set_xlabel("$k$")
        ax.set_ylabel("$\\langle \\mathcal{L}_1/\\mathcal{L}_0 \\rangle$")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    by_width = constants.groupby("width")[["lambda0", "trace0"]].agg(["mean", "std"])
    for column, label, marker in (("lambda0", "$\\lambda^H_0$", "o"), ("trace0", "tr$(H_0)$", "s")):
        axes[2].errorbar(by_width.index, by_width[(column, "mean")], yerr=by_width[(column, "std")], fmt=f"{marker}-",
                         ms=4, capsize=2, label=label)
    axes[2].set_xscale("log", base=2)
    axes[2].set_xlabel("$w$")
    axes[2].set_title("(c) mean $\\pm$ std over inits", fontsize=10)
    axes[2].legend(fontsize=8)
    fig.suptitle("uv model: loss after the first step, $\\eta = k/$tr$(H_0)$")
    return _save(fig, path)
