"""The MLflow UI in a real browser: a small experiment tracked through `mlflow server`, headless Chromium opening
exactly the runs-table address the commands print. The test saves a screenshot of that page (runs_table.png in its
tmp folder; docs/figures/mlflow_runs_table.png is one, cropped to the table).

Chromium comes from Debian (`apt-get install chromium`, done by `make services`). Without it the test fails under
CI (CI=true) naming `make services`, and is skipped elsewhere. Everything listens on 127.0.0.1 only; every wait is
bounded.
"""

import html
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from phasediag import cli
from phasediag import tracking
from servers import running_mlflow_server

BROWSER_TIMEOUT = 120  # s for one Chromium page load (the JS app, then its API calls)
VIRTUAL_TIME_MS = 20000  # time Chromium gives the page's JavaScript to render
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WINDOW = "2400,1000"  # px: wide enough for every column of the runs table beside the UI's side panels
EXPERIMENT = "browser-check"
SMALL = ["--arch", "fcn", "--depth", "3", "--width", "16", "--dataset", "synthetic:1x4x4:128", "--measure_examples", "64",
         "--batch_size", "32", "--steps", "3", "--seed", "0", "--log_checkpoints", "false", "--accelerator", "cpu",
         "--experiment", EXPERIMENT]  # fmt: skip
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio"]  # fmt: skip


def chromium() -> str:
    """The Chromium binary (PHASEDIAG_CHROMIUM, else chromium on PATH, else /usr/bin/chromium)."""
    found = os.environ.get("PHASEDIAG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(found, os.X_OK):
        message = "chromium not found: run `make services` (it installs Debian's chromium) to run the browser test"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def rendered_dom(browser: str, url: str, profile: Path) -> str:
    """The DOM after the page's JavaScript ran (Chromium --dump-dom), with a fresh profile."""
    argv = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            f"--window-size={WINDOW}", "--dump-dom", url]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, timeout=BROWSER_TIMEOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not render {url} within {BROWSER_TIMEOUT} s", pytrace=False)
    dom = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0 and dom, f"chromium exited {done.returncode}: {done.stderr.decode()[-2000:]}"
    return dom


def visible_text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", dom, flags=re.S | re.I)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))


def screenshot(browser: str, url: str, profile: Path, path: Path) -> bytes:
    """A PNG of the rendered page at WINDOW, with a fresh profile."""
    argv = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            f"--window-size={WINDOW}", f"--screenshot={path}", url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, timeout=BROWSER_TIMEOUT, stdin=subprocess.DEVNULL,
                          start_new_session=True)  # fmt: skip
    assert done.returncode == 0 and path.is_file(), f"chromium exited {done.returncode}: {done.stderr.decode()[-2000:]}"
    return path.read_bytes()


def printed_urls(out: str) -> list[str]:
    return re.findall(r"^runs table: (\S+)", out, flags=re.M)


@pytest.mark.slow
def test_mlflow_ui_opens_the_printed_runs_table(store, tmp_path, capsys, monkeypatch):
    browser = chromium()
    with running_mlflow_server(store, tmp_path) as url:
        # A small finished experiment tracked through the server: one search (a parent and its children), one lone
        # run, and one analysis run with a PNG. Each command prints the runs table's address.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        assert cli.main(["search", *SMALL, "--x_max", "3", "--resolution", "0.5"]) == 0
        search_out = capsys.readouterr().out
        assert cli.main(["run", *SMALL, "--c", "3"]) == 0
        run_out = capsys.readouterr().out
        figures = tmp_path / "figures"
        figures.mkdir()
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        fig.savefig(figures / "browser_check.png")
        plt.close(fig)
        analysis_id = tracking.log_artifact_run(EXPERIMENT, "analysis", {}, {}, figures)
        experiment_id = tracking.experiment_id(EXPERIMENT, create=False)
        parent = tracking.searches(EXPERIMENT).iloc[0]
        children = tracking.runs(EXPERIMENT)

        # Both commands print the same address, on this server, of this experiment's runs table.
        (runs_page,) = set(printed_urls(search_out) + printed_urls(run_out))
        assert len(printed_urls(search_out)) == len(printed_urls(run_out)) == 1, search_out + run_out
        assert runs_page.startswith(f"{url}/#/experiments/{experiment_id}/runs?"), runs_page

        # Exactly that address: the training runs table (not the GenAI overview), the search parent (its children
        # nested under it, counted), the lone run, and the constants and key params as columns with their values.
        text = visible_text(rendered_dom(browser, runs_page, tmp_path / "profile-runs"))
        assert EXPERIMENT in text and "Traces 0" not in text, f"not the runs table at {runs_page}: {text[:1500]}"
        assert parent["study"] in text, f"the search parent is not in the runs table: {text[:1500]}"
        assert re.search(r"(?<![\w.=])c=3(?![\w.])", text), f"the lone run c=3 is not in the runs table: {text[:1500]}"
        total = 1 + len(children) + 1  # the parent, the trained runs (its children and the lone run), the analysis run
        assert f"{total} matching runs" in text, text[:1500]
        for _, name in tracking.RUNS_TABLE_COLUMNS:
            assert re.search(rf"(?<![\w.]){name}(?![\w.])", text), f"no column {name} in the runs table: {text[:1500]}"
        c_loss = repr(float(parent["c_loss"]))  # the UI shows a metric's full value
        assert c_loss in text, f"c_loss={c_loss} not shown: {text[:1500]}"
        shot = screenshot(browser, runs_page, tmp_path / "profile-shot", tmp_path / "runs_table.png")
        assert shot[:8] == PNG_SIGNATURE and len(shot) > 10_000

        # The analysis run's artifact page: the UI lists the PNG and shows it as an image.
        artifact_page = f"{url}/#/experiments/{experiment_id}/runs/{analysis_id}/artifacts/browser_check.png"
        dom = rendered_dom(browser, artifact_page, tmp_path / "profile-artifact")
        assert "browser_check.png" in visible_text(dom)
        assert re.search(r'<img[^>]*alt="browser_check.png"[^>]*src="(blob|data|http)', dom) or re.search(
            r'<img[^>]*src="(blob|data|http)[^"]*"[^>]*alt="browser_check.png"', dom
        ), "the PNG is not shown on the artifact page"

        # The artifact itself through the server's artifact API: the same bytes as the file, a PNG.
        query = urllib.parse.urlencode({"path": "browser_check.png", "run_uuid": analysis_id})
        status, body = get(f"{url}/get-artifact?{query}")
        assert status == 200 and body[:8] == PNG_SIGNATURE
        assert body == (figures / "browser_check.png").read_bytes()
