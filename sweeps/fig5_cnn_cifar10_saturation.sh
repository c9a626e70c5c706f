#!/usr/bin/env bash
# Fig. 5: <lambda_tau/lambda_0> at c tau = 200 for Myrtle CNNs (d = 7, SP) on CIFAR-10, MSE, SGD B = 512,
# w in {128, 256, 512}, five initialisations (the caption). GPU work.
# One `phasediag saturation` run per (d, w[, B]); each logs c_crit, saturation.csv and saturation_curve.csv.
# --loss_schedule with_sharpness: L_t on the training set only in the sharpness window and at the last step (the
# mini-batch loss checks divergence in between): the scan needs lambda_tau, not L_t.
# PHASEDIAG may name another executable (the tests set it to echo the command lines).
set -euo pipefail
PHASEDIAG=${PHASEDIAG:-phasediag}
for w in 128 256 512; do
  $PHASEDIAG saturation --loss_schedule with_sharpness --arch cnn --depth 7 --width $w --dataset cifar10 --loss mse --batch_size 512 --seeds 0..4 \
    --experiment fig5_cnn_cifar10_saturation --out out/fig5_cnn_cifar10_saturation/w$w "$@"
done
