"""Phase diagrams (Figs. 3, 4, 6), the barrier against 1/w or d, and training trajectories (Figs. 1, 2) from the
tracking store. Tables here (pandas), figures in plots, MLflow only through tracking.

    constants = finished_searches("demo")          # one row per (config, seed): c_loss, c_sharp, c_max, c_barrier
    summary, fits = summarize(constants, "width")   # per (d, w): mean, q25, q75, n; quadratic fits in 1/w per depth
    diagram("demo")                                 # the above, as PNG + CSV in out/demo and one analysis run
"""

import logging
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from phasediag.physics import critical
from phasediag import tracking
from phasediag.run.config import TRAINING_OPTIONS, ConfigError, RunConfig
from phasediag.vocabulary import CONSTANTS, DIAGRAM_AXES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PHASE_CONSTANTS = ("c_loss", "c_sharp", "c_max")  # the boundaries of the phase diagram (c_barrier has its own figure)
CENSORED = ("c_loss_censored", "c_sharp_censored", "c_barrier_censored")  # 0/1 per seed (critical.censor)
# the vertical axis of a phase diagram: 1/w, d, or an option swept at a fixed (d, w)
Y_COLUMN = {"width": "inv_width", "depth": "depth", "warmup_steps": "warmup_steps", "init_scale": "init_scale"}
# Columns of tracking.searches() that are not parameters of the search (so never a grouping key).
NOT_PARAMS = {"run_id", "study", "status", "run_name", "start_time", "end_time", "non_monotone_questions", "seed",
              "experiment", *tracking.SEARCH_METRICS}  # fmt: skip
ANALYSIS_KIND = "analysis"
log = logging.getLogger(__name__)
FIT_DEGREE = 2  # the paper's curves c = a0 + a1 y + a2 y^2
MAX_TRAJECTORIES = 12  # lines per panel when no c is chosen


def default_out(experiment: str) -> Path:
    return Path("out") / experiment


def _no_searches(experiment: str, found: pd.DataFrame) -> tracking.TrackingError:
    uri = tracking.tracking_uri()
    if tracking.experiment_id(experiment, create=False) is None:
        return tracking.TrackingError(f"experiment {experiment!r} does not exist in {uri}: run `phasediag sweep SPEC` "
                                      "first, or check MLFLOW_TRACKING_URI and the name")  # fmt: skip
    states = ", ".join(f"{n} {s}" for s, n in found["status"].value_counts().items()) if len(found) else "none at all"
    return tracking.TrackingError(f"experiment {experiment!r} in {uri} has no finished searches ({states}): "
                                  "run or resume its sweep first")  # fmt: skip


def finished_searches(experiment: str) -> pd.DataFrame:
    """One row per finished search of the experiment (tracking.searches), with a y column 'inv_width' = 1/w.
    Each (config, seed) counts once: duplicate parent runs of one study (the same search done twice, e.g. against
    another Optuna storage, or left by versions before one parent per search was claimed) are logged as a warning and
    the last finished kept. A (config) with fewer seeds than the experiment's
    searches ask for is logged. Raises TrackingError (one line) when there is none."""
    found = tracking.searches(experiment)
    done = found[found["status"] == "FINISHED"].reset_index(drop=True)
    if done.empty or not {"depth", "width"} <= set(done.columns):
        raise _no_searches(experiment, found)
    twins = done.sort_values("end_time").duplicated("study", keep="last").sort_index()
    if twins.any():
        log.warning("experiment %r: %d duplicate parent run(s) of %d search(es) (the same search done twice, e.g. "
                    "with another Optuna storage: %s); each (config, seed) counted once, its last finished run",
                    experiment, int(twins.sum()),
                    done.loc[twins, "study"].nunique(), ", ".join(done.loc[twins, "study"].unique()[:3]))  # fmt: skip
    done = done[~twins].reset_index(drop=True)
    _warn_missing_seeds(experiment, found, done)
    done["inv_width"] = 1.0 / done["width"].astype(float)
    return with_default_options(done)


def with_default_options(frame: pd.DataFrame) -> pd.DataFrame:
    """A study's identity leaves the optimizer, warmup and init options out at their defaults (search.config): where
    other searches of the experiment set one, the searches that did not get its default back (e.g. warmup_steps=0)."""
    for name in TRAINING_OPTIONS:
        if name in frame:
            frame[name] = frame[name].where(frame[name].notna(), RunConfig.__dataclass_fields__[name].default)
    return frame


def _warn_missing_seeds(experiment: str, found: pd.DataFrame, done: pd.DataFrame) -> None:
    """Say which configs are averaged over fewer seeds than the experiment's searches ask for (the seeds of all
    its searches, finished or not)."""
    keys = [c for c in done.columns if c not in NOT_PARAMS and c != "inv_width"]
    shown = [k for k in keys if done[k].nunique(dropna=False) > 1] or ["depth", "width"]
    wanted = set(found["seed"].dropna())
    for values, group in _fill_keys(done, keys).groupby(keys, sort=True, dropna=False):
        missing = sorted(wanted - set(group["seed"]))
        if missing:
            point = " ".join(f"{k}={v}" for k, v in zip(keys, values if isinstance(values, tuple) else (values,)) if k in shown)
            log.warning("experiment %r, %s: %d of %d seeds finished (missing %s): its constants average fewer seeds; "
                        "finish or re-run its sweep", experiment, point, len(wanted) - len(missing), len(wanted),
                        ", ".join(str(m) for m in missing))  # fmt: skip


def choose_x(constants: pd.DataFrame, x: str = "auto") -> str:
    """'width' (y = 1/w), 'depth' (y = d), or a swept option (warmup_steps, init_scale: y = its value, a panel per
    (d, w)). auto: width if several widths exist, else depth if several depths."""
    if x not in DIAGRAM_AXES:
        raise ConfigError(f"x={x!r} is not allowed: use one of {', '.join(DIAGRAM_AXES)}")
    if x != "auto":
        return x
    if constants["width"].nunique() > 1 or constants["depth"].nunique() <= 1:
        return "width"
    return "depth"


def varying_keys(constants: pd.DataFrame, x: str = "width") -> list[str]:
    """Parameters that differ between searches (besides the seed and x): each value is its own curve or panel."""
    params = [c for c in constants.columns if c not in NOT_PARAMS and c != "inv_width"]
    return [c for c in params if c not in ("depth", "width", x) and constants[c].nunique(dropna=False) > 1]


def group_keys(constants: pd.DataFrame, x: str) -> tuple[list[str], list[str]]:
    """(keys of one point = one (d, w, ...) averaged over seeds, keys of one panel = the keys besides x)."""
    others = {"width": ["depth"], "depth": ["width"]}.get(x, ["depth", "width"])
    panel = [*others, *varying_keys(constants, x)]
    return [*panel, x], panel


def panels_along(constants: pd.DataFrame, x: str) -> pd.DataFrame:
    """The searches of the panels where x takes at least two values, when any panel does: an experiment holding a
    width sweep at one depth and a depth sweep at one width draws, against 1/w, the one depth the widths vary at
    (the other panels would hold a single point). The panels left out are logged."""
    _, panel = group_keys(constants, x)
    filled = _fill_keys(constants, panel)
    spread = filled.groupby(panel, dropna=False)[x].transform("nunique") if panel else filled[x].nunique()
    if not panel or not (spread >= 2).any() or (spread >= 2).all():
        return constants
    dropped = filled.loc[spread < 2, panel].drop_duplicates()
    log.info("diagram against %s: %d panel(s) with a single %s left out (%s)", x, len(dropped), x,
             "; ".join(" ".join(f"{k}={v}" for k, v in row.items()) for _, row in dropped.iterrows()))  # fmt: skip
    return constants[(spread >= 2).to_numpy()].reset_index(drop=True)


def _fill_keys(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """NaN is a value of a parameter here (e.g. output_sigma=None): groupby would drop it."""
    frame = frame.copy()
    for key in keys:
        if frame[key].isna().any():
            frame[key] = frame[key].astype(object).where(frame[key].notna(), "none")
    return frame


def summarize(constants: pd.DataFrame, x: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, fits). summary: one row per point: keys, y (inv_width or depth), and per constant the mean, q25,
    q75 and n over seeds (critical.aggregate), and the fraction of seeds censored (c_loss_censored_frac, ...). fits: per panel and constant the quadratic c = a0 + a1 y + a2 y^2
    (critical.polyfit_curve), with its number of points; fewer than FIT_DEGREE + 1 points: no fit (NaN, no curve
    drawn), and a warning."""
    keys, panel = group_keys(constants, x)
    constants = _fill_keys(constants, keys)
    summary = critical.aggregate(constants, keys, list(CONSTANTS))
    stats = [f"{c}_{s}" for c in CONSTANTS for s in ("mean", "q25", "q75", "n")]
    constants = constants.reindex(columns=[*constants.columns, *(c for c in CENSORED if c not in constants)])
    flags = constants.groupby(keys)[list(CENSORED)]
    censored = flags.mean().add_suffix("_frac").join(flags.sum().add_suffix("_count")).reset_index()
    summary = summary[[*keys, *stats]].merge(censored, on=keys, how="left")
    summary.insert(len(keys), "inv_width", 1.0 / summary["width"].astype(float))
    y = Y_COLUMN[x]
    summary = summary.sort_values([*panel, y]).reset_index(drop=True)
    rows = []
    for values, points in summary.groupby(panel, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        for name in CONSTANTS:
            means = points[f"{name}_mean"].to_numpy(float)
            n_points = int(np.isfinite(means).sum())
            coef = [math.nan] * 3
            if n_points > FIT_DEGREE:
                coef = [float(c) for c in critical.polyfit_curve(points[y].to_numpy(float), means, FIT_DEGREE).coeffs[::-1]]
            elif n_points:
                where = " ".join(f"{k}={v}" for k, v in zip(panel, values)) or "the diagram"
                log.warning("diagram: %s at %s has %d point(s) in %s, fewer than %d for its quadratic fit: no curve drawn",
                            name, where, n_points, y, FIT_DEGREE + 1)  # fmt: skip
            rows.append({**dict(zip(panel, values)), "constant": name, "y": y, "a0": coef[0], "a1": coef[1],
                         "a2": coef[2], "n_points": n_points})  # fmt: skip
    return summary, pd.DataFrame(rows)


def eta_by(constants: pd.DataFrame) -> str:
    """What the searches divided c by to get eta: sharpness (lambda0, the paper's), update (Adam's default), or mixed."""
    if "eta_curvature" not in constants:
        return "sharpness"
    found = set(constants["eta_curvature"].fillna("sharpness").replace({"None": "sharpness"}))
    return found.pop() if len(found) == 1 else "mixed"


def describe(constants: pd.DataFrame) -> str:
    """A one-line description of what is fixed in the experiment (for figure titles)."""
    fixed = []
    for key in ("arch", "param", "dataset", "loss", "output", "batch_size", "steps"):
        if key in constants and constants[key].nunique(dropna=False) == 1:
            value = constants[key].iloc[0]
            if key == "batch_size":
                value = "full (GD)" if value == 0 else value
            fixed.append(f"{key}={value}")
    return ", ".join(fixed)


@dataclass
class Output:
    run_id: str | None
    out: Path
    files: list[Path] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, "Figure"] = field(default_factory=dict)  # by file stem, as the PNGs in `files`


def log_analysis(experiment: str, analysis: str, params: dict[str, Any], metrics: dict[str, float], files: list[Path]) -> str:
    """One run (tag phasediag.kind=analysis) holding exactly these files as artifacts."""
    with tempfile.TemporaryDirectory() as folder:
        for path in files:
            shutil.copy(path, Path(folder) / Path(path).name)
        return tracking.log_artifact_run(experiment, ANALYSIS_KIND, {"analysis": analysis, **params}, metrics, folder,
                                          run_name=f"{analysis} {experiment}")  # fmt: skip


def diagram(experiment: str, x: str = "auto", out: Path | str | None = None, log: bool = True,
            width_axis: str = "inverse") -> Output:  # fmt: skip
    """Phase diagram, relations between the constants and c_barrier against 1/w (or d; widths on a log2 axis with
    width_axis=log2): PNG + CSV in `out` (default out/<experiment>), and one analysis run holding them."""
    from phasediag.plots import phase as phase_plots

    constants = finished_searches(experiment)
    x = choose_x(constants, x)
    constants = panels_along(constants, x)
    out = Path(out) if out else default_out(experiment)
    out.mkdir(parents=True, exist_ok=True)
    summary, fits = summarize(constants, x)
    keys, panel = group_keys(constants, x)
    columns = ["run_id", "study", *keys, "seed", "inv_width", "lambda0", *CONSTANTS, *CENSORED, "n_runs", "non_monotone"]
    per_seed = _fill_keys(constants, keys)[[c for c in dict.fromkeys(columns) if c in constants]]
    per_seed = per_seed.sort_values([*keys, "seed"]).reset_index(drop=True)
    title = f"{experiment}: {describe(constants)}"
    tables = {
        f"phase_diagram_{x}": summary,
        f"phase_diagram_{x}_fits": fits,
        f"relations_{x}": per_seed,
        f"barrier_{x}": summary[[*keys, "inv_width", *(f"{c}_{s}" for c in ("c_loss", "c_sharp", "c_barrier")
                                                       for s in ("mean", "q25", "q75", "n", "censored_frac", "censored_count"))]],
    }  # fmt: skip
    files = []
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
        files.append(out / f"{name}.csv")
    figures = {
        f"phase_diagram_{x}": phase_plots.phase_diagram(summary, fits, x, panel, title, width_axis, eta_by(constants)),
        f"relations_{x}": phase_plots.relations(per_seed, x, panel, title),
        f"barrier_{x}": phase_plots.barrier(summary, fits, x, panel, title, width_axis),
    }
    files += [phase_plots.save(figure, out / f"{name}.png") for name, figure in figures.items()]
    run_id = None
    if log:
        params = {"experiment": experiment, "x": x, "y_axis": Y_COLUMN[x], "width_axis": width_axis, "out": str(out), "searches": len(constants),
                  "points": len(summary)}  # fmt: skip
        metrics = {"searches": len(constants), "points": len(summary)}
        run_id = log_analysis(experiment, "diagram", params, metrics, files)
    return Output(run_id, out, files, tables, figures)


# --- trajectories (Figs. 1, 2) -----------------------------------------------------------------------------------


def find_search(experiment: str, search: str | None) -> pd.Series:
    """A search of the experiment by its parent run id or its study name (None: the experiment's only search)."""
    found = tracking.searches(experiment)
    match = found if search is None and len(found) == 1 else found[(found["run_id"] == search) | (found["study"] == search)]
    if match.empty:
        if found.empty:
            raise _no_searches(experiment, found)
        names = ", ".join(found["study"].head(8)) + (f", ... ({len(found)} in all)" if len(found) > 8 else "")
        if search is None:
            raise ConfigError(f"experiment {experiment!r} holds {len(found)} searches: choose one with --search "
                              f"STUDY_OR_RUN_ID, one of: {names}")  # fmt: skip
        raise ConfigError(f"search={search!r} is neither the run id nor the study name of a search in experiment "
                          f"{experiment!r} (studies: {names})")  # fmt: skip
    return match.iloc[0]


def choose_runs(children: pd.DataFrame, parent: pd.Series, cs: list[float] | None) -> pd.DataFrame:
    """The children at the chosen c (each within half a grid step), or an even spread including the constants."""
    children = children.sort_values("x").reset_index(drop=True)
    resolution = float(parent.get("resolution", 0.1) or 0.1)
    if cs:
        picked = []
        for c in cs:
            if not (c > 0 and math.isfinite(c)):
                raise ConfigError(f"c={c!r} is not allowed: it must be a finite number > 0")
            distance = (children["x"] - math.log2(c)).abs()
            if distance.min() > resolution / 2 + 1e-9:
                trained = ", ".join(f"{v:.3g}" for v in children["c"])
                raise ConfigError(f"c={c:g} was not trained in search {parent['study']!r}; trained c: {trained}")
            picked.append(int(distance.idxmin()))
        return children.loc[list(dict.fromkeys(picked))].sort_values("x").reset_index(drop=True)
    if len(children) <= MAX_TRAJECTORIES:
        return children
    must = set()
    for name in PHASE_CONSTANTS:
        value = parent.get(name)
        if value is not None and np.isfinite(value):
            must.add(int((children["x"] - math.log2(value)).abs().idxmin()))
    chosen = must | {0, len(children) - 1}
    while len(chosen) < MAX_TRAJECTORIES:  # fill the widest gaps in x order
        chosen.add(max(range(len(children)), key=lambda i: min(abs(i - j) for j in chosen)))
    return children.loc[sorted(chosen)].reset_index(drop=True)


def trajectory_table(experiment: str, search: str | None, cs: list[float] | None = None) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """(the search's row, one row per (run, step): loss, sharpness, ... with c, eta, 2/eta; interpolated loss
    (run_id, c, s, loss) of the chosen runs whose barrier was measured)."""
    parent = find_search(experiment, search)
    children = tracking.runs(experiment, parent_run_id=parent["run_id"])
    if children.empty:
        raise tracking.TrackingError(f"search {parent['study']!r} has no trained runs yet")
    chosen = choose_runs(children, parent, cs)
    long = tracking.histories(chosen["run_id"], tracking.HISTORY_METRICS)
    wide = long.pivot_table(index=["run_id", "step"], columns="metric", values="value", aggfunc="last").reset_index()
    wide.columns.name = None
    info = chosen[["run_id", "c", "x", "eta", "diverged"]].assign(two_over_eta=2.0 / chosen["eta"])
    table = info.merge(wide, on="run_id").sort_values(["x", "step"]).reset_index(drop=True)
    for name in tracking.HISTORY_METRICS:
        if name not in table:
            table[name] = np.nan
    measured = chosen[chosen["barrier"].notna()] if "barrier" in chosen else chosen.iloc[:0]
    curves = tracking.interpolations(measured["run_id"])
    curves = chosen[["run_id", "c"]].merge(curves, on="run_id").sort_values(["c", "s"]).reset_index(drop=True)
    return parent, table, curves


def trajectories(experiment: str, search: str | None, cs: list[float] | None = None, out: Path | str | None = None,
                 log: bool = True) -> Output:  # fmt: skip
    """Loss and sharpness against step (2/eta dashed) and interpolated loss against s, for one search."""
    from phasediag.plots import phase as phase_plots

    parent, table, curves = trajectory_table(experiment, search, cs)
    out = Path(out) if out else default_out(experiment)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"trajectories_{parent['study']}"
    table.to_csv(out / f"{stem}.csv", index=False)
    curves.to_csv(out / f"interpolation_{parent['study']}.csv", index=False)
    figure = phase_plots.trajectories(table, curves, parent)
    files = [out / f"{stem}.csv", out / f"interpolation_{parent['study']}.csv", phase_plots.save(figure, out / f"{stem}.png")]
    run_id = None
    if log:
        params = {"experiment": experiment, "search": parent["run_id"], "study": parent["study"],
                  "c": " ".join(f"{c:.4g}" for c in table["c"].unique()), "out": str(out)}  # fmt: skip
        run_id = log_analysis(experiment, "trajectories", params, {"runs": float(table["run_id"].nunique())}, files)
    return Output(run_id, out, files, {"trajectories": table, "interpolation": curves}, {stem: figure})
