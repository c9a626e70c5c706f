#!/usr/bin/env bash
# Fig. 42 / App. J.2: <lambda_tau/lambda_0> at c tau = 200 for FCNs (d = 4, SP) on CIFAR-10, MSE, with the
# batch sizes of Fig. 41 (B in {32, 128, 512}) and w in {256..2048}, ten initialisations: the chi' peak broadens at small B.
# One `phasediag saturation` run per (d, w[, B]); each logs c_crit, saturation.csv and saturation_curve.csv.
# --loss_schedule with_sharpness: L_t on the training set only in the sharpness window and at the last step (the
# mini-batch loss checks divergence in between): the scan needs lambda_tau, not L_t.
# PHASEDIAG may name another executable (the tests set it to echo the command lines).
set -euo pipefail
PHASEDIAG=${PHASEDIAG:-phasediag}
for b in 32 128 512; do for w in 256 512 1024 2048; do
  $PHASEDIAG saturation --loss_schedule with_sharpness --arch fcn --depth 4 --width $w --dataset cifar10 --loss mse --batch_size $b --seeds 0..9 \
    --experiment fig42_fcn_cifar10_batch_saturation --out out/fig42_fcn_cifar10_batch_saturation/b$b-w$w "$@"
done; done
