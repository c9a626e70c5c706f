"""The paper's claims, checked on an experiment's own data: one row per claim and scope, naming the figure and the
sentence it tests, with the measured number, its 95 % interval, and pass / fail / no data. Pure pandas on tables
(tracking only in `claims`); the statistics are physics/trends.py.

Inputs (any may be missing; a claim without its data says "no data", or is left out when nothing of its kind ran):
* constants: one row per search (tracking.searches): depth, width, seed, c_loss, c_sharp, c_max, c_barrier, the
  varied params, and the censoring flags c_loss_censored, c_sharp_censored, c_barrier_censored when logged;
* runs: the searches' trained runs (tracking.runs): parent_run_id, c, max_sharpness_ratio, diverged;
* saturation: one row per saturation run (params, c_crit); saturation_seeds / saturation_curves: its saturation.csv
  (seed, x, lambda_tau, ratio, ...) and saturation_curve.csv (x, c, mean, chi_prime, in_fit), with a run_id column;
* uv / uv_saturation: uv_critical.csv (per init) and uv_saturation.csv (per width and c) of `phasediag uv`.

Rules (stated in the report as well):
* Trends: least-squares slope of log2 c (or of the statistic named) against 1/w, d or log2 B over every per-seed
  value of a panel; a bootstrap redraws the seeds within each (d, w, ...) point; pass when the 95 % interval
  excludes zero in the paper's direction (trends.bootstrap_slope). Censored values enter as they are (c_max).
* "Close to 2": inside BAND = [1.5, 3] (at finite width ⟨c_loss⟩ sits above 2; a value well below 2 would contradict
  the wide-network threshold). Cross-entropy: c_crit in XENT_CRIT_BAND = [1.5, 5] (App. F: 2 <~ c_crit <~ 4),
  c_loss at the largest width in XENT_LOSS_BAND = [3, 11] (App. F: 4 <~ c_loss <~ 8): both widened like BAND.
* Per-seed inequalities "typically" holding (App. D): pass when at least INEQUALITY_PASS = 80 % of the seeds hold;
  the uv model's "for every initialisation" (App. B.6) and its other per-init statements: every init.
"""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from phasediag.physics import critical, trends
from phasediag.vocabulary import ZERO_OUTPUTS

BAND = (1.5, 3.0)
XENT_CRIT_BAND = (1.5, 5.0)
XENT_LOSS_BAND = (3.0, 11.0)
INEQUALITY_PASS = 0.8
CURVE_BOOT = 200  # bootstrap redraws for the chi' width (each one smooths every run's curve again)
SMALL_C_X = 0.0  # "lambda_tau at small c": the mean over c <= 2^SMALL_C_X = 1 (stage 1 of Sec. 3 is c < 2)
GRID_STEP = 0.1  # the uv job's grid step in log2 c
CENSORED = ("c_loss_censored", "c_sharp_censored", "c_barrier_censored")
COLUMNS = ["figure", "claim", "scope", "measured", "low", "high", "expected", "result", "detail"]
PASS, FAIL, NO_DATA, COUNT = "pass", "fail", "no data", "count"
VARIABLES = {"width": ("inv_width", "1/w"), "depth": ("depth", "d"), "batch_size": ("log2_batch", "log2 B")}


def _row(figure: str, claim: str, scope: str, measured: float, interval: tuple[float, float], expected: str,
         result: str, detail: str = "") -> dict:  # fmt: skip
    return {"figure": figure, "claim": claim, "scope": scope, "measured": measured, "low": interval[0],
            "high": interval[1], "expected": expected, "result": result, "detail": detail}  # fmt: skip


NAN2 = (math.nan, math.nan)


def _fmt(value: float) -> str:
    return "nan" if value is None or not np.isfinite(value) else f"{value:.3g}"


def _with_defaults(constants: pd.DataFrame) -> pd.DataFrame:
    frame = constants.copy()
    for name, value in (("loss", "mse"), ("output", "plain"), ("resolution", 0.1), ("output_scale", 1.0),
                        ("output_sigma", math.nan), ("output_norm", math.nan), ("batch_size", 512)):  # fmt: skip
        if name not in frame:
            frame[name] = value
    if len(frame):
        frame["inv_width"] = 1.0 / frame["width"].astype(float)
        batch = frame["batch_size"].astype(float)
        frame["log2_batch"] = np.log2(batch.where(batch > 0))
    return frame


def _sigma(row) -> float:
    value = pd.to_numeric(pd.Series([row.get("output_sigma")]), errors="coerce").iloc[0]
    return 0.0 if pd.isna(value) else float(value)


def _plain(row) -> bool:
    """The paper's standard network: plain output, alpha = 1 (no sigma, no Eq. 57 scale)."""
    norm = pd.to_numeric(pd.Series([row.get("output_norm")]), errors="coerce").iloc[0]
    return row["output"] == "plain" and _sigma(row) == 0.0 and float(row["output_scale"]) == 1.0 and pd.isna(norm)


# Parameters that define a setting: each combination that varies is its own panel (merged tables carry other columns).
SETTING_KEYS = ("arch", "param", "dataset", "subset", "loss", "batch_size", "steps", "measure_examples", "bias", "output",
                "output_scale", "output_norm", "output_sigma", "sharpness_method", "eps")


def _other_keys(frame: pd.DataFrame) -> list[str]:
    """The setting parameters (besides depth and width) that differ between rows."""
    return [k for k in SETTING_KEYS if k in frame and frame[k].nunique(dropna=False) > 1]


def _number(row, name: str, default: int) -> int:
    value = pd.to_numeric(pd.Series([row.get(name)]), errors="coerce").iloc[0]
    return int(value) if np.isfinite(value) else default


def _where(keys: list[str], values) -> str:
    short = {"depth": "d", "width": "w", "batch_size": "B"}
    values = values if isinstance(values, tuple) else (values,)
    return " ".join(f"{short.get(k, k)}={v}" for k, v in zip(keys, values)) or "all"


def _fraction_row(figure: str, claim: str, scope: str, holds: pd.Series, needed: float, detail: str) -> dict:
    n, k = int(len(holds)), int(holds.sum())
    expected = "every one" if needed >= 1 else f">= {needed:.0%}"
    if n == 0:
        return _row(figure, claim, scope, math.nan, NAN2, expected, NO_DATA, detail)
    result = PASS if k / n >= needed - 1e-12 else FAIL
    return _row(figure, claim, scope, k / n, trends.wilson(k, n), expected, result, f"{k}/{n}; " + detail)


# --- per-seed constants of the searches --------------------------------------------------------------------------


def _is_censored(frame: pd.DataFrame, *names: str) -> pd.Series:
    """Rows where any of the named constants is censored (its flag is 1; a missing flag counts as uncensored)."""
    flags = [frame[f"{n}_censored"].fillna(0).astype(bool) for n in names if f"{n}_censored" in frame]
    return pd.concat(flags, axis=1).any(axis=1) if flags else pd.Series(False, index=frame.index)


def left_out(constants: pd.DataFrame) -> pd.DataFrame:
    """The constants with censored values left out (NaN), as the authors' notebook takes them: the minimum over
    non-divergent runs, no fallback to c_max."""
    frame = constants.copy()
    for flag in CENSORED:
        if flag in frame and flag[:-9] in frame:
            frame.loc[frame[flag].fillna(0).astype(bool), flag[:-9]] = math.nan
    return frame


def _censored_text(frame: pd.DataFrame) -> str:
    present = [c for c in CENSORED if c in frame]
    if not present:
        return "censoring not logged"
    return ", ".join(f"{int(frame[c].fillna(0).astype(bool).sum())} {c[:-9]}" for c in present) + " censored"


def inequality(constants: pd.DataFrame) -> dict:
    """App. D, Fig. 4: c_loss <= c_sharp <= c_max per seed (c_sharp <= c_max within one grid step: a divergence
    counts as an increase, so an uncensored c_sharp can be the first divergent c)."""
    frame = _with_defaults(constants)
    measured = frame[frame["c_loss"].notna() & frame["c_sharp"].notna()] if len(frame) else frame
    usable = measured[~_is_censored(measured, "c_loss", "c_sharp")]  # a censored constant (= c_max) holds by construction
    figure, claim = "4, 21, 27", "c_loss <= c_sharp <= c_max per seed (App. D: 'typically holds')"
    if usable.empty:
        return _row(figure, claim, "all seeds", math.nan, NAN2, f">= {INEQUALITY_PASS:.0%}", NO_DATA,
                    f"no seed has both c_loss and c_sharp uncensored ({len(measured)} censored)")  # fmt: skip
    c_max = usable["c_max"].fillna(np.inf)
    step = 2.0 ** usable["resolution"].astype(float)
    first = usable["c_loss"] <= usable["c_sharp"] * (1 + 1e-9)
    holds = first & (usable["c_sharp"] <= c_max * step * (1 + 1e-9))
    strict = first & (usable["c_sharp"] <= c_max * (1 + 1e-9))
    keys = [k for k in ("depth", "width", *_other_keys(frame), "seed") if k in frame]
    bad = usable[~holds]
    examples = "; ".join(f"{_where(keys, tuple(r[k] for k in keys))} ({_fmt(r['c_loss'])}, {_fmt(r['c_sharp'])}, "
                         f"{_fmt(r['c_max'])})" for _, r in bad.head(4).iterrows())  # fmt: skip
    detail = (f"strict (no grid-step tolerance): {strict.mean():.0%}; {len(frame) - len(measured)} seeds without "
              f"c_loss or c_sharp and {len(measured) - len(usable)} with either censored left out ({_censored_text(measured)})")  # fmt: skip
    if len(bad):
        detail += f"; violations (c_loss, c_sharp, c_max): {examples}" + (" ..." if len(bad) > 4 else "")
    return _fraction_row(figure, claim, "all seeds", holds, INEQUALITY_PASS, detail)


def sharp_below_barrier(constants: pd.DataFrame) -> dict:
    """Sec. 2.2: c_sharp <= c_barrier (training meets a barrier only once the sharpness catapults)."""
    frame = _with_defaults(constants)
    figure, claim = "3", "c_sharp <= c_barrier per seed (Sec. 2.2: 'we consistently observe')"
    if "c_barrier" not in frame:
        return _row(figure, claim, "all seeds", math.nan, NAN2, f">= {INEQUALITY_PASS:.0%}", NO_DATA, "c_barrier not measured")
    measured = frame[frame["c_sharp"].notna() & frame["c_barrier"].notna()]
    usable = measured[~_is_censored(measured, "c_sharp", "c_barrier")]
    holds = usable["c_sharp"] <= usable["c_barrier"] * (1 + 1e-9)
    return _fraction_row(figure, claim, "all seeds", holds, INEQUALITY_PASS,
                         f"seeds with both constants uncensored; {len(measured) - len(usable)} with either censored left out")


def _trend_rows(frame: pd.DataFrame, name: str, values: pd.Series, variable: str, sign_of, figure: str,
                sentence: str, groups: pd.Series | None = None) -> list[dict]:  # fmt: skip
    """One row per panel where `variable` varies and sign_of(first row of the panel) gives the paper's direction."""
    x_column, label = VARIABLES[variable]
    frame = frame.assign(_y=values.to_numpy(float))
    if groups is not None:
        frame = frame.assign(_group=groups.to_numpy())
    keys = [k for k in ("depth", "width", *_other_keys(frame)) if k != variable and k in frame]
    rows = []
    for panel_values, part in frame.groupby(keys, sort=True, dropna=False) if keys else [((), frame)]:
        sign = sign_of(part.iloc[0])
        if sign is None or part[x_column].nunique() < 2:
            continue
        point = part["_group"] if groups is not None else part[x_column]
        test = trends.bootstrap_slope(part[x_column], part["_y"], point)
        claim = f"{name} {'increases' if sign > 0 else 'decreases'} with {label}"
        expected = f"slope {'>' if sign > 0 else '<'} 0 (95 % interval)"
        detail = (f"slope of {name} on {label} over {test.n_values} per-seed values at {test.n_groups} points"
                  + (f"; {test.dropped_groups} points with < 2 seeds left out" if test.dropped_groups else "")
                  + f"; {int(part['_y'].isna().sum())} NaN (not reached)")  # fmt: skip
        if name.startswith("log2 c") or name.startswith("log2(c"):
            detail += "; " + _censored_text(part)
        result = (PASS if test.excludes_zero(sign) else FAIL) if test.tested else NO_DATA
        rows.append(_row(figure, f"{claim}: {sentence}", _where(keys, panel_values), test.slope, (test.low, test.high),
                         expected, result, detail))  # fmt: skip
    return rows


def trends_of_constants(constants: pd.DataFrame) -> list[dict]:
    """Sec. 2.1, App. F, H, J: how c_loss, c_sharp, c_max and the gap c_max / c_loss move with 1/w, d and B."""
    frame = _with_defaults(constants)
    if frame.empty:
        return []
    log = {name: np.log2(frame[name].astype(float)) for name in ("c_loss", "c_sharp", "c_max")}

    def not_zero(row):
        return None if row["output"] in ZERO_OUTPUTS else +1

    def plain(row):
        return +1 if _plain(row) else None

    def plain_mse(row):
        return -1 if _plain(row) and row["loss"] == "mse" else None

    def c_max_with_width(row):
        if row["output"] in ZERO_OUTPUTS:
            return None
        if _sigma(row) == 0.5 or (_plain(row) and row["loss"] == "xent"):
            return -1
        return +1 if _sigma(row) == -0.5 else None  # plain MSE: "may increase or decrease" (no claim)

    rows = []
    for variable in ("width", "depth"):
        rows += _trend_rows(frame, "log2 c_loss", log["c_loss"], variable, not_zero, "3, 14-20, 26, 33, 35",
                            "'As 1/w increases, <c_loss> increases' (Sec. 2.1; App. F, H)")  # fmt: skip
        rows += _trend_rows(frame, "log2 c_sharp", log["c_sharp"], variable, plain, "3, 14-20, 26",
                            "'<c_sharp> continuing to increase with 1/w' (Sec. 2.1; App. F)")  # fmt: skip
        rows += _trend_rows(frame, "log2(c_max / c_loss)", log["c_max"] - log["c_loss"], variable, plain_mse, "3, 14-20",
                            "'<c_loss> ... eventually converges to <c_max> at large 1/w' (Sec. 2.1)")  # fmt: skip
    rows += _trend_rows(frame, "log2 c_max", log["c_max"], "depth", not_zero, "3 d-f, 20",
                        "'<c_max> ... consistently increasing with d' (Sec. 2.1)")  # fmt: skip
    rows += _trend_rows(frame, "log2 c_max", log["c_max"], "width", c_max_with_width, "26 d-f, 35",
                        "xent: '<c_max> consistently decreases with 1/w' (Sec. 2.1); lazy (sigma = -0.5) increases, "
                        "rich (sigma = 0.5) decreases (App. H.2)")  # fmt: skip
    rows += _trend_rows(frame, "log2 c_sharp", log["c_sharp"], "batch_size", plain, "41",
                        "'<c_sharp> moving to the left as B is reduced from 512 to 128' (App. J.1)")  # fmt: skip
    return rows


def _band_row(figure: str, claim: str, scope: str, values: pd.Series, band: tuple[float, float], detail: str) -> dict:
    mean, low, high = trends.bootstrap_mean(values)
    expected = f"mean in [{band[0]:g}, {band[1]:g}]"
    if not np.isfinite(mean):
        return _row(figure, claim, scope, math.nan, NAN2, expected, NO_DATA, detail)
    result = PASS if band[0] <= mean <= band[1] else FAIL
    return _row(figure, claim, scope, mean, (low, high), expected, result, detail)


def wide_limit(constants: pd.DataFrame) -> list[dict]:
    """<c_loss> of the widest (then shallowest) plain network: close to 2 for MSE (Sec. 2.1), in 4..8 for xent (App. F)."""
    frame = _with_defaults(constants)
    frame = frame[frame.apply(_plain, axis=1)] if len(frame) else frame
    rows = []
    for loss, band, figure, sentence in (
        ("mse", BAND, "3", "'At large widths, the loss starts to catapult at c ~ 2' (Sec. 2.1)"),
        ("xent", XENT_LOSS_BAND, "26 d-f", "'Primarily, 4 <~ c_loss <~ 8' at large widths (App. F.1)"),
    ):
        part = frame[frame["loss"] == loss] if len(frame) else frame
        if part.empty:
            if loss == "mse":
                rows.append(_row(figure, sentence, "-", math.nan, NAN2, f"mean in [{band[0]:g}, {band[1]:g}]", NO_DATA,
                                 "no MSE searches with the plain output"))  # fmt: skip
            continue
        others = [k for k in _other_keys(part) if k not in ("loss", "output")]
        for values, group in part.groupby(others, sort=True) if others else [((), part)]:
            widest = group[group["width"] == group["width"].max()]
            point = widest[widest["depth"] == widest["depth"].min()]
            scope = _where(["depth", "width", *others], (point["depth"].iloc[0], point["width"].iloc[0],
                                                          *(values if isinstance(values, tuple) else (values,))))  # fmt: skip
            rows.append(_band_row(figure, sentence, scope, point["c_loss"], band,
                                  f"mean over {int(point['c_loss'].notna().sum())} seeds, interval: bootstrap of the mean"))  # fmt: skip
    return rows


def zero_output(constants: pd.DataFrame) -> list[dict]:
    """Sec. 4, App. G: with the output zero at init, <c_loss> stays close to 2 at every (d, w)."""
    frame = _with_defaults(constants)
    rows = []
    for output in ZERO_OUTPUTS:
        part = frame[(frame["output"] == output) & (frame["loss"] == "mse")] if len(frame) else frame
        if part.empty:
            continue
        keys = ["depth", "width", *[k for k in _other_keys(part) if k != "output"]]
        means = part.groupby(keys)["c_loss"].mean().dropna()
        sentence = f"output={output}: 'the average onset of loss catapult occurs at c_loss ~ 2, independent of depth and width' (App. G)"
        if means.empty:
            rows.append(_row("6, 31", sentence, "all (d, w)", math.nan, NAN2, f"every mean in [{BAND[0]:g}, {BAND[1]:g}]", NO_DATA, "no c_loss measured"))
            continue
        worst = means.index[int(np.argmax(np.abs(np.log2(means.to_numpy(float) / 2.0))))]
        worst = worst if isinstance(worst, tuple) else (worst,)
        in_worst = (part[keys] == pd.Series(dict(zip(keys, worst)))).all(axis=1)
        row = _band_row("6, 31", sentence, f"{len(means)} (d, w); farthest from 2: {_where(keys, worst)}",
                        part.loc[in_worst, "c_loss"], BAND, "")  # fmt: skip
        ok = all(BAND[0] <= v <= BAND[1] for v in means)
        row["result"] = PASS if ok else FAIL
        row["expected"] = f"every mean in [{BAND[0]:g}, {BAND[1]:g}]"
        row["detail"] = "<c_loss>: " + ", ".join(f"{_fmt(v)} ({_where(keys, i)})" for i, v in means.items())
        rows.append(row)
    return rows


def sharpness_direction(constants: pd.DataFrame, runs: pd.DataFrame | None) -> list[dict]:
    """Below c_loss the sharpness only decreases for standard networks (Sec. 2), increases slightly with a zero
    output (App. G), decreases for large and increases for small output scales (App. H). Per seed: the median over
    its trained runs with c < c_loss of max_t round(lambda_t / lambda_0, 2)."""
    frame = _with_defaults(constants)
    if frame.empty:
        return []
    settings = frame.assign(_plain=frame.apply(_plain, axis=1), _sigma=frame.apply(_sigma, axis=1))
    cases = []  # (figure, sentence, rows of the setting, +1 increase / -1 no increase)
    cases.append(("2, 30 a-b", "standard network: 'sharpness only decreases during early training' for c < c_loss (Sec. 2)",
                  settings["_plain"], -1))  # fmt: skip
    for output in ZERO_OUTPUTS:
        cases.append(("30 c-f", f"output={output}: 'we observe a slight increase in sharpness' (App. G.1)",
                      settings["output"] == output, +1))  # fmt: skip
    s = pd.to_numeric(settings["output_norm"], errors="coerce")  # Eq. 57's s; NaN when not used
    cases.append(("32", "Eq. 57, s >= 0.5: 'sharpness decreases during early training' (App. H.1)", s >= 0.5, -1))
    cases.append(("32", "Eq. 57, s < 0.5: 'sharpness increases for small output scales' (App. H.1)", s < 0.5, +1))
    cases.append(("34", "alpha = w^-sigma, sigma = 0.5: 'sharpness tends to increase in the feature learning regime' (App. H.2)",
                  (settings["output"] == "plain") & (settings["_sigma"] == 0.5), +1))  # fmt: skip
    cases.append(("34", "alpha = w^-sigma, sigma = -0.5: 'sharpness decreases' in the lazy regime (App. H.2)",
                  (settings["output"] == "plain") & (settings["_sigma"] == -0.5), -1))  # fmt: skip
    usable = None
    if runs is not None and len(runs) and {"parent_run_id", "c", "max_sharpness_ratio"} <= set(runs):
        usable = runs[runs["max_sharpness_ratio"].notna()]
        if "diverged" in usable:
            usable = usable[usable["diverged"].fillna(0).astype(float) == 0]
    rows = []
    for figure, sentence, mask, sign in cases:
        seeds = settings[mask]
        if seeds.empty:
            continue
        expected = f">= {INEQUALITY_PASS:.0%} of seeds {'increase' if sign > 0 else 'do not increase'}"
        if usable is None or "run_id" not in seeds:
            rows.append(_row(figure, sentence, "all seeds", math.nan, NAN2, expected, NO_DATA, "no trained runs with a measured sharpness"))
            continue
        joined = usable.merge(seeds[["run_id", "c_loss"]].rename(columns={"run_id": "parent_run_id"}), on="parent_run_id")
        below = joined[joined["c"] < joined["c_loss"].fillna(np.inf) * (1 - 1e-9)]
        per_seed = below.groupby("parent_run_id")["max_sharpness_ratio"].median()
        if per_seed.empty:
            rows.append(_row(figure, sentence, "all seeds", math.nan, NAN2, expected, NO_DATA,
                             "no run below c_loss has a measured sharpness (the bisection measures it only near c_sharp: "
                             "use mode grid)"))  # fmt: skip
            continue
        increased = per_seed.round(2) > 1.0
        holds = increased if sign > 0 else ~increased
        rows.append(_fraction_row(figure, sentence, "all seeds", holds, INEQUALITY_PASS,
                                  f"median max lambda_t/lambda_0 below c_loss: {_fmt(per_seed.median())} over {len(per_seed)} seeds"))  # fmt: skip
    return rows


def censored_counts(constants: pd.DataFrame, figure: str = "3, 4", what: str = "seeds") -> list[dict]:
    """Issue 9: how many constants are censored (the scan diverged first: the constant is c_max)."""
    rows = []
    for name in CENSORED:
        claim = f"{what} with {name[:-9]} censored at c_max"
        if len(constants) == 0 or name not in constants:
            if name != "c_barrier_censored" or "c_barrier" in constants:
                rows.append(_row(figure, claim, "all", math.nan, NAN2, "a count", NO_DATA, f"column {name} not logged"))
            continue
        flags = constants[name].fillna(0).astype(bool)
        keys = [k for k in ("depth", "width") if k in constants and constants[k].nunique() > 1]
        by = "; ".join(f"{_where(keys, k)}: {int(v)}" for k, v in constants[flags].groupby(keys).size().items()) if keys else ""
        rows.append(_row(figure, claim, "all", float(flags.sum()), NAN2, "a count", COUNT,
                         f"{int(flags.sum())} of {len(flags)}" + (f" ({by})" if by else "")))  # fmt: skip
    return rows


# --- intermediate saturation: c_crit, the chi' peak, lambda_tau at small c ---------------------------------------------


def c_crit(saturation: pd.DataFrame | None) -> list[dict]:
    """Sec. 3 / App. F.2: c_crit close to 2 for MSE, in 2..4 for cross-entropy (metric c_crit of saturation runs,
    or c_crit_* per width)."""
    cases = {"mse": ("5, 36-40, 42", "'<c_crit> ... generally stay in the vicinity of c = 2' (Sec. 3)", BAND),
             "xent": ("29", "'2 <~ <c_crit> <~ 4' for cross-entropy (Sec. 3, App. F.2)", XENT_CRIT_BAND)}  # fmt: skip
    if saturation is None or saturation.empty:
        return [_row(cases["mse"][0], cases["mse"][1], "-", math.nan, NAN2, f"in [{BAND[0]:g}, {BAND[1]:g}]", NO_DATA,
                     "no saturation runs (phasediag saturation)")]  # fmt: skip
    rows = []
    for _, run in saturation.iterrows():
        loss = str(run.get("loss", "mse"))
        figure, sentence, band = cases.get(loss, cases["mse"])
        keys = [k for k in ("depth", "width", "batch_size") if k in saturation and saturation[k].nunique() > 1]
        for name in sorted(c for c in saturation.columns if re.fullmatch(r"c_crit(_w\d+)?", c)):
            value = pd.to_numeric(pd.Series([run[name]]), errors="coerce").iloc[0]
            if not np.isfinite(value):
                continue
            scope = f"run {str(run['run_id'])[:8]} {_where(keys, tuple(run[k] for k in keys))}".strip()
            scope += f" {name[7:]}" if name != "c_crit" else ""
            expected = f"in [{band[0]:g}, {band[1]:g}]"
            if name == "c_crit" and _unsupported(run):
                rows.append(_row(figure, sentence, scope, math.nan, NAN2, expected, NO_DATA,
                                 f"chi' peak at c = {_fmt(value)} not supported by the seeds: {_spread(run)}"))  # fmt: skip
                continue
            result = PASS if band[0] <= value <= band[1] else FAIL
            interval = (_number_or_nan(run, "c_crit_low"), _number_or_nan(run, "c_crit_high")) if name == "c_crit" else NAN2
            rows.append(_row(figure, sentence, scope, float(value), interval, expected, result,
                             f"metric {name}" + (f"; {_spread(run)}" if name == "c_crit" else "")))  # fmt: skip
    return rows or [_row(cases["mse"][0], cases["mse"][1], "-", math.nan, NAN2, "", NO_DATA, "saturation runs without a c_crit")]


def _number_or_nan(row, name: str) -> float:
    return float(pd.to_numeric(pd.Series([row.get(name)]), errors="coerce").iloc[0])


def _unsupported(row) -> bool:
    """A saturation run whose seed redraws do not support its chi' peak (critical.c_crit_bootstrap)."""
    return _number_or_nan(row, "c_crit_supported") == 0.0


def _spread(row) -> str:
    """c_crit's support, bootstrap interval and its values for the other Savitzky-Golay windows, in words."""
    support = _number_or_nan(row, "c_crit_support")
    if not np.isfinite(support):
        text = "one seed or no redraw: support not measured"
    else:
        text = (f"{support:.0%} of seed redraws within one grid step (needs {critical.SUPPORT_NEEDED:.0%}), "
                f"95 % of redraws in [{_fmt(_number_or_nan(row, 'c_crit_low'))}, {_fmt(_number_or_nan(row, 'c_crit_high'))}]")  # fmt: skip
    windows = ", ".join(f"{w}: {_fmt(_number_or_nan(row, f'c_crit_sg{w}'))}" for w in critical.SAVGOL_WINDOWS)
    return f"{text}; Savitzky-Golay windows {windows}"


MATCH_KEYS = ("arch", "param", "dataset", "subset", "loss", "batch_size", "output", "depth", "width")


def gap_opening(constants: pd.DataFrame, saturation: pd.DataFrame | None) -> list[dict]:
    """Sec. 3: c_crit stays near 2 while c_loss grows with d and 1/w: log2(c_loss / c_crit) per seed, matched to
    the saturation run of the same (arch, dataset, loss, B, d, w), grows with 1/w and d."""
    sentence = "'In contrast to <c_crit>, <c_loss> increase with d and 1/w, implying the opening of the sharpness reduction phase' (Sec. 3)"
    frame = _with_defaults(constants)
    if frame.empty or saturation is None or saturation.empty or "c_crit" not in saturation:
        return [_row("3, 5", sentence, "-", math.nan, NAN2, "slope > 0", NO_DATA, "needs searches and saturation runs of the same networks")]
    keys = [k for k in MATCH_KEYS if k in frame and k in saturation]
    supported = saturation[~saturation.apply(_unsupported, axis=1)]  # an unsupported peak is no measurement
    crit = supported[[*keys, "c_crit"]].dropna(subset=["c_crit"]).groupby(keys, as_index=False)["c_crit"].mean()
    merged = frame.merge(crit, on=keys)
    if merged.empty:
        return [_row("3, 5", sentence, "-", math.nan, NAN2, "slope > 0", NO_DATA, "no saturation run matches a searched (d, w)")]
    gap = np.log2(merged["c_loss"].astype(float) / merged["c_crit"].astype(float))
    rows = []
    for variable in ("width", "depth"):
        rows += _trend_rows(merged, "log2(c_loss / c_crit)", gap, variable, lambda r: None if r["output"] in ZERO_OUTPUTS else +1,
                            "3, 5", sentence)  # fmt: skip
    return rows or [_row("3, 5", sentence, "-", math.nan, NAN2, "slope > 0", NO_DATA, "matched (d, w) do not vary")]


def _saturation_samples(seeds: pd.DataFrame, curves: pd.DataFrame, run_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(x of the fitted range, seeds x grid ratios) of one saturation run."""
    curve = curves[(curves["run_id"] == run_id) & curves["in_fit"].astype(bool)]
    mine = seeds[(seeds["run_id"] == run_id) & seeds["x"].isin(curve["x"])]
    table = mine.pivot_table(index="seed", columns="x", values="ratio", aggfunc="mean")
    return table.columns.to_numpy(float), table.to_numpy(float)


def chi_prime_width(saturation: pd.DataFrame | None, seeds: pd.DataFrame | None, curves: pd.DataFrame | None) -> list[dict]:
    """Sec. 3: 'the peak in chi' becomes wider as d and 1/w increase'; App. J.2: wider at smaller B. The full width
    at half maximum of chi' (in log2 c), recomputed from each bootstrap redraw of the seeds."""
    no_data = "FWHM of chi' (log2 c) grows with d and 1/w: 'The peak in chi' becomes wider as d and 1/w increase' (Sec. 3)"
    sentences = {"width": ("5, 36-40", "'The peak in chi' becomes wider as d and 1/w increase' (Sec. 3)", +1),
                 "depth": ("36-40", "'The peak in chi' becomes wider as d and 1/w increase' (Sec. 3)", +1),
                 "batch_size": ("42", "smaller B: 'the full width at half maximum increases' (App. J.2)", -1)}  # fmt: skip
    if saturation is None or saturation.empty or seeds is None or curves is None or seeds.empty or curves.empty:
        return [_row("5, 36-40, 42", no_data, "-", math.nan, NAN2, "slope > 0", NO_DATA, "no saturation curves (saturation.csv, saturation_curve.csv)")]
    runs = _with_defaults(saturation)
    rows = []
    for variable, (figure, sentence, sign) in sentences.items():
        x_column, label = VARIABLES[variable]
        keys = [k for k in ("depth", "width", *_other_keys(runs)) if k in runs and k != variable]
        for panel, part in runs.groupby(keys, sort=True, dropna=False) if keys else [((), runs)]:
            if part[x_column].nunique() < 2:
                continue
            samples, statistics = [], []
            for _, run in part.iterrows():
                grid, ratios = _saturation_samples(seeds, curves, run["run_id"])
                samples.append(ratios)
                statistics.append(_fwhm_statistic(grid, _number(run, "window", critical.SAVGOL_WINDOW), _number(run, "polyorder", 3)))
            test = trends.bootstrap_curve_slope(part[x_column], samples, statistics, n_boot=CURVE_BOOT)
            claim = f"FWHM of chi' (log2 c) {'grows' if sign > 0 else 'shrinks'} with {label}: {sentence}"
            result = (PASS if test.excludes_zero(sign) else FAIL) if test.tested else NO_DATA
            rows.append(_row(figure, claim, _where(keys, panel), test.slope, (test.low, test.high),
                             f"slope {'>' if sign > 0 else '<'} 0 (95 % interval)", result,
                             f"{test.n_groups} saturation runs, {test.dropped_groups} without a measurable peak "
                             "(chi' not falling to half inside the fit range) or with < 2 seeds"))  # fmt: skip
    if not rows:
        rows.append(_row("5, 36-40, 42", no_data, "-", math.nan, NAN2, "slope > 0", NO_DATA, "no two saturation runs differ only in d, w or B"))
    return rows


def _fwhm_statistic(grid: np.ndarray, window: int, polyorder: int):
    """Mean curve on `grid` -> FWHM of its chi' (NaN when too short, incomplete, or without a half-maximum peak)."""

    def statistic(mean: np.ndarray) -> float:
        if len(grid) < polyorder + 2 or not np.isfinite(mean).all():
            return math.nan
        _, chi_prime = critical.saturation_derivatives(grid, mean, window, polyorder)
        return trends.peak_fwhm(grid, chi_prime)

    return statistic


def small_c_sharpness(saturation: pd.DataFrame | None, seeds: pd.DataFrame | None) -> list[dict]:
    """Sec. 3: 'in stage (1), where c < 2 is sub-critical, lambda_tau decreases with increasing d and 1/w'. Per seed:
    log2 of lambda_tau averaged over c <= 1."""
    sentence = "'for small c ... lambda_tau decreases with increasing d and 1/w' (Sec. 3)"
    if saturation is None or saturation.empty or seeds is None or seeds.empty or "lambda_tau" not in seeds:
        return [_row("5, 36-40", sentence, "-", math.nan, NAN2, "slope < 0", NO_DATA, "no saturation.csv with lambda_tau")]
    small = seeds[seeds["x"] <= SMALL_C_X + 1e-9].groupby(["run_id", "seed"], as_index=False)["lambda_tau"].mean()
    merged = _with_defaults(saturation).merge(small, on="run_id")
    rows = []
    for variable in ("width", "depth"):
        rows += _trend_rows(merged, "log2 lambda_tau(c <= 1)", np.log2(merged["lambda_tau"].astype(float)), variable,
                            lambda r: -1, "5, 36-40", sentence, groups=merged["run_id"])  # fmt: skip
    return rows or [_row("5, 36-40", sentence, "-", math.nan, NAN2, "slope < 0", NO_DATA, "neither d nor w varies")]


# --- the uv model ------------------------------------------------------------------------------------------------------


def uv_claims(uv: pd.DataFrame | None, uv_saturation: pd.DataFrame | None) -> list[dict]:
    """Sec. 5, App. B on uv_critical.csv (one row per width and init) and uv_saturation.csv."""
    if uv is None or uv.empty:
        return [_row("7, 12", "uv model (Sec. 5, App. B)", "-", math.nan, NAN2, "", NO_DATA, "no uv tables (phasediag uv)")]
    frame = uv.assign(inv_width=1.0 / uv["width"].astype(float))
    rows = []
    means = frame.groupby("width")["k_max"].apply(trends.bootstrap_mean)
    off = {w: abs(math.log2(m[0] / 4.0)) for w, m in means.items()}
    worst = max(off, key=off.get)
    rows.append(_row("7 b", "'We also observe <k_max> = 4, independent of width' (Sec. 5)", f"{len(off)} widths; worst w={worst}",
                     means[worst][0], means[worst][1:], f"every mean within one grid step ({GRID_STEP} in log2) of 4",
                     PASS if max(off.values()) <= GRID_STEP + 1e-9 else FAIL,
                     "<k_max>: " + ", ".join(f"{_fmt(m[0])} (w={w})" for w, m in means.items())))  # fmt: skip
    rows.append(_fraction_row("11 c", "'lambda_0 >= tr(H_0) for all widths' (App. B.3)", "all inits",
                              frame["lambda0"] >= frame["trace0"] * (1 - 1e-9), 1.0, "per init"))  # fmt: skip
    below = np.minimum(frame["k_max"].fillna(np.inf), 4.0)  # Eq. 1: tr(H) rises iff eta tr(H) > 4, or at divergence
    rows.append(_fraction_row("7 b", "'tr(H) does not increase' for 0 < k < 4 (Sec. 5, Eq. 1): k_trace >= min(k_max, 4)",
                              "all inits", frame["k_trace"].fillna(np.inf) >= below * (1 - 1e-9), 1.0,
                              "the trace rises only above k = 4 or where the scan diverges"))  # fmt: skip
    measured = frame.dropna(subset=["c_loss", "c_sharp"])
    usable = measured[~_is_censored(measured, "c_loss", "c_sharp")]
    c_max = usable["c_max"].fillna(np.inf)
    holds = (usable["c_loss"] <= usable["c_sharp"] * (1 + 1e-9)) & (usable["c_sharp"] <= c_max * (1 + 1e-9))
    rows.append(_fraction_row("12", "'c_loss <= c_sharp <= c_max holds for every random initialization' (App. B.6)",
                              "all inits", holds, 1.0, f"inits with both uncensored; {len(measured) - len(usable)} with "
                              "either censored left out"))  # fmt: skip
    for name, values, figure, sentence in (
        ("k_frob - k_loss", frame["k_frob"] - frame["k_loss"], "7 c", "'k_loss <= k_frob, with the difference increasing with 1/w' (App. B.4)"),
        ("log2 k_loss", np.log2(frame["k_loss"]), "7 b, 11", "'<k_loss> increases with 1/w' (Sec. 5, App. B.3)"),
        ("log2 c_loss", np.log2(frame["c_loss"]), "7 a", "c_loss increases with 1/w (Fig. 7 a, Eq. 17)"),
        ("log2 c_sharp", np.log2(frame["c_sharp"]), "7 a", "c_sharp increases with 1/w (Fig. 7 a)"),
    ):
        rows += _trend_rows(frame, name, values, "width", lambda r: +1, figure, sentence)
    if uv_saturation is not None and len(uv_saturation) and "c_crit" in uv_saturation:
        crit = uv_saturation.groupby("width")["c_crit"].first()
        off = np.abs(np.log2(crit.to_numpy(float) / 2.0))
        worst = crit.index[int(np.nanargmax(off))]
        rows.append(_row("10", "'c_crit = 2 for all widths' (App. B.2)", f"{len(crit)} widths; worst w={worst}",
                         float(crit[worst]), NAN2, f"every c_crit within one grid step ({GRID_STEP} in log2) of 2",
                         PASS if np.nanmax(off) <= GRID_STEP + 1e-9 else FAIL,
                         "c_crit: " + ", ".join(f"{_fmt(v)} (w={w})" for w, v in crit.items())))  # fmt: skip
    else:
        rows.append(_row("10", "'c_crit = 2 for all widths' (App. B.2)", "-", math.nan, NAN2, "", NO_DATA, "no uv_saturation.csv"))
    rows += censored_counts(frame, "12", "inits")
    return rows


def evaluate(constants: pd.DataFrame, saturation: pd.DataFrame | None = None, *, runs: pd.DataFrame | None = None,
             saturation_seeds: pd.DataFrame | None = None, saturation_curves: pd.DataFrame | None = None,
             uv: pd.DataFrame | None = None, uv_saturation: pd.DataFrame | None = None) -> pd.DataFrame:  # fmt: skip
    """Every check, one row each (see the module's docstring for the inputs)."""
    rows = []
    if len(constants):
        rows += [inequality(constants), sharp_below_barrier(constants), *trends_of_constants(constants),
                 *wide_limit(constants), *zero_output(constants), *sharpness_direction(constants, runs),
                 *censored_counts(constants)]  # fmt: skip
    if len(constants) or (saturation is not None and len(saturation)):
        rows += [*c_crit(saturation), *gap_opening(constants, saturation),
                 *chi_prime_width(saturation, saturation_seeds, saturation_curves),
                 *small_c_sharpness(saturation, saturation_seeds)]  # fmt: skip
    if uv is not None:
        rows += uv_claims(uv, uv_saturation)
    return pd.DataFrame(rows, columns=COLUMNS)


LEFT_OUT = "_left_out"  # suffix of the columns evaluated with censored constants left out
KEY = ["figure", "claim", "scope"]


def evaluate_both(constants: pd.DataFrame, saturation: pd.DataFrame | None = None, **tables) -> pd.DataFrame:
    """evaluate() twice, one row per claim and scope: with censored constants as c_max (columns as in evaluate) and
    with them left out (left_out(); the same columns suffixed LEFT_OUT)."""
    as_c_max = evaluate(constants, saturation, **tables)
    without = evaluate(left_out(constants) if len(constants) else constants, saturation, **tables)
    without = without.drop(columns="expected").rename(columns=lambda c: c if c in KEY else c + LEFT_OUT)
    both = as_c_max.merge(without, on=KEY, how="outer", sort=False)
    return both.fillna({"expected": "", "result": NO_DATA, f"result{LEFT_OUT}": NO_DATA})


def _cell(measured: float, low: float, high: float, result: str) -> str:
    interval = f" [{_fmt(low)}, {_fmt(high)}]" if np.isfinite(low) else ""
    return f"{_fmt(measured)}{interval} | {({PASS: '**pass**', FAIL: '**FAIL**'}).get(result, result)}"


def to_markdown(table: pd.DataFrame, experiment: str) -> str:
    def counted(column: str) -> str:
        counts = table[column].value_counts()
        return (f"{counts.get(PASS, 0)} pass, {counts.get(FAIL, 0)} fail, {counts.get(NO_DATA, 0)} without data "
                f"({counts.get(COUNT, 0)} counts)")  # fmt: skip

    both = f"result{LEFT_OUT}" in table
    lines = [
        f"# Claims of the paper checked on experiment `{experiment}`",
        "",
        f"Censored constants as c_max: {counted('result')}." + (f" Censored left out: {counted('result' + LEFT_OUT)}." if both else ""),
        "",
        "| fig. | claim | scope | censored as c_max: measured [95 % interval] | result | "
        + ("censored left out: measured [95 % interval] | result | " if both else "") + "expected | detail |",
        "|---|---|---|---|---|" + ("---|---|" if both else "") + "---|---|",
    ]
    for _, row in table.iterrows():
        detail = str(row["detail"])
        cells = _cell(row["measured"], row["low"], row["high"], row["result"])
        if both:
            cells += " | " + _cell(row["measured" + LEFT_OUT], row["low" + LEFT_OUT], row["high" + LEFT_OUT], row["result" + LEFT_OUT])
            other = str(row["detail" + LEFT_OUT])
            if other != detail and other != "nan":
                detail += f"; censored left out: {other}"
        detail = detail.replace("|", "/")
        lines.append(f"| {row['figure']} | {row['claim']} | {row['scope']} | {cells} | {row['expected']} | {detail} |")
    lines += [
        "",
        "Rules:",
        "* Each claim is evaluated twice: with censored constants as c_max (the search's values), and with them left "
        "out (NaN, as the authors' notebook takes the minimum over non-divergent runs). Per-seed inequalities count "
        "only seeds whose constants are uncensored in both, since a censored constant satisfies them by construction.",
        "* Trends: least-squares slope of log2 c (or the quantity named) against 1/w, d or log2 B over every per-seed "
        "value of a panel; the interval is a bootstrap that redraws the seeds within each point; pass when the 95 % "
        "interval excludes zero in the paper's direction.",
        f"* \"Close to 2\": inside [{BAND[0]:g}, {BAND[1]:g}] (finite width and depth push <c_loss> above 2; well "
        f"below 2 would contradict the wide-network threshold). Cross-entropy: c_crit in [{XENT_CRIT_BAND[0]:g}, "
        f"{XENT_CRIT_BAND[1]:g}], widest <c_loss> in [{XENT_LOSS_BAND[0]:g}, {XENT_LOSS_BAND[1]:g}].",
        f"* Per-seed statements the paper says 'typically' hold: at least {INEQUALITY_PASS:.0%} of the seeds (Wilson "
        "interval); c_sharp <= c_max within one grid step for uncensored data (a divergence counts as an increase). "
        "The uv model's per-initialisation statements: every initialisation.",
        "* chi' width: full width at half maximum of chi' in log2 c, recomputed on every bootstrap redraw of the seeds.",
        f"* c_crit: its interval is the 2.5-97.5 % range of chi''s argmax over {critical.BOOTSTRAP_REDRAWS} redraws of the "
        f"seeds; a peak that fewer than {critical.SUPPORT_NEEDED:.0%} of the redraws put within one grid step is not "
        "supported, and its claims are 'no data'. The detail gives c_crit for Savitzky-Golay windows "
        f"{', '.join(map(str, critical.SAVGOL_WINDOWS))}.",
        f"* lambda_tau at small c: the mean of lambda_tau over c <= {2 ** SMALL_C_X:g} per seed.",
    ]
    return "\n".join(lines) + "\n"


def load(experiment: str, saturation_experiment: str | None = None, uv_experiment: str | None = None) -> dict:
    """The inputs of evaluate from the tracking store (missing kinds of data are empty or None)."""
    from phasediag import tracking
    from phasediag.reports import diagram

    found = tracking.searches(experiment)
    constants = found[found["status"] == "FINISHED"].reset_index(drop=True) if len(found) else found
    runs = tracking.runs(experiment) if len(constants) else None
    saturation = tracking.runs_of_kind(saturation_experiment or experiment, "saturation")
    saturation = saturation[saturation["status"] == "FINISHED"].reset_index(drop=True) if len(saturation) else saturation
    seeds = curves = None
    if len(saturation):
        seeds = tracking.artifact_tables(saturation["run_id"], "saturation.csv")
        curves = tracking.artifact_tables(saturation["run_id"], "saturation_curve.csv")
    uv_runs = tracking.runs_of_kind(uv_experiment or experiment, "uv")
    uv = uv_saturation = None
    if len(uv_runs):
        latest = uv_runs.sort_values("start_time").iloc[-1]["run_id"]
        uv = tracking.artifact_tables([latest], "uv_critical.csv")
        uv_saturation = tracking.artifact_tables([latest], "uv_saturation.csv")
    if constants.empty and saturation.empty and uv is None:
        diagram.finished_searches(experiment)  # raises the one-line error naming what is missing
    return {"constants": constants, "saturation": saturation, "runs": runs, "saturation_seeds": seeds,
            "saturation_curves": curves, "uv": uv, "uv_saturation": uv_saturation}  # fmt: skip


def claims(experiment: str, out: Path | str | None = None, log: bool = True, saturation_experiment: str | None = None,
           uv_experiment: str | None = None):  # fmt: skip
    """Evaluate the claims on the experiment's finished searches (and saturation and uv runs): claims.md and
    claims.csv in `out` (default out/<experiment>), one analysis run holding them. Returns (table, markdown, Output)."""
    from phasediag.reports import diagram

    data = load(experiment, saturation_experiment, uv_experiment)
    table = evaluate_both(data.pop("constants"), data.pop("saturation"), **data)
    markdown = to_markdown(table, experiment)
    out = Path(out) if out else diagram.default_out(experiment)
    out.mkdir(parents=True, exist_ok=True)
    (out / "claims.md").write_text(markdown)
    table.to_csv(out / "claims.csv", index=False)
    files = [out / "claims.md", out / "claims.csv"]
    counts = table["result"].value_counts()
    run_id = None
    if log:
        metrics = {f"claims_{k.replace(' ', '_')}": float(counts.get(k, 0)) for k in (PASS, FAIL, NO_DATA)}
        left_out_counts = table[f"result{LEFT_OUT}"].value_counts()
        metrics |= {f"claims_{k.replace(' ', '_')}{LEFT_OUT}": float(left_out_counts.get(k, 0)) for k in (PASS, FAIL, NO_DATA)}
        params = {"experiment": experiment, "saturation_experiment": saturation_experiment or experiment,
                  "uv_experiment": uv_experiment or experiment, "out": str(out)}  # fmt: skip
        run_id = diagram.log_analysis(experiment, "claims", params, metrics, files)
    return table, markdown, diagram.Output(run_id, out, files, {"claims": table})
