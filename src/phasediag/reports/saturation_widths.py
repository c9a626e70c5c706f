"""Fig. 5 for real networks: the saturation scan of reports.saturation at several widths, overlaid.

Each width is one `saturation.run_saturation` (its own folder `out/w<width>/` and, with `log`, its own MLflow run);
this module collects their averaged curves, reads c_crit from each, measures the full width at half maximum of the
chi' peak (physics.peaks, on the fitted points against c as the curve gives them) and draws the three panels with
the widths overlaid. Files in `out`: saturation_widths.csv (the curves, one row per (width, c)),
saturation_widths_summary.csv (one row per width: c_crit, the chi' peak's height, its half-maximum crossings and
FWHM), saturation_widths.png. With `log`, one more MLflow run (tag phasediag.kind=saturation_widths) holds them.
"""

import dataclasses
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from phasediag.physics import peaks
from phasediag.reports import saturation
from phasediag.run.config import ConfigError

log = logging.getLogger(__name__)

FILES = ("saturation_widths.csv", "saturation_widths_summary.csv", "saturation_widths.png")


def parse_widths(items: list[str] | tuple | str) -> tuple[int, ...]:
    """'64 128', '64,128' or ['64', '128'] -> (64, 128); each >= 1, none repeated."""
    tokens = [t for item in ([items] if isinstance(items, str) else items) for t in str(item).replace(",", " ").split()]
    try:
        widths = tuple(int(t) for t in tokens)
    except ValueError:
        raise ConfigError(f"widths={' '.join(tokens)!r} is not a list of integers") from None
    if not widths or min(widths) < 1 or len(set(widths)) != len(widths):
        raise ConfigError(f"widths={' '.join(tokens)!r} is not allowed: give distinct integers >= 1")
    return widths


def chi_prime_peak(curve: pd.DataFrame) -> peaks.Peak:
    """The chi' peak of one averaged curve (saturation.curve's columns), on its fitted points, against c."""
    fit = curve[curve["in_fit"].astype(bool)]
    return peaks.fwhm(fit["c"].to_numpy(float), fit["chi_prime"].to_numpy(float))


def summarize(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per width: c_crit and the chi' peak (height, half-maximum crossings, FWHM in c)."""
    rows = []
    for width, curve in curves.groupby("width", sort=True):
        peak = chi_prime_peak(curve)
        spread = {k: float(curve[k].iloc[0]) for k in ("c_crit_support", "c_crit_low", "c_crit_high") if k in curve}
        rows.append({"width": width, "c_crit": float(curve["c_crit"].iloc[0]), **spread, "peak_c": peak.x,
                     "peak_height": peak.height, "half_left": peak.left, "half_right": peak.right,
                     "fwhm": peak.fwhm, "fwhm_log2": math.log2(peak.right / peak.left) if peak.left > 0 else math.nan,
                     "diverged_runs": int(curve["diverged"].sum())})  # fmt: skip
    return pd.DataFrame(rows)


@dataclass
class WidthsResult:
    curves: pd.DataFrame
    summary: pd.DataFrame
    files: dict[str, Path]
    runs: dict[int, str | None]  # width -> its saturation run
    seconds: float
    run_id: str | None = None


def run_widths(
    config: saturation.SaturationConfig,
    widths: tuple[int, ...],
) -> WidthsResult:
    """`config` with each width in turn (its `out` is the parent folder), then the overlay."""
    start = time.perf_counter()
    out = Path(config.out)
    curves, runs = [], {}
    for width in widths:
        one = dataclasses.replace(config, run=dataclasses.replace(config.run, width=width), out=str(out / f"w{width}"))
        result = saturation.run_saturation(one)
        curves.append(result.curve.assign(width=width))
        runs[width] = result.run_id
        log.info("width %d: c_crit=%.4g", width, result.c_crit)
    frame = pd.concat(curves, ignore_index=True)
    summary = summarize(frame)
    files = {name: out / name for name in FILES}
    frame.to_csv(files["saturation_widths.csv"], index=False)
    summary.to_csv(files["saturation_widths_summary.csv"], index=False)
    from phasediag.plots import saturation_widths as plots

    r = config.run
    tau = f"tau = {config.tau_fixed}" if config.tau_fixed is not None else f"c tau = {config.tau_const:g}"
    batch = "GD" if r.batch_size == 0 else f"B={r.batch_size}"
    title = f"{r.arch} d={r.depth} {r.dataset} {r.loss} {batch}, {tau}, {len(config.seeds)} seeds per width"
    plots.saturation_widths(frame, summary, files["saturation_widths.png"], title=title)
    run_id = None
    if config.log:
        from phasediag import tracking

        metrics = {f"{name}_w{row.width}": float(getattr(row, name)) for row in summary.itertuples()
                   for name in ("c_crit", "c_crit_support", "fwhm", "fwhm_log2")
                   if hasattr(row, name) and math.isfinite(getattr(row, name))}  # fmt: skip
        params = {**config.params(), "widths": ",".join(map(str, widths))}
        params.pop("width", None)
        with tempfile.TemporaryDirectory() as folder:  # the overlay's files only: each width's run has its own
            for path in files.values():
                shutil.copy(path, folder)
            run_id = tracking.log_artifact_run(r.experiment, "saturation_widths", params, metrics, folder)
    return WidthsResult(frame, summary, files, runs, time.perf_counter() - start, run_id)
