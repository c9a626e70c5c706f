"""The paper's claims, checked on an experiment's own data: one row per check with the measured number and
pass / fail / no data. Pure pandas on the tables of diagram (tracking only in `claims`).

Tolerances (stated in the report as well):
* "close to 2" means inside BAND = [1.5, 3]. Asymmetric on purpose: at finite width and depth ⟨c_loss⟩ sits above 2
  and grows with 1/w and d (Sec. 2: "at large widths, the loss starts to catapult at c ~ 2"; the uv model gives
  c_loss = 2.1 at w = 512 and up to 4 at small w), while a value well below 2 would contradict the c = 2 threshold
  of the wide limit. 1.5 is 0.4 below 2 in log2 c, 3 is 0.6 above (about 4 and 6 grid steps of 0.1).
* c_loss <= c_sharp <= c_max "typically holds, except for some outliers" at large d/w (App. D): pass when at least
  INEQUALITY_PASS = 80% of the seeds satisfy it. c_sharp and c_loss are the first c that increased, c_max the last
  c that did not diverge, and a divergence counts as an increase, so a seed whose sharpness only rises at the first
  divergent c has c_sharp one grid step above c_max: c_sharp <= c_max is tested within one grid step (the search's
  resolution); the strict fraction is reported too. A seed without c_max (nothing diverged up to x_max) satisfies
  c_sharp <= c_max; a seed without c_loss or c_sharp is left out.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd

from phasediag.vocabulary import ZERO_OUTPUTS

BAND = (1.5, 3.0)
INEQUALITY_PASS = 0.8
COLUMNS = ["claim", "scope", "measured", "expected", "result", "detail"]
PASS, FAIL, NO_DATA = "pass", "fail", "no data"


def _row(claim: str, scope: str, measured: float, expected: str, result: str, detail: str = "") -> dict:
    return {"claim": claim, "scope": scope, "measured": measured, "expected": expected, "result": result, "detail": detail}


def _with_defaults(constants: pd.DataFrame) -> pd.DataFrame:
    frame = constants.copy()
    for name, value in (("loss", "mse"), ("output", "plain"), ("resolution", 0.1)):
        if name not in frame:
            frame[name] = value
    if "inv_width" not in frame:
        frame["inv_width"] = 1.0 / frame["width"].astype(float)
    return frame


def _in_band(value: float) -> bool:
    return bool(np.isfinite(value) and BAND[0] <= value <= BAND[1])


def _band_text() -> str:
    return f"in [{BAND[0]:g}, {BAND[1]:g}]"


def _fmt(value: float) -> str:
    return "nan" if value is None or not np.isfinite(value) else f"{value:.3g}"


def _where(row: pd.Series, keys: list[str]) -> str:
    short = {"depth": "d", "width": "w"}
    return " ".join(f"{short.get(k, k)}={row[k]}" for k in keys)


def _other_keys(frame: pd.DataFrame) -> list[str]:
    from phasediag.reports.diagram import varying_keys

    return [k for k in varying_keys(frame) if k != "inv_width"]


def inequality(constants: pd.DataFrame) -> dict:
    """Fraction of seeds with c_loss <= c_sharp <= c_max (c_sharp <= c_max within one grid step)."""
    frame = _with_defaults(constants)
    usable = frame[frame["c_loss"].notna() & frame["c_sharp"].notna()]
    claim, expected = "c_loss <= c_sharp <= c_max per seed", f">= {INEQUALITY_PASS:.0%} of seeds"
    if usable.empty:
        return _row(claim, "all seeds", math.nan, expected, NO_DATA, "no seed has both c_loss and c_sharp")
    c_max = usable["c_max"].fillna(np.inf)
    step = 2.0 ** usable["resolution"].astype(float)
    first = usable["c_loss"] <= usable["c_sharp"] * (1 + 1e-9)
    second = usable["c_sharp"] <= c_max * step * (1 + 1e-9)
    strict = first & (usable["c_sharp"] <= c_max * (1 + 1e-9))
    holds = first & second
    fraction = float(holds.mean())
    keys = [k for k in ("depth", "width", *_other_keys(frame), "seed") if k in frame]
    bad = usable[~holds]
    examples = "; ".join(f"{_where(r, keys)} ({_fmt(r['c_loss'])}, {_fmt(r['c_sharp'])}, {_fmt(r['c_max'])})"
                         for _, r in bad.head(4).iterrows())  # fmt: skip
    detail = (f"{int(holds.sum())}/{len(usable)} seeds; strict (no grid-step tolerance): {strict.mean():.0%}; "
              f"{len(frame) - len(usable)} seeds without c_loss or c_sharp left out")  # fmt: skip
    if len(bad):
        detail += f"; violations (c_loss, c_sharp, c_max): {examples}" + (" ..." if len(bad) > 4 else "")
    return _row(claim, "all seeds", fraction, expected, PASS if fraction >= INEQUALITY_PASS else FAIL, detail)


def sharp_below_barrier(constants: pd.DataFrame) -> dict:
    """Sec. 2.2: c_sharp <= c_barrier (training meets a barrier only once the sharpness catapults)."""
    frame = _with_defaults(constants)
    claim, expected = "c_sharp <= c_barrier per seed (Sec. 2.2)", f">= {INEQUALITY_PASS:.0%} of seeds"
    if "c_barrier" not in frame:
        return _row(claim, "all seeds", math.nan, expected, NO_DATA, "c_barrier not measured")
    usable = frame[frame["c_sharp"].notna() & frame["c_barrier"].notna()]
    if usable.empty:
        return _row(claim, "all seeds", math.nan, expected, NO_DATA, "no seed has both c_sharp and c_barrier")
    holds = usable["c_sharp"] <= usable["c_barrier"] * (1 + 1e-9)
    fraction = float(holds.mean())
    return _row(claim, "all seeds", fraction, expected, PASS if fraction >= INEQUALITY_PASS else FAIL,
                f"{int(holds.sum())}/{len(usable)} seeds")  # fmt: skip


def trends(constants: pd.DataFrame) -> list[dict]:
    """Sign of the trend of ⟨c_loss⟩ with 1/w (per depth) and with d (per width): Spearman's rho of the means,
    positive expected. Not for centered / zero_readout outputs (there ⟨c_loss⟩ stays near 2)."""
    from scipy.stats import spearmanr

    frame = _with_defaults(constants)
    frame = frame[~frame["output"].isin(ZERO_OUTPUTS)]
    rows = []
    others = _other_keys(frame) if len(frame) else []
    for variable, y, other, label in (("width", "inv_width", "depth", "1/w"), ("depth", "depth", "width", "d")):
        if frame.empty or frame[variable].nunique() < 2:
            continue
        for values, part in frame.groupby([other, *others], sort=True):
            values = values if isinstance(values, tuple) else (values,)
            scope = _where(pd.Series(dict(zip([other, *others], values))), [other, *others])
            means = part.groupby(y)["c_loss"].mean().dropna()
            claim = f"⟨c_loss⟩ increases with {label}"
            if len(means) < 2:
                rows.append(_row(claim, scope, math.nan, "rho > 0", NO_DATA, f"{len(means)} {variable} with a c_loss"))
                continue
            rho = float(spearmanr(means.index.to_numpy(float), means.to_numpy(float)).statistic)
            sym = "w" if variable == "width" else "d"
            points = ", ".join(f"{_fmt(m)} ({sym}={int(round(1 / v)) if variable == 'width' else int(v)})"
                               for v, m in means.items())  # fmt: skip
            result = PASS if np.isfinite(rho) and rho > 0 else FAIL
            rows.append(_row(claim, scope, rho, "rho > 0 (Spearman, over the means)", result, f"⟨c_loss⟩: {points}"))
    return rows


def wide_limit(constants: pd.DataFrame) -> list[dict]:
    """⟨c_loss⟩ of the widest (then shallowest) network close to 2, for MSE with the plain output."""
    frame = _with_defaults(constants)
    frame = frame[(frame["loss"] == "mse") & (frame["output"] == "plain")]
    if "output_scale" in frame:
        frame = frame[frame["output_scale"].astype(float) == 1.0]
    if "output_sigma" in frame:
        frame = frame[frame["output_sigma"].isna() | frame["output_sigma"].isin(["none", "None"])]
    claim = "⟨c_loss⟩ at the largest width close to 2 (MSE)"
    if frame.empty:
        return [_row(claim, "-", math.nan, _band_text(), NO_DATA, "no MSE searches with the plain output")]
    rows = []
    others = [k for k in _other_keys(frame) if k not in ("loss", "output")]
    groups = frame.groupby(others, sort=True) if others else [((), frame)]
    for _, part in groups:
        widest = part[part["width"] == part["width"].max()]
        point = widest[widest["depth"] == widest["depth"].min()]
        value = float(point["c_loss"].mean())
        scope = _where(point.iloc[0], ["depth", "width", *others])
        detail = f"mean over {int(point['c_loss'].notna().sum())} seeds; the widest, then shallowest, network"
        rows.append(_row(claim, scope, value, _band_text(), PASS if _in_band(value) else FAIL if np.isfinite(value) else NO_DATA, detail))
    return rows


def zero_output(constants: pd.DataFrame) -> list[dict]:
    """Sec. 4: with the output zero at init (centered, zero_readout), ⟨c_loss⟩ stays close to 2 at every (d, w)."""
    frame = _with_defaults(constants)
    rows = []
    for output in ZERO_OUTPUTS:
        part = frame[(frame["output"] == output) & (frame["loss"] == "mse")]
        if part.empty:
            continue
        keys = ["depth", "width", *[k for k in _other_keys(part) if k != "output"]]
        means = part.groupby(keys)["c_loss"].mean().dropna()
        claim = f"⟨c_loss⟩ close to 2 at every (d, w), output={output} (MSE)"
        if means.empty:
            rows.append(_row(claim, "all (d, w)", math.nan, _band_text(), NO_DATA, "no c_loss measured"))
            continue
        worst = float(means.iloc[int(np.argmax(np.abs(np.log2(means.to_numpy(float) / 2.0))))])
        ok = all(_in_band(v) for v in means)
        listing = ", ".join(f"{_fmt(v)} ({' '.join(f'{k[0]}={x}' for k, x in zip(keys, i if isinstance(i, tuple) else (i,)))})"
                            for i, v in means.items())  # fmt: skip
        rows.append(_row(claim, f"{len(means)} (d, w)", worst, f"every mean {_band_text()}", PASS if ok else FAIL,
                         f"farthest from 2 shown; ⟨c_loss⟩: {listing}"))  # fmt: skip
    return rows


def c_crit(saturation: pd.DataFrame | None) -> list[dict]:
    """Sec. 3: c_crit close to 2 for MSE, from runs tagged phasediag.kind=saturation with a metric c_crit
    (or c_crit_*: one per width)."""
    claim = "c_crit close to 2 (MSE)"
    if saturation is None or saturation.empty:
        return [_row(claim, "-", math.nan, _band_text(), NO_DATA, "no saturation runs (phasediag saturation)")]
    rows = []
    for _, run in saturation.iterrows():
        if str(run.get("loss", "mse")) != "mse":
            continue
        for name in sorted(c for c in saturation.columns if c == "c_crit" or c.startswith("c_crit_")):
            value = run[name]
            if value is None or not np.isfinite(float(value)):
                continue
            value = float(value)
            scope = f"run {str(run['run_id'])[:8]}" + (f" {name[7:]}" if name != "c_crit" else "")
            rows.append(_row(claim, scope, value, _band_text(), PASS if _in_band(value) else FAIL, f"metric {name}"))
    return rows or [_row(claim, "-", math.nan, _band_text(), NO_DATA, "saturation runs without an MSE c_crit")]


def evaluate(constants: pd.DataFrame, saturation: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every check on a table of per-seed constants (one row per search: depth, width, seed, c_loss, c_sharp,
    c_max, c_barrier; optional loss, output, resolution and other varied params)."""
    rows = [inequality(constants), sharp_below_barrier(constants), *trends(constants), *wide_limit(constants),
            *zero_output(constants), *c_crit(saturation)]  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def to_markdown(table: pd.DataFrame, experiment: str) -> str:
    counts = table["result"].value_counts()
    lines = [
        f"# Claims of the paper checked on experiment `{experiment}`",
        "",
        f"{counts.get(PASS, 0)} pass, {counts.get(FAIL, 0)} fail, {counts.get(NO_DATA, 0)} without data.",
        "",
        "| claim | scope | measured | expected | result | detail |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.itertuples(index=False):
        detail = str(row.detail).replace("|", "/")
        result = {PASS: "**pass**", FAIL: "**FAIL**"}.get(row.result, row.result)
        lines.append(f"| {row.claim} | {row.scope} | {_fmt(row.measured)} | {row.expected} | {result} | {detail} |")
    lines += [
        "",
        "Tolerances:",
        f"* \"close to 2\": inside [{BAND[0]:g}, {BAND[1]:g}]. Asymmetric on purpose: at finite width and depth "
        "⟨c_loss⟩ lies above 2 and grows with 1/w and d (the paper: the loss starts to catapult at c ~ 2 only at large "
        "width); a value well below 2 would contradict the wide-network threshold c = 2.",
        f"* c_loss <= c_sharp <= c_max: pass when at least {INEQUALITY_PASS:.0%} of the seeds satisfy it (App. D: it "
        "typically holds, with outliers at large d/w). A divergence counts as an increase, so c_sharp can be the first "
        "divergent c, one grid step above c_max: c_sharp <= c_max is tested within one grid step (strict fraction in "
        "the detail). No c_max (nothing diverged up to x_max) counts as c_max above every other constant.",
        "* Trends: Spearman's rho between 1/w (or d) and ⟨c_loss⟩ over the points of one panel; rho > 0 passes.",
    ]
    return "\n".join(lines) + "\n"


def claims(experiment: str, out: Path | str | None = None, log: bool = True, saturation_experiment: str | None = None):
    """Evaluate the claims on the experiment's finished searches (and saturation runs): claims.md and claims.csv in
    `out` (default out/<experiment>), one analysis run holding them. Returns (table, markdown, diagram.Output)."""
    from phasediag.reports import diagram
    from phasediag import tracking

    constants = diagram.finished_searches(experiment)
    saturation = tracking.runs_of_kind(saturation_experiment or experiment, "saturation")
    saturation = saturation[saturation["status"] == "FINISHED"] if len(saturation) else saturation
    table = evaluate(constants, saturation)
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
        params = {"experiment": experiment, "saturation_experiment": saturation_experiment or experiment, "out": str(out)}
        run_id = diagram.log_analysis(experiment, "claims", params, metrics, files)
    return table, markdown, diagram.Output(run_id, out, files, {"claims": table})
