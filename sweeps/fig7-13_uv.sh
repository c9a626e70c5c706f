#!/usr/bin/env bash
# Figs. 7-13 / Sec. 5, App. B: the uv model trained on (x, y) = (1, 0) with GD, 500 initialisations per width,
# w in {2, 4, ..., 512}, c = 2^x on x in [-1, 4] step 0.1, T1 = 10, tau = 100, derivatives for c <= 3.5 (App. B.2).
# Writes uv_critical.csv (per init: Figs. 12, 13), uv_saturation.csv (Fig. 10), uv_first_step.csv (Fig. 11),
# uv_trajectories.csv (Figs. 8, 9) and their figures. Seconds on a CPU.
# PHASEDIAG may name another executable (the tests set it to echo the command lines).
set -euo pipefail
PHASEDIAG=${PHASEDIAG:-phasediag}
$PHASEDIAG uv --widths 2 4 8 16 32 64 128 256 512 --inits 500 --seed 0 --c_step 0.1 --steps 10 --out out/uv --experiment uv "$@"
