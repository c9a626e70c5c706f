"""Presets: named sets of defaults. `--preset tiny` is a first try that takes seconds per run; `--preset paper` is
the paper's sizes, which are also the defaults. Every option you give overrides its preset's value (on the command
line, as `mlflow run -P`, in a sweep's YAML and from Python); the preset's name is logged as the param `preset`.

Light (no torch): `phasediag --help` imports it.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from phasediag.vocabulary import Preset

# tiny: about 1.5 s per run of T1 = 10 SGD steps on 2 CPU cores (FCN d = 4 on Fashion-MNIST, docs/cli.md).
PRESET_VALUES: dict[Preset, dict[str, Any]] = {
    "tiny": {"subset": 1024, "measure_examples": 256, "batch_size": 128, "width": 64},
    "paper": {},  # the defaults: the whole training split, m = 2048 (mse) or 4096 (xent), B = 512
}


def with_preset(values: Mapping[str, Any], given: Iterable[str], options: Iterable[str]) -> dict[str, Any]:
    """values with the preset's (values['preset'], if any) in place of every option of `options` not `given`."""
    preset = PRESET_VALUES.get(values.get("preset"), {})
    given, options = set(given), set(options)
    return {**values, **{k: v for k, v in preset.items() if k in options and k not in given}}
