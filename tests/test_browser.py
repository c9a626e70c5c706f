"""The MLflow UI in a real browser: a small finished experiment, `mlflow server` on it, headless Chromium.

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
            "--dump-dom", url]  # fmt: skip
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


@pytest.mark.slow
def test_mlflow_ui_shows_runs_and_serves_the_png(store, tmp_path, capsys):
    browser = chromium()
    # A small finished experiment in a private SQLite store: one search (a parent and its children), one lone run,
    # and one analysis run with a PNG.
    assert cli.main(["search", *SMALL, "--x_max", "3", "--resolution", "0.5"]) == 0
    assert cli.main(["run", *SMALL, "--c", "3"]) == 0
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
    (parent,) = tracking.searches(EXPERIMENT)["study"]
    children = tracking.runs(EXPERIMENT)
    capsys.readouterr()

    with running_mlflow_server(store, tmp_path) as url:
        # The experiment page opens on the runs table (a model-development experiment, not a GenAI traces page):
        # the search parent (its children nested under it, counted), the lone run, the Dataset column.
        runs_page = f"{url}/#/experiments/{experiment_id}/runs"
        text = visible_text(rendered_dom(browser, runs_page, tmp_path / "profile-runs"))
        assert EXPERIMENT in text and "Training runs" in text, f"not the runs table at {runs_page}: {text[:1500]}"
        assert parent in text, f"the search parent is not in the runs table: {text[:1500]}"
        assert re.search(r"(?<![\w.=])c=3(?![\w.])", text), f"the lone run c=3 is not in the runs table: {text[:1500]}"
        assert "synthetic:1x4x4:128" in text, f"the Dataset column is empty: {text[:1500]}"
        total = 1 + len(children) + 1  # the parent, the trained runs (its children and the lone run), the analysis run
        assert f"{total} matching runs" in text, text[:1500]

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
