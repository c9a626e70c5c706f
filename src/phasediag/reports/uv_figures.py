"""Figs. 9 and 12 of the paper for the uv model (App. B.5, B.6), in closed form from physics.uvmodel.

Fig. 9: the loss and sharpness trajectories of one initialisation at a wide (w = 512) and a narrow (w = 2) width for
several c, with that initialisation's own c_loss, c_sharp, c_max. Fig. 12: c_loss, c_sharp, c_max of every
initialisation against each other, per width, and the fraction of initialisations with c_loss <= c_sharp <= c_max
(B.6: "the inequality holds for every random initialization").
"""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phasediag.reports import output_files
from phasediag.physics import uvmodel
from phasediag.reports import uv

FIG9_WIDTHS = (512, 2)
GRID_STEP = 0.1  # in log2 c, the grid of reports.uv
FIG9_C = (0.5, 1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
FILES = ("uv_fig9_trajectories.csv", "uv_fig9_constants.csv", "uv_fig12_relations.csv", "uv_fig12_order.csv",
         "uv_fig9_trajectories.png", "uv_fig12_relations.png")  # fmt: skip


def trajectories(widths: tuple[int, ...], cs: tuple[float, ...], seed: int, init: int, steps: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 9: per width, initialisation `init` of `seed` trained at each c: loss and sharpness (and their ratios to
    t = 0) for t = 0..steps; and that initialisation's constants on the grid of reports.uv."""
    grid = uvmodel.log2_grid(uv.X_MIN, uv.X_MAX, GRID_STEP)
    paths, constants = [], []
    for width in widths:
        everyone = uvmodel.sample(width, init + 1, seed)
        state0 = uvmodel.State(*(x[init : init + 1] for x in everyone))
        history = uvmodel.sweep(state0, width, np.asarray(cs), "c", steps, ("loss", "sharpness"))
        for j, c in enumerate(cs):
            loss, sharp = history["loss"][0, j], history["sharpness"][0, j]
            with np.errstate(over="ignore", invalid="ignore"):
                paths.append(pd.DataFrame({"width": width, "c": c, "t": np.arange(steps + 1), "loss": loss,
                                           "sharpness": sharp, "loss_ratio": loss / loss[0],
                                           "sharpness_ratio": sharp / sharp[0]}))  # fmt: skip
        found = uvmodel.critical_constants(state0, width, grid, steps)
        constants.append({"width": width, "init": init, "lambda0": float(uvmodel.sharpness(state0, width)[0]),
                          **{k: float(found[k][0]) for k in ("c_loss", "c_sharp", "c_max")}})  # fmt: skip
    return pd.concat(paths, ignore_index=True), pd.DataFrame(constants)


def order_table(constants: pd.DataFrame, step: float = GRID_STEP) -> pd.DataFrame:
    """Per width: the fraction of initialisations with c_loss <= c_sharp <= c_max (Fig. 12, B.6), and the fraction
    when c_sharp may be one grid step above c_max: an init whose first event is the divergence answers 'yes' to
    every question there (critical.py), so its c_sharp (and c_loss) is the first divergent c = c_max * 2^step."""
    finite = constants.dropna(subset=["c_loss", "c_sharp", "c_max"])
    ordered = finite["c_loss"] <= finite["c_sharp"]
    strict = ordered & (finite["c_sharp"] <= finite["c_max"])
    one_step = ordered & (finite["c_sharp"] <= finite["c_max"] * 2**step * (1 + 1e-9))
    table = pd.DataFrame({"width": finite["width"], "fraction": strict, "fraction_one_step": one_step})
    table = table.groupby("width").agg(["mean", "size"])
    return pd.DataFrame({"fraction": table[("fraction", "mean")], "fraction_one_step": table[("fraction_one_step", "mean")],
                         "inits": table[("fraction", "size")]}).reset_index()  # fmt: skip


def run_uv_figures(
    widths: list[int],
    inits: int = 500,
    seed: int = 0,
    steps: int = 10,
    out: Path = Path("out/uv_figures"),
    experiment: str = "uv",
    log: bool = True,
    init: int = 0,
) -> dict[str, Any]:
    """Tables and the two figures in `out`; with `log`, one MLflow run (tag phasediag.kind=uv_figures) holding them."""
    from phasediag.plots import uv_figures as plots

    files = output_files(out, FILES)
    paths, fig9_constants = trajectories(FIG9_WIDTHS, FIG9_C, seed, init, steps)
    grid = uvmodel.log2_grid(uv.X_MIN, uv.X_MAX, GRID_STEP)
    relations = uv.critical_table(sorted(widths), inits, seed, grid, steps)
    order = order_table(relations)
    for name, table in zip(FILES, (paths, fig9_constants, relations, order)):
        table.to_csv(files[name], index=False)
    plots.trajectories(paths, fig9_constants, files["uv_fig9_trajectories.png"])
    plots.relations(relations, order, files["uv_fig12_relations.png"])
    metrics = {f"{name}_w{row.width}": float(getattr(row, name)) for row in order.itertuples()
               for name in ("fraction", "fraction_one_step")}  # fmt: skip
    run_id = None
    if log:
        from phasediag import tracking

        params = {"widths": ",".join(map(str, sorted(widths))), "inits": inits, "seed": seed, "steps": steps, "init": init}
        run_id = tracking.log_artifact_run(experiment, "uv_figures", params, metrics, out)
    return {"run_id": run_id, "files": files, "order": order, "fig9": fig9_constants}
