"""Figures of the phase diagram (Figs. 3, 4, 6 and c_barrier) and of training trajectories (Figs. 1, 2), from the
tables of diagram. matplotlib; every function builds one Figure (outside pyplot), `save` writes it as a PNG."""

import math
import textwrap
from pathlib import Path

import matplotlib

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

from phasediag.plots import subplots
from phasediag.vocabulary import CONSTANTS

REGIONS = (  # (label, colour) from left to right of a phase diagram, as in Fig. 3
    ("sharpness reduction", "#d9e8f5"),
    ("loss catapult", "#fde0c5"),
    ("loss-sharpness catapult", "#f7c6c7"),
    ("divergent", "#dddddd"),
)
STYLE = {  # marker, colour, label of each constant
    "c_loss": ("o", "tab:blue", r"$\langle c_{loss} \rangle$"),
    "c_sharp": ("s", "tab:red", r"$\langle c_{sharp} \rangle$"),
    "c_max": ("^", "black", r"$\langle c_{max} \rangle$"),
    "c_barrier": ("D", "tab:green", r"$\langle c_{barrier} \rangle$"),
}
Y_LABEL = {"width": "$1/w$", "depth": "depth $d$", "warmup_steps": "warmup steps $T_w$", "init_scale": r"$\sigma_w^2$"}
Y_COLUMN = {"width": "inv_width", "depth": "depth", "warmup_steps": "warmup_steps", "init_scale": "init_scale"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _suptitle(fig: Figure, text: str, fontsize: float = 10) -> None:
    """A figure title wrapped to the figure's width (long experiment descriptions on one-panel figures)."""
    chars = int(fig.get_figwidth() * 15)
    fig.suptitle("\n".join(textwrap.fill(line, chars) for line in text.split("\n")), fontsize=fontsize)


def _integer_ticks(axis, values) -> None:
    """Depth (or swept option) axes: ticks at the values measured."""
    axis.set_major_locator(FixedLocator(sorted({int(v) if float(v).is_integer() else float(v) for v in values})))


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    return Path(path)


def _power_of_two(value: float, _position=None) -> str:
    exponent = math.log2(value) if value > 0 else float("nan")
    if not math.isfinite(exponent):
        return ""
    if abs(exponent - round(exponent)) < 1e-6:
        return f"$2^{{{int(round(exponent))}}}$"
    return f"$2^{{{exponent:.1f}}}$"


def log2_axis(axis, low: float, high: float) -> None:
    """Ticks of a log2 axis (already log-scaled) from low to high: 2^0, 2^1, ... (half powers too when the range is under 2 octaves)."""
    octaves = math.log2(high / low)
    subs = (1.0, 2**0.5) if octaves < 2 else (1.0,)
    axis.set_major_locator(LogLocator(base=2, subs=subs, numticks=30))
    axis.set_major_formatter(FuncFormatter(_power_of_two))
    axis.set_minor_formatter(NullFormatter())


def _c_axis(ax: Axes, which: str, low: float, high: float) -> None:
    if which == "x":
        ax.set_xscale("log", base=2)
        ax.set_xlim(low, high)
        log2_axis(ax.xaxis, low, high)
    else:
        ax.set_yscale("log", base=2)
        ax.set_ylim(low, high)
        log2_axis(ax.yaxis, low, high)


def _c_range(tables: list[pd.DataFrame], columns: list[str], pad: float = 1.25) -> tuple[float, float]:
    """Limits around every finite value of the columns and c = 2."""
    values = [2.0]
    for table in tables:
        for column in columns:
            if column in table:
                values += [v for v in table[column].to_numpy(float) if np.isfinite(v) and v > 0]
    return min(values) / pad, max(values) * pad


def _y_dense(y: np.ndarray, x: str) -> np.ndarray:
    """Where the fitted curves are drawn: 1/w from 0 (w -> infinity) to past the narrowest; d around the data."""
    if x == "width":
        return np.linspace(0.0, 1.08 * float(np.max(y)), 200)
    low, high = float(np.min(y)), float(np.max(y))
    pad = 0.08 * (high - low) if high > low else 0.5
    return np.linspace(low - pad, high + pad, 200)


def _panels(summary: pd.DataFrame, panel: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    if not panel:
        return [((), summary)]
    return [((k if isinstance(k, tuple) else (k,)), rows) for k, rows in summary.groupby(panel, sort=True)]


def _fit_of(fits: pd.DataFrame, panel: list[str], values: tuple, name: str):
    rows = fits[fits["constant"] == name]
    for key, value in zip(panel, values):
        rows = rows[rows[key] == value]
    if rows.empty or not np.isfinite(rows["a0"].iloc[0]):  # no fit: too few points
        return None
    a0, a1, a2 = (float(rows[k].iloc[0]) for k in ("a0", "a1", "a2"))
    return lambda y: a0 + a1 * y + a2 * y**2


def _title(panel: list[str], values: tuple) -> str:
    short = {"depth": "d", "width": "w"}
    return ", ".join(f"{short.get(k, k)} = {v}" for k, v in zip(panel, values))


def _grid(n: int, width: float = 4.6, height: float = 3.8) -> tuple[Figure, np.ndarray]:
    if n == 1:  # one panel: wide enough for the title and the legend
        width, height = 6.6, 4.4
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def _label_widths(ax: Axes, widths: np.ndarray, top: float) -> None:
    """Right-hand ticks naming the widths at their 1/w (skipping labels that would overlap)."""
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    ticks, labels, last = [], [], -np.inf
    for w in sorted(set(int(v) for v in widths), reverse=True):
        if 1.0 / w - last > 0.045 * top:
            ticks.append(1.0 / w)
            labels.append(str(w))
            last = 1.0 / w
    right.set_yticks(ticks)
    right.set_yticklabels(labels, fontsize=7)
    right.set_ylabel("$w$", fontsize=8)


def _positions(rows: pd.DataFrame, x: str, width_axis: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(where the points sit, where the fitted curves are drawn, the fits' argument there) on the axis of x: 1/w or
    d, or with width_axis=log2 the width itself on a log2 axis (the fits, quadratic in 1/w, drawn over the data)."""
    if x == "width" and width_axis == "log2":
        widths = rows["width"].to_numpy(float)
        dense = np.geomspace(widths.min() / 1.3, widths.max() * 1.3, 200)
        return widths, dense, 1.0 / dense
    y = rows[Y_COLUMN[x]].to_numpy(float)
    dense = _y_dense(y, x)
    return y, dense, dense


def _width_axis(ax: Axes, axis, widths: np.ndarray, dense: np.ndarray, which: str) -> None:
    """A log2 axis of widths, ticked at the widths measured."""
    (ax.set_yscale if which == "y" else ax.set_xscale)("log", base=2)
    (ax.set_ylim if which == "y" else ax.set_xlim)(dense[0], dense[-1])
    axis.set_major_locator(FixedLocator(sorted(set(float(w) for w in widths))))
    axis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


# the c axis names what eta was divided by (docs/optimizers.md): lambda0, the curvature along the first update, or both
ETA_LABELS = {"sharpness": r"$\eta = c/\lambda_0^H$", "update": r"$\eta = c/\lambda_u$ (curvature along the first update)",
              "mixed": r"$\eta = c/\lambda_0^H$ or $c/\lambda_u$"}  # fmt: skip


def phase_diagram(summary: pd.DataFrame, fits: pd.DataFrame, x: str, panel: list[str], title: str = "",
                  width_axis: str = "inverse", eta_by: str = "sharpness") -> Figure:  # fmt: skip
    """Fig. 3: c (log2) against 1/w (or d; or log2 w with width_axis=log2): means with 25-75% bars, quadratic fits,
    the four phases filled between the fitted curves, c = 2 dashed and c < 2 hatched; one panel per value of the
    other variable (and of any other varied parameter)."""
    left, right = _c_range([summary], [f"{c}_{s}" for c in ("c_loss", "c_sharp", "c_max") for s in ("q25", "q75", "mean")])
    groups = _panels(summary, panel)
    fig, axes = _grid(len(groups))
    for ax, (values, rows) in zip(axes, groups):
        y, dense, argument = _positions(rows, x, width_axis)
        curves = {}
        for name in ("c_loss", "c_sharp", "c_max"):
            fit = _fit_of(fits, panel, values, name)
            if fit is not None:
                curves[name] = np.clip(fit(argument), left, right)
        c_max = curves.get("c_max", np.full_like(dense, right))
        loss = np.minimum(curves.get("c_loss", c_max), c_max)
        sharp = np.clip(curves.get("c_sharp", c_max), loss, c_max)
        edges = [np.full_like(dense, left), loss, sharp, c_max, np.full_like(dense, right)]
        for (label, colour), x0, x1 in zip(REGIONS, edges[:-1], edges[1:]):
            ax.fill_betweenx(dense, x0, np.maximum(x0, x1), color=colour, lw=0, zorder=0)
        for name in ("c_loss", "c_sharp", "c_max"):
            marker, colour, _ = STYLE[name]
            ax.hlines(y, rows[f"{name}_q25"], rows[f"{name}_q75"], color=colour, lw=1.3, zorder=2)
            _means(ax, rows, name, rows[f"{name}_mean"].to_numpy(float), y)
            if name in curves:
                ax.plot(curves[name], dense, "-", color=colour, lw=1.2, zorder=2)
        ax.axvline(2.0, color="0.3", ls="--", lw=1, zorder=1)
        ax.axvspan(left, 2.0, facecolor="none", hatch="///", edgecolor="0.75", lw=0, zorder=1)
        _c_axis(ax, "x", left, right)
        ax.set_ylim(dense[0], dense[-1])
        ax.set_xlabel(f"learning rate constant $c$, {ETA_LABELS[eta_by]}")
        ax.set_ylabel("width $w$" if x == "width" and width_axis == "log2" else Y_LABEL[x])
        ax.set_title(_title(panel, values), fontsize=10)
        if x == "width" and width_axis == "log2":
            _width_axis(ax, ax.yaxis, y, dense, "y")
        elif x == "width":
            _label_widths(ax, rows["width"].to_numpy(), dense[-1])
        else:
            _integer_ticks(ax.yaxis, y)
    handles = [Line2D([], [], marker=m, color=c, ls="-", ms=5, label=lab) for m, c, lab in
               (STYLE[n] for n in ("c_loss", "c_sharp", "c_max"))]  # fmt: skip
    handles += [Patch(color=colour, label=label) for label, colour in REGIONS]
    handles.append(Line2D([], [], color="0.3", ls="--", label="$c = 2$"))
    handles.append(Patch(facecolor="none", hatch="///", edgecolor="0.75", label="$c < 2$"))
    handles += _censored_handles(summary, ("c_loss", "c_sharp"))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8.5, frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.06 / max(1, len(axes) // 3)))  # fmt: skip
    n = int(summary["c_loss_n"].max()) if len(summary) else 0
    _suptitle(fig, f"Phase diagram of early training — {title}\nmean over up to {n} seeds, bars: 25–75% quantiles, "
              "lines: quadratic fits")  # fmt: skip
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def relations(per_seed: pd.DataFrame, x: str, panel: list[str], title: str = "") -> Figure:
    """Fig. 4: per seed, c_sharp against c_loss and c_max against c_sharp, with y = x; colour = width (or depth),
    marker = the other variable (and any other varied parameter); hollow where a plotted constant is censored (its
    phase has zero width: it met the divergence first, critical.censor)."""
    fig, axes = subplots(1, 2, figsize=(10, 4.6))
    low, high = _c_range([per_seed], ["c_loss", "c_sharp", "c_max"], pad=1.15)
    colour_values = sorted(per_seed[x].unique())
    cmap = matplotlib.colormaps.get_cmap("viridis")
    colours = {v: cmap(0.9 * i / max(len(colour_values) - 1, 1)) for i, v in enumerate(colour_values)}
    marker_groups = list(per_seed.groupby(panel, sort=True)) if panel else [((), per_seed)]
    markers = {(k if isinstance(k, tuple) else (k,)): MARKERS[i % len(MARKERS)] for i, (k, _) in enumerate(marker_groups)}
    pairs = (("c_loss", "c_sharp"), ("c_sharp", "c_max"))
    for ax, (cx, cy), letter in zip(axes, pairs, "ab"):
        for key, rows in marker_groups:
            key = key if isinstance(key, tuple) else (key,)
            for value, points in rows.groupby(x):
                hollow = _censored(points, cx) | _censored(points, cy)
                ax.scatter(points[cx][~hollow], points[cy][~hollow], marker=markers[key], color=colours[value], s=28,
                           alpha=0.75, edgecolors="black", linewidths=0.4, zorder=3)  # fmt: skip
                ax.scatter(points[cx][hollow], points[cy][hollow], marker=markers[key], facecolors="none",
                           edgecolors=colours[value], s=28, linewidths=1.2, zorder=3)  # fmt: skip
        ax.plot([low, high], [low, high], "k--", lw=1, zorder=1)
        _c_axis(ax, "x", low, high)
        _c_axis(ax, "y", low, high)
        ax.set_aspect("equal")
        ax.set_xlabel(f"$c_{{{cx[2:]}}}$")
        ax.set_ylabel(f"$c_{{{cy[2:]}}}$")
        shown = int((per_seed[cx].notna() & per_seed[cy].notna()).sum())
        ax.set_title(f"({letter}) $c_{{{cy[2:]}}}$ vs $c_{{{cx[2:]}}}$ ({shown} of {len(per_seed)} seeds)", fontsize=10)
        ax.grid(alpha=0.25, which="major")
    symbol = "w" if x == "width" else "d"
    handles = [Line2D([], [], marker="o", ls="", color=colours[v], mec="black", mew=0.4, label=f"{symbol} = {v}")
               for v in colour_values]  # fmt: skip
    if len(markers) > 1:
        handles += [Line2D([], [], marker=m, ls="", color="0.5", mec="black", mew=0.4, label=_title(panel, k))
                    for k, m in markers.items()]  # fmt: skip
    if any(_censored(per_seed, c).any() for c in ("c_loss", "c_sharp")):
        handles.append(Line2D([], [], marker="o", ls="", mfc="none", color="0.3", label="hollow: censored (= $c_{max}$)"))
    handles.append(Line2D([], [], color="black", ls="--", label="$y = x$"))
    axes[1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    _suptitle(fig, f"Relations between the critical constants, one point per seed — {title}")
    fig.tight_layout()
    return fig


def _means(ax: Axes, rows: pd.DataFrame, name: str, xs: np.ndarray, ys: np.ndarray, label: str | None = None) -> None:
    """The mean of a constant at each point: filled where no seed is censored, hollow with 'k/n' beside it where k
    of the point's n seeds are censored (their value is c_max)."""
    marker, colour, _ = STYLE[name]
    count = rows.get(f"{name}_censored_count", pd.Series(0.0, index=rows.index)).fillna(0).to_numpy(float)
    seeds = rows["c_max_n"].to_numpy(float) if "c_max_n" in rows else rows[f"{name}_n"].to_numpy(float)
    censored = count > 0
    ax.plot(xs[~censored], ys[~censored], marker, color=colour, ms=5, mec="white", mew=0.5, zorder=3, label=label)
    ax.plot(xs[censored], ys[censored], marker, mfc="white", mec=colour, mew=1.2, ms=5.5, zorder=3)
    for x, y, k, n in zip(xs[censored], ys[censored], count[censored], seeds[censored]):
        if np.isfinite(x) and np.isfinite(y):
            ax.annotate(f"{int(k)}/{int(max(n, k))}", (x, y), xytext=(4, 4), textcoords="offset points", fontsize=6.5,
                        color=colour, zorder=4)  # fmt: skip


def _censored_handles(summary: pd.DataFrame, names: tuple[str, ...]) -> list[Line2D]:
    """A legend entry explaining the hollow markers, when any point has a censored seed."""
    if not any(summary.get(f"{n}_censored_count", pd.Series(dtype=float)).fillna(0).gt(0).any() for n in names):
        return []
    return [Line2D([], [], marker="o", ls="", mfc="white", mec="0.3", label="hollow, k/n: k of n seeds censored (= $c_{max}$)")]


def _censored(points: pd.DataFrame, constant: str) -> pd.Series:
    """Which rows have `constant` censored (False where the flag is missing: c_max, or an older search)."""
    column = f"{constant}_censored"
    return points[column].fillna(0).astype(bool) if column in points else pd.Series(False, index=points.index)


def barrier(summary: pd.DataFrame, fits: pd.DataFrame, x: str, panel: list[str], title: str = "",
            width_axis: str = "inverse") -> Figure:  # fmt: skip
    """<c_barrier> with <c_loss> and <c_sharp> against 1/w (or d, or log2 w): means with 25-75% bars, quadratic fits,
    c = 2."""
    names = ("c_loss", "c_sharp", "c_barrier")
    low, high = _c_range([summary], [f"{c}_{s}" for c in names for s in ("q25", "q75", "mean")])
    groups = _panels(summary, panel)
    fig, axes = _grid(len(groups))
    for ax, (values, rows) in zip(axes, groups):
        y, dense, argument = _positions(rows, x, width_axis)
        for name in names:
            marker, colour, label = STYLE[name]
            ax.vlines(y, rows[f"{name}_q25"], rows[f"{name}_q75"], color=colour, lw=1.3, zorder=2)
            _means(ax, rows, name, y, rows[f"{name}_mean"].to_numpy(float), label=label)
            fit = _fit_of(fits, panel, values, name)
            if fit is not None:
                ax.plot(dense, np.clip(fit(argument), low, high), "-", color=colour, lw=1.1, zorder=2)
        if rows["c_barrier_n"].sum() == 0:
            ax.text(0.5, 0.5, "no $c_{barrier}$ measured\n(searches without barrier=true)", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9, color="0.4")  # fmt: skip
        ax.axhline(2.0, color="0.3", ls="--", lw=1, zorder=1, label="$c = 2$")
        _c_axis(ax, "y", low, high)
        ax.set_xlim(dense[0], dense[-1])
        if x == "depth":
            _integer_ticks(ax.xaxis, y)
        elif width_axis == "log2":
            _width_axis(ax, ax.xaxis, y, dense, "x")
        ax.set_xlabel("width $w$" if x == "width" and width_axis == "log2" else Y_LABEL[x])
        ax.set_ylabel("$c$")
        ax.set_title(_title(panel, values), fontsize=10)
        ax.legend(handles=ax.get_legend_handles_labels()[0] + _censored_handles(rows, names), fontsize=8, loc="upper left")
    _suptitle(fig, f"Loss barrier on the linear path $\\theta_0\\to\\theta_{{T_1}}$ — {title}\nmean over seeds, "
              "bars: 25–75% quantiles, lines: quadratic fits")  # fmt: skip
    fig.tight_layout()
    return fig


def _c_colours(cs: np.ndarray) -> dict[float, tuple]:
    cs = sorted(set(float(c) for c in cs))
    cmap = matplotlib.colormaps.get_cmap("plasma")
    if len(cs) == 1:
        return {cs[0]: cmap(0.2)}
    low, high = math.log2(cs[0]), math.log2(cs[-1])
    return {c: cmap(0.85 * (math.log2(c) - low) / (high - low)) for c in cs}


def _plain_log_ticks(axis) -> None:
    """A log axis labelled 20, 50, 100 rather than 2 x 10^1 (sharpness and loss ranges are often narrow)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=20))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def trajectories(table: pd.DataFrame, curves: pd.DataFrame, parent: pd.Series) -> Figure:
    """Fig. 2: (a) loss and (b) sharpness against step t, one line per c, 2/eta dashed in (b); (c) interpolated loss
    L((1-s) theta_0 + s theta_T) against s. One legend (colour = c) for the three panels."""
    fig, axes = subplots(1, 3, figsize=(16, 4.6))
    colours = _c_colours(table["c"].unique())
    handles, without_sharpness = [], 0
    for (c, diverged), rows in table.groupby(["c", "diverged"], sort=True):
        colour = colours[float(c)]
        label = f"c = {c:.3g}" + (" (diverged)" if diverged else "")
        loss = rows.dropna(subset=["loss"])
        axes[0].plot(loss["step"], loss["loss"], "o-", ms=2.5, lw=1.2, color=colour)
        sharp = rows.dropna(subset=["sharpness"])
        if (sharp["step"] > 0).any():
            axes[1].plot(sharp["step"], sharp["sharpness"], "o-", ms=2.5, lw=1.2, color=colour)
        else:
            without_sharpness += 1
        axes[1].axhline(float(rows["two_over_eta"].iloc[0]), color=colour, ls="--", lw=0.9)
        handles.append(Line2D([], [], color=colour, marker="o", ms=3, label=label))
    axes[0].set_yscale("log")
    initial = table.loc[table["step"] == 0, "loss"].max()
    if np.isfinite(initial) and table["loss"].max() > 1e4 * initial:  # divergent runs leave the frame at the top
        axes[0].set_ylim(top=1e4 * initial)
    axes[0].set_ylabel(r"training loss $\mathcal{L}_t$")
    axes[1].set_yscale("log")
    _plain_log_ticks(axes[1].yaxis)
    axes[1].set_ylabel(r"sharpness $\lambda^H_t$ (dashed: $2/\eta$)")
    if without_sharpness:
        axes[1].text(0.98, 0.02, f"{without_sharpness} of {len(handles)} runs without sharpness after t = 0\n"
                     "(the search measures it only where it must)", transform=axes[1].transAxes, ha="right",
                     va="bottom", fontsize=7.5, color="0.35")  # fmt: skip
    for ax, title in zip(axes[:2], ("(a) training loss", "(b) sharpness")):
        ax.set_xlabel("step $t$")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.25)
    ax = axes[2]
    if curves.empty:
        ax.text(0.5, 0.5, "no interpolation measured for these c\n(the barrier is measured only where the search\n"
                "needed it, or with barrier=true)", transform=ax.transAxes, ha="center", va="center", fontsize=9,
                color="0.4")  # fmt: skip
    else:
        for c, rows in curves.groupby("c", sort=True):
            ax.plot(rows["s"], rows["loss"], "-", lw=1.4, color=colours.get(float(c), "0.5"))
        ratio = curves["loss"].max() / max(curves["loss"].min(), 1e-300)
        if ratio > 30:
            ax.set_yscale("log")
    ax.set_xlabel("interpolation $s$")
    ax.set_ylabel(r"$\mathcal{L}[(1-s)\,\theta_0 + s\,\theta_{T_1}]$")
    ax.set_title("(c) interpolated loss", fontsize=10)
    ax.grid(alpha=0.25)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    constants = "  ".join(f"$c_{{{n[2:]}}}$ = {parent[n]:.3g}" for n in CONSTANTS
                          if n in parent and np.isfinite(parent[n]))  # fmt: skip
    who = ", ".join(f"{k} = {parent[k]}" for k in ("arch", "depth", "width", "seed", "dataset", "loss") if k in parent)
    fig.suptitle(f"Early training of {who}, $\\eta = c/\\lambda_0^H$, $\\lambda_0^H$ = {parent['lambda0']:.4g}\n"
                 f"{constants}", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig
