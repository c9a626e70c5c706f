#!/usr/bin/env bash
# Fig. 40 / App. I: <lambda_tau/lambda_0> at c tau = 200 for ResNet-18/34 (no normalisation) on CIFAR-10, MSE,
# SGD B = 512, w in {32, 64, 128}, ten initialisations. GPU work.
# One `phasediag saturation` run per (d, w[, B]); each logs c_crit, saturation.csv and saturation_curve.csv.
# --loss_schedule with_sharpness: L_t on the training set only in the sharpness window and at the last step (the
# mini-batch loss checks divergence in between): the scan needs lambda_tau, not L_t.
# PHASEDIAG may name another executable (the tests set it to echo the command lines).
set -euo pipefail
PHASEDIAG=${PHASEDIAG:-phasediag}
for d in 18 34; do for w in 32 64 128; do
  $PHASEDIAG saturation --loss_schedule with_sharpness --arch resnet --depth $d --width $w --dataset cifar10 --loss mse --batch_size 512 --seeds 0..9 \
    --experiment fig40_resnet_cifar10_saturation --out out/fig40_resnet_cifar10_saturation/d$d-w$w "$@"
done; done
