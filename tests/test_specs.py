"""Every figure spec in sweeps/ is valid: YAML specs load with SweepSpec's validation, scripts' command lines parse
with the CLI's parser and build their configs; docs/paper-figures.md's table names every figure and existing files."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from phasediag import cli
from phasediag.search.sweep import SweepSpec

SWEEPS = Path(REPO) / "sweeps"
FIGURES = [*range(1, 44)]  # every figure of the paper: all are early-training figures


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_yaml_spec_loads_with_the_sweep_validation(path):
    spec = SweepSpec.load(path)
    assert spec.points and spec.experiment
    assert path.read_text().startswith("#"), "every spec says in a comment what it reproduces"


def test_the_fig6_specs_measure_on_all_4096_training_examples():
    for path in SWEEPS.glob("fig6_*.yaml"):
        for point in SweepSpec.load(path).points:
            assert point.run.subset == 4096 and point.run.measure_size == 4096, path.name


def test_appendix_c_fcn_specs_use_ntp_and_the_main_text_ones_sp():
    for figure in ("fig14", "fig15", "fig16"):
        (path,) = SWEEPS.glob(f"{figure}_*.yaml")
        assert {p.run.param for p in SweepSpec.load(path).points} == {"ntp"}
    for path in SWEEPS.glob("fig3[adef]_*.yaml"):
        assert {p.run.param for p in SweepSpec.load(path).points} == {"sp"}


def script_commands(path: Path) -> list[list[str]]:
    """The phasediag command lines a script would run (PHASEDIAG=echo prints them instead)."""
    printed = subprocess.run(["bash", str(path)], env={**os.environ, "PHASEDIAG": "echo"}, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    return [shlex.split(line) for line in printed.splitlines() if line.strip()]


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.sh")), ids=lambda p: p.name)
def test_every_script_command_parses_and_validates(path):
    commands = script_commands(path)
    assert commands
    for tokens in commands:
        name, config = cli.parse(tokens)  # one-line ConfigError on an unknown option or a bad value
        assert name in ("run", "saturation", "uv"), f"{path.name} runs an unexpected command {name!r}"
        if name == "saturation":
            assert len(config.seeds) >= 5 and config.out.startswith("out/")


def figure_table() -> dict[int, str]:
    """Figure number -> its row of the per-figure table of docs/paper-figures.md."""
    text = (Path(REPO) / "docs" / "paper-figures.md").read_text()
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|", line)
        if match:
            rows[int(match.group(1))] = line
    return rows


def test_the_figure_table_lists_every_figure_with_an_existing_spec():
    rows = figure_table()
    assert sorted(rows) == FIGURES
    named = set()
    for figure, line in rows.items():
        files = re.findall(r"`(?:sweeps/)?([\w.\-]+\.(?:yaml|sh))`", line)
        for name in files:
            assert (SWEEPS / name).is_file(), f"figure {figure}: {name} is not in sweeps/"
        named |= set(files)
    on_disk = {p.name for p in SWEEPS.glob("fig*")}
    assert on_disk <= named, f"specs not in docs/paper-figures.md: {sorted(on_disk - named)}"
