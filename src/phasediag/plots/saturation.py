"""Fig. 5 of the paper: the intermediate saturation regime. matplotlib."""

import math
from pathlib import Path

import matplotlib

import matplotlib.ticker
import numpy as np
import pandas as pd

from phasediag.plots import subplots


def chi_labels(variable: str) -> tuple[str, str]:
    """Axis labels of chi and chi' that name the variable differentiated in (vocabulary.DERIVATIVE_VARIABLES)."""
    d = "dc" if variable == "c" else "d\\log_2 c"
    return (f"$\\chi_\\tau = -d\\langle\\lambda_\\tau/\\lambda_0\\rangle/{d}$",
            f"$\\chi'_\\tau = -d^2\\langle\\lambda_\\tau/\\lambda_0\\rangle/{d}^2$")


def c_panels(axes, labels: tuple[str, ...]) -> None:
    """Panels (a), (b), (c)... against c on a log2 axis with plain tick labels, each with its y label."""
    for ax, label, letter in zip(axes, labels, "abcdefgh"):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("$c$ (log scale)")
        ax.set_ylabel(label)
        ax.set_title(f"({letter})", fontsize=10)


def saturation(curve: pd.DataFrame, c_crit: float, path: Path, title: str = "", table: pd.DataFrame | None = None,
               variable: str = "c") -> Path:
    """Three panels against c (log2 axis): (a) <lambda_tau / lambda_0> with a std band (and each seed, faint; points
    left out of the fit hollow), (b) chi_tau, (c) chi'_tau; a solid line at c_crit and a dashed one at c = 2.

    `curve`: the columns of saturation.curve (c, mean, std, in_fit, chi, chi_prime); `table`: per (seed, c) rows.
    """
    fig, axes = subplots(1, 3, figsize=(15, 4))
    c = curve["c"].to_numpy(float)
    mean, std = curve["mean"].to_numpy(float), curve["std"].to_numpy(float)
    fit = curve["in_fit"].to_numpy(bool)
    ax = axes[0]
    if table is not None:
        for seed, rows in table.groupby("seed"):
            ax.plot(rows["c"], rows["ratio"], color="grey", lw=0.6, alpha=0.5)
    ax.fill_between(c, mean - std, mean + std, color="tab:blue", alpha=0.2, lw=0, label="$\\pm$ std over seeds")
    ax.plot(c, mean, "-", color="tab:blue", lw=1)
    ax.plot(c[fit], mean[fit], "o", ms=3.5, color="tab:blue", label="mean (used for $\\chi$)")
    if (~fit).any():
        ax.plot(c[~fit], mean[~fit], "o", ms=3.5, mfc="none", color="tab:blue", label="mean (left out)")
    axes[1].plot(c[fit], curve["chi"].to_numpy(float)[fit], "o-", ms=3, color="tab:green")
    axes[2].plot(c[fit], curve["chi_prime"].to_numpy(float)[fit], "o-", ms=3, color="tab:purple")
    labels = ("$\\langle\\lambda^H_\\tau/\\lambda^H_0\\rangle$", *chi_labels(variable))
    c_panels(axes, labels)
    for ax in axes:
        ax.axvline(2.0, color="grey", ls="--", lw=1, label="$c = 2$")
        if math.isfinite(c_crit):
            ax.axvline(c_crit, color="tab:red", lw=1.2, label=f"$c_{{crit}}$ = {c_crit:.3g}")
        ax.set_xlim(0.9 * np.nanmin(c), 1.1 * np.nanmax(c))
    axes[1].axhline(0.0, color="black", lw=0.5)
    axes[2].axhline(0.0, color="black", lw=0.5)
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle(title or "intermediate saturation: $c_{crit}$ = argmax $\\chi'_\\tau$")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return Path(path)
