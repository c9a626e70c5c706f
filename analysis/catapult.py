"""Where the loss catapult sits for each optimizer and normalisation of eta: c_loss (the loss rises within T1 steps),
bisected on x = log2 c to 0.05, assuming monotone answers (docs/optimizers.md, "What the measurements show").

    python analysis/catapult.py --width 512 sgd momentum nesterov nesterov:update sgd:update adam adam:zero adamw adam:sharpness
"""

import argparse

import numpy as np
import torch

from phasediag.run import runner
from phasediag.run.config import RunConfig

# NAME[:VARIANT] -> options: update / sharpness choose eta_curvature, zero adam_v0, adamw adds weight decay 0.01
VARIANTS = {"update": {"eta_curvature": "update"}, "sharpness": {"eta_curvature": "sharpness"}, "zero": {"adam_v0": "zero"}}


def options(setting: str) -> dict:
    name, _, variant = setting.partition(":")
    found = {"optimizer": name, **VARIANTS.get(variant, {})}
    return {**found, "weight_decay": 0.01} if name == "adamw" else found


def c_loss(init: runner.Initialization, lo: float, hi: float, step: float = 0.05) -> tuple[float, float] | None:
    """(largest c known not to rise, smallest c known to rise) on the grid x = lo + k step; None if hi does not rise."""

    def rises(x: float) -> bool:
        result = runner.train(init, 2.0**x, sharpness=False, barrier=False)
        return result.diverged or bool(np.nanmax(result.history["loss_ratio"].to_numpy()[1:]) > 1)

    if not rises(hi):
        return None
    while hi - lo > step + 1e-9:
        mid = min(max(lo + round((hi - lo) / 2 / step) * step, lo + step), hi - step)
        lo, hi = (lo, mid) if rises(mid) else (mid, hi)
    return 2.0**lo, 2.0**hi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help="optimizer[:update|sharpness|zero], e.g. adam:sharpness")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--subset", type=int, default=4096)
    parser.add_argument("--x_max", type=float, default=12.0, help="the largest log2 c tried")
    parser.add_argument("--data_dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for setting in args.settings:
        config = RunConfig(arch="fcn", depth=4, width=args.width, dataset="fashion_mnist", subset=args.subset,
                           measure_examples=1024, batch_size=512, seed=0, log_checkpoints=False, data_dir=args.data_dir,
                           **options(setting))  # fmt: skip
        init = runner.initialize(config)
        found = c_loss(init, -2.0, args.x_max)
        where = f"in ({found[0]:.3g}, {found[1]:.3g}]" if found else f"above {2**args.x_max:g}"
        print(f"{setting}: lambda0 {init.lambda0.value:.4g}, eta_curvature {init.eta_curvature:.4g}, c_loss {where}", flush=True)


if __name__ == "__main__":
    main()
