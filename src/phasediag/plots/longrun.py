"""Fig. 1 of the paper: loss, sharpness (with 2/eta) and accuracy on a log time axis, regimes marked. Agg backend."""

import math
from pathlib import Path


from matplotlib import colormaps
import pandas as pd

from phasediag.physics import regimes
from phasediag.plots import subplots

SHADES = ("#fde0c5", "#d9ead3", "#cfe2f3", "#ead1dc")  # (i)-(iv)
NUMERALS = ("i", "ii", "iii", "iv")


def reference_c(regime_table: pd.DataFrame) -> float:
    """The c whose regimes are shaded: the one with the most regimes found, the largest among ties."""
    found = regime_table[list(regimes.Boundaries._fields)].notna().sum(axis=1)
    best = regime_table[found == found.max()]
    return float(best["c"].max())


def longrun(table: pd.DataFrame, regime_table: pd.DataFrame, path: Path, title: str = "", loss_set: str = "training set") -> Path:
    """Three panels against step t >= 1 (log axis): (a) loss, (b) sharpness with 2/eta dashed per c, (c) accuracy,
    each at the steps where it was measured.

    The regimes of the reference c are shaded and numbered; every c's boundaries are dotted lines in its colour.
    """
    fig, axes = subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    cs = sorted(table["c"].unique())
    colours = {c: colormaps["plasma"](0.85 * i / max(len(cs) - 1, 1)) for i, c in enumerate(cs)}
    t_end = float(table["step"].max())
    for c, rows in table[table["step"] >= 1].groupby("c"):
        meta = regime_table[regime_table["c"] == c].iloc[0]
        label = f"c = {c:g}" + (" (diverged)" if meta["diverged"] else "")
        evaluated = rows[rows["loss"].notna()]  # the steps of loss_schedule
        axes[0].plot(evaluated["step"], evaluated["loss"], color=colours[c], lw=0.8, label=label)
        measured = rows[rows["sharpness"].notna()]
        axes[1].plot(measured["step"], measured["sharpness"], ".-", color=colours[c], lw=0.8, ms=2.5, label=label)
        axes[1].axhline(meta["two_over_eta"], color=colours[c], ls="--", lw=1)
        axes[2].plot(evaluated["step"], evaluated["accuracy"], color=colours[c], lw=0.8, label=label)
        for start in (meta[name] for name in regimes.Boundaries._fields):
            if math.isfinite(start):
                axes[1].axvline(start, color=colours[c], ls=":", lw=1)
    shade = regime_table[regime_table["c"] == reference_c(regime_table)].iloc[0]
    edges = [1.0] + [shade[name] for name in regimes.Boundaries._fields] + [t_end]
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlim(1, t_end)
        ax.set_xlabel("step $t$ (log scale)")
        low = 1.0
        for index in range(len(regimes.REGIMES)):
            high = next((e for e in edges[index + 1 :] if math.isfinite(e)), t_end)
            if math.isfinite(edges[index]) and high > low:
                ax.axvspan(low, high, color=SHADES[index], lw=0, zorder=0)
                middle = math.sqrt(low * high)
                ax.text(middle, 1.0, f"({NUMERALS[index]})", transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", fontsize=8)  # fmt: skip
                low = high
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[0].set_ylabel(f"loss $L_t$ ({loss_set})")
    axes[1].set_ylabel("sharpness $\\lambda^H_t$ (dashed: $2/\\eta$)")
    axes[2].set_ylabel(f"accuracy ({loss_set})")
    axes[1].legend(fontsize=7, loc="best")
    names = ", ".join(f"({n}) {name}" for n, name in zip(NUMERALS, regimes.REGIMES))
    fig.suptitle(f"{title}\nregimes shaded for c = {shade['c']:g}: {names}", fontsize=10)
    fig.savefig(path, dpi=110)
    return Path(path)
