#!/usr/bin/env bash
# Fig. 38 / App. I: <lambda_tau/lambda_0> at c tau = 200 for FCNs (SP, as Fig. 3) on CIFAR-10, MSE, SGD B = 512,
# d in {4, 8, 16}, w in {256..2048} (App. A's lists), ten initialisations.
# One `phasediag saturation` run per (d, w[, B]); each logs c_crit, saturation.csv and saturation_curve.csv.
# --loss_schedule with_sharpness: L_t on the training set only in the sharpness window and at the last step (the
# mini-batch loss checks divergence in between): the scan needs lambda_tau, not L_t.
# PHASEDIAG may name another executable (the tests set it to echo the command lines).
set -euo pipefail
PHASEDIAG=${PHASEDIAG:-phasediag}
for d in 4 8 16; do for w in 256 512 1024 2048; do
  $PHASEDIAG saturation --loss_schedule with_sharpness --arch fcn --depth $d --width $w --dataset cifar10 --loss mse --batch_size 512 --seeds 0..9 \
    --experiment fig38_fcn_cifar10_saturation --out out/fig38_fcn_cifar10_saturation/d$d-w$w "$@"
done; done
