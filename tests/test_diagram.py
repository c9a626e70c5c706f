"""Queries, phase diagram, trajectories and claims from a tracking store.

Fast tests run on a hand-logged store (searches and children with known answers, logged with tracking's own
functions); slow tests run the real tiny sweep, and compare the queries against an `mlflow server`."""

import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from phasediag import cli
from phasediag.reports import diagram
from phasediag import tracking
from phasediag.physics.critical import trial_answers
from phasediag.search.ledger import Ledger

FAKE = "fake"
X_MIN, RES, X_MAX = -1.0, 0.1, 7.0
N_POINTS = int(round((X_MAX - X_MIN) / RES)) + 1
DEPTHS, WIDTHS, SEEDS = (2, 3), (8, 16), (0, 1)
STEPS = 4  # t = 0..3


def x_of(k: int) -> float:
    return round(X_MIN + k * RES, 10)


def thresholds(depth: int, width: int, seed: int) -> dict[str, int]:
    """Grid indices where loss / sharpness / barrier first increase and where training first diverges.
    c_loss grows with d and 1/w, c_loss < c_sharp < c_barrier < first divergence."""
    loss = 20 + 5 * (depth - 2) + (3 if width == 8 else 0) + seed
    return {"loss": loss, "sharp": loss + 3, "barrier": loss + 4, "max": loss + 8}


def log_fake_search(experiment: str, depth: int, width: int, seed: int, finish: bool = True, kids: bool = True) -> tuple[str, list[str]]:
    """A bisection-like search: children just below and at each threshold; the parent holds the constants the
    search would have found. Returns (parent run id, child run ids)."""
    th = thresholds(depth, width, seed)
    study = f"{experiment}-fcn-d{depth}-w{width}-s{seed}"
    params = {"arch": "fcn", "depth": depth, "width": width, "seed": seed, "loss": "mse", "output": "plain",
              "output_sigma": None, "barrier": False, "mode": "bisect", "resolution": RES, "x_min": X_MIN,
              "x_max": X_MAX, "gallop": 1.0, "eps": 0.0, "study": study}  # fmt: skip
    parent = tracking.start_run(experiment, "search", params, run_name=study, tags={tracking.SEARCH_TAG: study})
    lambda0 = 1.0 + 0.1 * seed + 0.01 * depth
    points = sorted({th["loss"] - 1, th["loss"], th["sharp"] - 1, th["sharp"], th["barrier"], th["max"] - 1, th["max"]})
    points = points if kids else []
    children = []
    for k in points:
        c = 2.0 ** x_of(k)
        eta = c / lambda0
        child_params = {**{n: v for n, v in params.items() if n not in ("mode", "resolution", "x_min", "x_max",
                                                                       "gallop", "eps", "study")}, "c": c}  # fmt: skip
        child = tracking.start_run(experiment, "run", child_params, parent_run_id=parent, run_name=f"c={c:.4g}",
                                   tags={tracking.SEARCH_TAG: study, tracking.X_TAG: f"{x_of(k):.4f}"})  # fmt: skip
        diverged = k >= th["max"]
        if diverged:
            history = pd.DataFrame({"loss": [0.5, 1e6], "sharpness": [lambda0, np.nan]}, index=[0, 1])
        else:
            up_l = 1.3 if k >= th["loss"] else 0.6
            up_s = 1.1 if k >= th["sharp"] else 0.9
            history = pd.DataFrame({"loss": 0.5 * np.array([1, up_l, 0.5 * up_l, 0.2 * up_l]),
                                    "sharpness": lambda0 * np.array([1, up_s, 0.5, 0.4])}, index=range(STEPS))  # fmt: skip
        history["loss_ratio"] = history["loss"] / history["loss"].iloc[0]
        history["sharpness_ratio"] = history["sharpness"] / lambda0
        history["eta_sharpness"] = eta * history["sharpness"]
        tracking.log_history(child, history)
        metrics = {"lambda0": lambda0, "eta": eta, "diverged": float(diverged), "hvps": 10.0}
        if th["sharp"] <= k <= th["barrier"]:  # the barrier is measured only inside its bracket
            metrics["barrier"] = 1e300 if diverged else (0.3 if k >= th["barrier"] else 0.0)
            s = np.linspace(0, 1, 11)
            bump = 0.3 * np.sin(np.pi * s) if k >= th["barrier"] else 0.0
            tracking.log_table(child, pd.DataFrame({"s": s, "loss": 0.5 * (1 - s) + 0.1 * s + bump}), "interpolation.csv")
        tracking.log_metrics(child, metrics)
        tracking.finish_run(child)
        children.append(child)
    constants = {"c_loss": 2.0 ** x_of(th["loss"]), "c_sharp": 2.0 ** x_of(th["sharp"]),
                 "c_max": 2.0 ** x_of(th["max"] - 1), "c_barrier": 2.0 ** x_of(th["barrier"])}  # fmt: skip
    if finish:
        tracking.log_metrics(parent, {"lambda0": lambda0, **constants, "n_runs": len(points), "hvps": 70.0,
                                      "non_monotone": 0.0})  # fmt: skip
        tracking.set_tags(parent, {"phasediag.non_monotone": "none"})
        tracking.finish_run(parent)
    return parent, children


def build_fake_store(experiment: str = FAKE) -> dict:
    made = {"parents": {}, "children": {}}
    for depth in DEPTHS:
        for width in WIDTHS:
            for seed in SEEDS:
                parent, children = log_fake_search(experiment, depth, width, seed)
                made["parents"][(depth, width, seed)] = parent
                made["children"][parent] = children
    made["running"], _ = log_fake_search(experiment, 3, 16, 7, finish=False, kids=False)  # unfinished: left out
    with tracking.run(experiment, "saturation", {"loss": "mse", "width": 16}) as run_id:
        tracking.log_metrics(run_id, {"c_crit": 2.14})
    log_fake_search("half", 2, 8, 0, finish=False, kids=False)  # an experiment whose only search is still running
    return made


@pytest.fixture(scope="module")
def fake_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake-store")
    uri = f"sqlite:///{folder}/mlruns.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        patch.chdir(folder)
        made = build_fake_store()
    return {"uri": uri, **made}


@pytest.fixture
def fake(fake_store, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fake_store["uri"])
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    return fake_store


# --- independent recomputation ------------------------------------------------------------------------------------


def recompute_constants(experiment: str) -> pd.DataFrame:
    """Per finished search, the constants from its children's histories and run metrics by the ledger's rules."""
    searches = tracking.searches(experiment, status="FINISHED")
    children = tracking.runs(experiment)
    histories = tracking.histories(children["run_id"], ["loss", "loss_ratio", "sharpness_ratio"])
    wide = histories.pivot_table(index=["run_id", "step"], columns="metric", values="value")
    rows = []
    for search in searches.itertuples():
        ledger = Ledger(int(math.floor((search.x_max - search.x_min) / search.resolution + 1e-9)) + 1)
        for child in children[children["parent_run_id"] == search.run_id].itertuples():
            h = wide.loc[child.run_id].reindex(columns=["loss", "loss_ratio", "sharpness_ratio"])
            sharp = h["sharpness_ratio"].to_numpy()
            barrier = None if np.isnan(child.barrier) else child.barrier
            answers = trial_answers(h["loss_ratio"].to_numpy(), sharp if np.isfinite(sharp[1:]).any() else None,
                                    h["loss"].to_numpy(), barrier, search.eps)  # fmt: skip
            if child.diverged:  # a non-finite loss is not logged: the run metric says it diverged
                answers = {q: True for q in answers}
            ledger.record(int(round((child.x - search.x_min) / search.resolution)), answers)
        assert ledger.complete, search.study
        constants = ledger.constants(lambda k: round(search.x_min + k * search.resolution, 10))
        rows.append({"run_id": search.run_id, "depth": search.depth, "width": search.width, "seed": search.seed, **constants})
    return pd.DataFrame(rows)


def check_diagram_against_recomputation(experiment: str, out: Path, x: str) -> None:
    recomputed = recompute_constants(experiment)
    per_seed = pd.read_csv(out / f"relations_{x}.csv")
    merged = per_seed.merge(recomputed, on=["run_id", "depth", "width", "seed"], suffixes=("", "_re"))
    assert len(merged) == len(recomputed) == len(per_seed)
    for name in diagram.CONSTANTS:
        np.testing.assert_allclose(merged[name], merged[f"{name}_re"], rtol=1e-9, equal_nan=True, err_msg=name)
    summary = pd.read_csv(out / f"phase_diagram_{x}.csv")
    grouped = recomputed.groupby(["depth", "width"])
    for name in diagram.CONSTANTS:
        expected = pd.DataFrame({"mean": grouped[name].mean(), "q25": grouped[name].quantile(0.25),
                                 "q75": grouped[name].quantile(0.75), "n": grouped[name].count()}).reset_index()  # fmt: skip
        got = summary.merge(expected, on=["depth", "width"])
        assert len(got) == len(expected) == len(summary)
        for stat in ("mean", "q25", "q75", "n"):
            np.testing.assert_allclose(got[f"{name}_{stat}"], got[stat], rtol=1e-9, equal_nan=True, err_msg=f"{name}_{stat}")


def check_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 20_000, path
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # not blank


def artifacts(run_id: str) -> set[str]:
    return {f.path for f in MlflowClient(tracking_uri=tracking.tracking_uri()).list_artifacts(run_id)}


def analysis_runs(experiment: str) -> pd.DataFrame:
    return tracking.runs_of_kind(experiment, "analysis")


# --- queries --------------------------------------------------------------------------------------------------------


def test_searches_one_row_per_parent_with_typed_params_and_constants(fake):
    table = tracking.searches(FAKE)
    assert len(table) == len(DEPTHS) * len(WIDTHS) * len(SEEDS) + 1
    assert set(table["status"]) == {"FINISHED", "RUNNING"}
    for name in ("depth", "width", "seed"):
        assert table[name].dtype == np.int64
    assert table["x_min"].dtype == float and table["resolution"].dtype == float
    assert table["output_sigma"].isna().all() and table["barrier"].dtype == bool
    row = table[table["run_id"] == fake["parents"][(3, 8, 1)]].iloc[0]
    th = thresholds(3, 8, 1)
    assert row["study"] == f"{FAKE}-fcn-d3-w8-s1" and row["n_runs"] == 7 and row["non_monotone"] == 0
    assert row["c_loss"] == pytest.approx(2.0 ** x_of(th["loss"])) and row["c_max"] == pytest.approx(2.0 ** x_of(th["max"] - 1))
    assert row["non_monotone_questions"] == "none"
    running = table[table["status"] == "RUNNING"].iloc[0]
    assert math.isnan(running["c_loss"])
    assert len(tracking.searches(FAKE, depth=2, status="FINISHED")) == len(WIDTHS) * len(SEEDS)
    assert len(tracking.searches(FAKE, width=[8, 16], seed="1")) == len(DEPTHS) * len(WIDTHS)
    assert tracking.searches("no-such-experiment").empty


def test_runs_and_histories_in_bulk(fake):
    parent = fake["parents"][(2, 16, 0)]
    children = tracking.runs(FAKE, parent_run_id=parent)
    assert list(children["run_id"]) == list(fake["children"][parent])  # sorted by x = log2 c, as logged
    assert (children["parent_run_id"] == parent).all() and children["x"].is_monotonic_increasing
    np.testing.assert_allclose(children["c"], 2.0 ** children["x"], rtol=1e-4)
    for name in ("lambda0", "eta", "diverged", "hvps", "barrier"):
        assert name in children
    assert "loss_ratio" not in children and (children["loss"] == "mse").all()  # the param, not a history
    assert "param_barrier" in children  # a param named like a run metric is renamed
    assert children["barrier"].notna().sum() == 2
    everything = tracking.runs(FAKE)
    assert len(everything) == sum(len(c) for c in fake["children"].values())
    history = tracking.histories(everything["run_id"], ["loss", "sharpness_ratio"])
    assert list(history.columns) == ["run_id", "metric", "step", "value"] and history["step"].dtype == np.int64
    per_run = history[history["metric"] == "loss"].groupby("run_id").size()
    assert set(per_run.index) == set(everything["run_id"])
    assert set(per_run[everything.set_index("run_id")["diverged"] == 1]) == {2}
    assert set(per_run[everything.set_index("run_id")["diverged"] == 0]) == {STEPS}
    one = history[(history["run_id"] == children["run_id"].iloc[0]) & (history["metric"] == "loss")]
    np.testing.assert_allclose(one["value"], 0.5 * np.array([1, 0.6, 0.3, 0.12]))
    assert tracking.histories([], ["loss"]).empty


# --- diagram ---------------------------------------------------------------------------------------------------------


def test_diagram_tables_match_an_independent_recomputation_and_are_logged(fake, tmp_path, caplog):
    before = set(analysis_runs(FAKE)["run_id"])
    assert cli.main(["diagram", "--experiment", FAKE, "--out", str(tmp_path / "d")]) == 0
    out = tmp_path / "d"
    check_diagram_against_recomputation(FAKE, out, "width")
    summary = pd.read_csv(out / "phase_diagram_width.csv")
    assert len(summary) == len(DEPTHS) * len(WIDTHS) and (summary["c_loss_n"] == len(SEEDS)).all()  # RUNNING left out
    fits = pd.read_csv(out / "phase_diagram_width_fits.csv")
    for depth in DEPTHS:
        points = summary[summary["depth"] == depth]
        for name in diagram.CONSTANTS:
            row = fits[(fits["depth"] == depth) & (fits["constant"] == name)].iloc[0]
            assert row["n_points"] == len(WIDTHS) == 2 and np.isnan(row[["a0", "a1", "a2"]].astype(float)).all()
    warned = [r.getMessage() for r in caplog.records if "fewer than 3 for its quadratic fit: no curve drawn" in r.getMessage()]
    assert len(warned) == len(DEPTHS) * len(diagram.CONSTANTS) and "c_loss at depth=2 has 2 point(s)" in " ".join(warned)
    files = {p.name for p in out.iterdir()}
    for stem in ("phase_diagram_width", "relations_width", "barrier_width"):
        assert {f"{stem}.png", f"{stem}.csv"} <= files
        check_png(out / f"{stem}.png")
    (new,) = set(analysis_runs(FAKE)["run_id"]) - before
    assert artifacts(new) == files
    run = analysis_runs(FAKE).set_index("run_id").loc[new]
    assert run["analysis"] == "diagram" and run["x"] == "width" and run["status"] == "FINISHED"


def test_diagram_against_depth_has_a_panel_per_width(fake, tmp_path):
    result = diagram.diagram(FAKE, "depth", tmp_path, log=False)
    fits = result.tables["phase_diagram_depth_fits"]
    assert set(fits["width"]) == set(WIDTHS) and "depth" not in fits
    check_diagram_against_recomputation(FAKE, tmp_path, "depth")
    check_png(tmp_path / "phase_diagram_depth.png")


@pytest.mark.parametrize("experiment", ["half", "never-made"])
def test_no_finished_searches_exit_2_without_a_run(fake, tmp_path, capsys, experiment):
    before = tracking.experiment_id(experiment, create=False)
    runs_before = len(analysis_runs(experiment)) if before else 0
    for command in (["diagram"], ["claims"]):
        assert cli.main([*command, "--experiment", experiment, "--out", str(tmp_path)]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("phasediag: error:") and "\n" not in error and experiment in error
    assert tracking.experiment_id(experiment, create=False) == before  # nothing created
    if before:
        assert len(analysis_runs(experiment)) == runs_before == 0
    assert not list(tmp_path.iterdir())


def test_bad_x_is_refused(fake, capsys):
    assert cli.main(["diagram", "--experiment", FAKE, "--x", "seed"]) == 2
    assert "x='seed' is not allowed" in capsys.readouterr().err


# --- trajectories ------------------------------------------------------------------------------------------------------


def test_trajectories_of_chosen_c_with_interpolations(fake, tmp_path, capsys):
    parent = fake["parents"][(2, 8, 0)]
    th = thresholds(2, 8, 0)
    cs = [2.0 ** x_of(th["loss"]), 2.0 ** x_of(th["barrier"]), 2.0 ** x_of(th["max"])]
    study = f"{FAKE}-fcn-d2-w8-s0"
    assert cli.main(["trajectories", "--experiment", FAKE, "--search", study, "--c", *(f"{c:.5f}" for c in cs),
                     "--out", str(tmp_path)]) == 0  # fmt: skip
    table = pd.read_csv(tmp_path / f"trajectories_{study}.csv")
    np.testing.assert_allclose(sorted(table["c"].unique()), cs, rtol=1e-6)
    assert table.groupby("c").size().tolist() == [STEPS, STEPS, 2]  # the divergent run stops
    np.testing.assert_allclose(table["two_over_eta"], 2.0 / table["eta"])
    curves = pd.read_csv(tmp_path / f"interpolation_{study}.csv")
    assert curves["c"].nunique() == 1 and curves["c"].iloc[0] == pytest.approx(cs[1]) and len(curves) == 11
    check_png(tmp_path / f"trajectories_{study}.png")
    (run,) = analysis_runs(FAKE).query("analysis == 'trajectories' and search == @parent")["run_id"]
    assert artifacts(run) == {p.name for p in tmp_path.iterdir()}
    # by run id, every child; a c that was not trained is an error naming the trained ones
    assert diagram.trajectories(FAKE, parent, out=tmp_path / "all", log=False).tables["trajectories"]["run_id"].nunique() == 7
    assert cli.main(["trajectories", "--experiment", FAKE, "--search", parent, "--c", "1.0", "--log", "false"]) == 2
    assert "c=1 was not trained" in capsys.readouterr().err
    assert cli.main(["trajectories", "--experiment", FAKE, "--search", "nope", "--log", "false"]) == 2



def test_trajectories_without_search_on_several_lists_the_choices(fake, capsys):
    assert cli.main(["trajectories", "--experiment", FAKE, "--log", "false"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "search=None" not in err, err
    assert f"experiment {FAKE!r} holds" in err and "choose one with --search" in err and f"{FAKE}-fcn-d2-w8-s1" in err and "(9 in all)" in err

# --- claims ---------------------------------------------------------------------------------------------------------------


def test_claims_command_prints_and_logs_markdown(fake, tmp_path, capsys):
    assert cli.main(["claims", "--experiment", FAKE, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    text = (tmp_path / "claims.md").read_text()
    assert text in printed and "| censored as c_max: measured [95 % interval] | result | censored left out:" in text
    table = pd.read_csv(tmp_path / "claims.csv")
    crit = table[table["claim"].str.contains("vicinity of c = 2")].iloc[0]
    assert crit["measured"] == pytest.approx(2.14) and crit["result"] == "pass"
    ineq = table[table["claim"].str.startswith("c_loss <= c_sharp <= c_max per seed")].iloc[0]
    assert ineq["measured"] == 1.0 and ineq["result"] == "pass"
    trend = table[table["claim"].str.startswith("log2 c_loss increases with 1/w")]
    assert len(trend) == len(DEPTHS) and trend["low"].notna().all()  # 2 seeds per point: an interval each
    (run,) = analysis_runs(FAKE).query("analysis == 'claims'")["run_id"]
    assert artifacts(run) == {"claims.md", "claims.csv"}


# --- slow: the real tiny sweep, and an mlflow server ---------------------------------------------------------------


@pytest.mark.slow
def test_tiny_sweep_diagram_trajectories_claims(tiny_sweep, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tiny_sweep["uri"])
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["diagram", "--experiment", "tiny"]) == 0  # default out: out/tiny; one width: x = depth
    out = tmp_path / "out" / "tiny"
    check_diagram_against_recomputation("tiny", out, "depth")
    for stem in ("phase_diagram_depth", "relations_depth", "barrier_depth"):
        check_png(out / f"{stem}.png")
    search = tracking.searches("tiny").iloc[0]
    assert cli.main(["trajectories", "--experiment", "tiny", "--search", search["study"]]) == 0
    table = pd.read_csv(out / f"trajectories_{search['study']}.csv")
    assert table["run_id"].nunique() == min(int(search["n_runs"]), diagram.MAX_TRAJECTORIES)
    check_png(out / f"trajectories_{search['study']}.png")
    assert cli.main(["claims", "--experiment", "tiny"]) == 0
    kinds = tracking.runs_of_kind("tiny", "analysis")["analysis"].value_counts().to_dict()
    assert kinds == {"diagram": 1, "trajectories": 1, "claims": 1}


@pytest.mark.slow
def test_queries_are_the_same_on_an_mlflow_server(mlflow_server, tmp_path, monkeypatch):
    frames = {}
    for name, uri in (("sqlite", f"sqlite:///{tmp_path}/mlruns.db"), ("server", mlflow_server)):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
        monkeypatch.chdir(tmp_path)
        for seed in SEEDS:
            log_fake_search(FAKE, 2, 8, seed)
        searches = tracking.searches(FAKE).sort_values("seed").reset_index(drop=True)
        children = tracking.runs(FAKE)
        history = tracking.histories(children["run_id"], tracking.HISTORY_METRICS)
        curves = tracking.interpolations(children["run_id"])
        ids = dict(zip(children["run_id"], children["seed"].astype(str) + "@" + children["x"].astype(str)))
        ids |= dict(zip(searches["run_id"], "parent" + searches["seed"].astype(str)))
        frames[name] = [
            searches.drop(columns=["run_id", "start_time", "end_time", "run_name"]),
            children.assign(run_id=children["run_id"].map(ids), parent_run_id=children["parent_run_id"].map(ids))
            .drop(columns=["start_time", "end_time", "run_name"]).sort_values("run_id").reset_index(drop=True),
            history.assign(run_id=history["run_id"].map(ids)).sort_values(["run_id", "metric", "step"]).reset_index(drop=True),
            curves.assign(run_id=curves["run_id"].map(ids)).sort_values(["run_id", "s"]).reset_index(drop=True),
        ]  # fmt: skip
    for local, remote in zip(frames["sqlite"], frames["server"]):
        assert len(local) > 0
        pd.testing.assert_frame_equal(local, remote, check_dtype=False)


@pytest.mark.parametrize("n_children", [5, 13, 30, 60])
def test_default_trajectories_are_an_even_spread_with_the_constants(n_children):
    x = np.round(np.linspace(-1, 4, n_children), 4)
    children = pd.DataFrame({"run_id": [f"r{i}" for i in range(n_children)], "x": x, "c": 2.0**x})
    parent = pd.Series({"study": "s", "resolution": 0.1, "c_loss": 2.0 ** x[n_children // 3], "c_sharp": 2.0 ** x[n_children // 3 + 1],
                        "c_max": 2.0 ** x[-2], "c_barrier": np.nan})  # fmt: skip
    chosen = diagram.choose_runs(children.sample(frac=1.0, random_state=0), parent, None)
    assert len(chosen) == min(n_children, diagram.MAX_TRAJECTORIES)
    assert chosen["x"].is_monotonic_increasing and chosen["run_id"].is_unique
    assert {x[0], x[-1], x[n_children // 3], x[n_children // 3 + 1], x[-2]} <= set(chosen["x"])


def test_censored_flags_reach_the_tables_and_the_relations_plot(tmp_path):
    """Per-seed censored flags (critical.censor) become a fraction per point in the summary; censored seeds are drawn
    hollow (their face is transparent) in the relations figure."""
    from phasediag.plots import phase as phase_plots

    frame = pd.DataFrame({"depth": 2, "width": [8, 8, 8, 16], "seed": [0, 1, 2, 0], "c_loss": [2.0, 2.5, 2.5, 2.1],
                          "c_sharp": [2.5, 2.5, 2.5, 2.3], "c_max": [3.0, 2.5, 2.5, 3.0], "c_barrier": [2.8, 2.5, 2.5, 2.9],
                          "c_loss_censored": [0.0, 0.0, 1.0, 0.0], "c_sharp_censored": [0.0, 1.0, 1.0, 0.0],
                          "c_barrier_censored": [0.0, 1.0, 1.0, 0.0]})  # fmt: skip
    frame["inv_width"] = 1.0 / frame["width"]
    summary, _ = diagram.summarize(frame, "width")
    w8 = summary[summary["width"] == 8].iloc[0]
    assert w8["c_loss_censored_frac"] == pytest.approx(1 / 3) and w8["c_sharp_censored_frac"] == pytest.approx(2 / 3)
    assert summary[summary["width"] == 16].iloc[0]["c_sharp_censored_frac"] == 0
    path = phase_plots.save(phase_plots.relations(frame, "width", []), tmp_path / "relations.png")
    check_png(path)
    hollow = phase_plots._censored(frame, "c_loss") | phase_plots._censored(frame, "c_sharp")
    assert hollow.tolist() == [False, True, True, False]
