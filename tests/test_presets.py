"""--preset: a set of defaults that every option given explicitly overrides (command line, `mlflow run -P`, sweep YAML,
Python), logged as the param `preset`, and left out of a search's study identity (its resolved values are in it)."""

import pytest
import yaml

from conftest import runs_of
from phasediag import cli
from phasediag.run.config import RunConfig, parse
from phasediag.run.presets import PRESET_VALUES
from phasediag.search.config import SearchConfig

TINY = PRESET_VALUES["tiny"]


def sizes(config: RunConfig) -> dict:
    return {name: getattr(config, name) for name in TINY}


def test_the_tiny_preset_sets_its_sizes_and_the_paper_preset_is_the_defaults():
    assert sizes(cli.parse(["run", "--preset", "tiny"])[1]) == TINY
    assert sizes(cli.parse(["search", "--preset", "tiny"])[1].run) == TINY
    assert cli.parse(["run", "--preset", "paper"])[1] == RunConfig(preset="paper")
    assert sizes(RunConfig()) == {"subset": 0, "measure_examples": 0, "batch_size": 512, "width": 256}


@pytest.mark.parametrize(
    "how",
    [
        lambda values: cli.parse(["run", *[f"--{k}={v}" for k, v in values.items()]])[1],  # the command line
        lambda values: parse(RunConfig, {k: str(v) for k, v in values.items()}),  # mlflow run -P: strings
        lambda values: parse(RunConfig, values),  # a sweep's YAML, Python keyword arguments
    ],
)
def test_options_given_explicitly_override_the_preset(how):
    config = how({"preset": "tiny", "width": 8, "batch_size": 512})  # 512 is the default, given explicitly
    assert config.width == 8 and config.batch_size == 512
    assert config.subset == TINY["subset"] and config.measure_examples == TINY["measure_examples"]
    assert config.preset == "tiny"


def test_a_sweep_yaml_takes_a_preset_and_its_points_override_it(tmp_path):
    from phasediag.search.sweep import SweepSpec

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"experiment": "p", "fixed": {"preset": "tiny", "dataset": "synthetic:1x4x4:2048"},
                                    "vary": {"width": [8, 16]}}))  # fmt: skip
    points = SweepSpec.load(spec).points
    assert [p.run.width for p in points] == [8, 16]
    assert all(p.run.subset == TINY["subset"] and p.run.batch_size == TINY["batch_size"] for p in points)


def test_the_preset_is_not_part_of_a_search_identity_its_values_are():
    assert SearchConfig.from_strings({"preset": "paper"}).study_name == SearchConfig.from_strings({}).study_name
    by_preset = SearchConfig.from_strings({"preset": "tiny"})
    assert by_preset.study_name == SearchConfig.from_strings({k: v for k, v in TINY.items()}).study_name
    assert by_preset.study_name != SearchConfig.from_strings({}).study_name


def test_the_preset_is_logged_as_a_param(store):
    argv = ["run", "--preset", "tiny", "--dataset", "synthetic:1x4x4:1024", "--depth", "2", "--width", "8",
            "--accelerator", "cpu", "--log_checkpoints", "false"]  # fmt: skip
    assert cli.main(argv) == 0
    (run,) = runs_of(store)
    params = run.data.params
    assert params["preset"] == "tiny" and params["width"] == "8" and params["batch_size"] == str(TINY["batch_size"])
    assert params["measure_examples"] == str(TINY["measure_examples"])
