#!/usr/bin/env bash
# Fig. 1: loss, sharpness (with 2/eta) and accuracy of a Myrtle CNN (d = 5, SP) on CIFAR-10, MSE, SGD B = 512, over
# 1000 epochs (98 steps each: 98000 steps) with the paper's measurement schedule (every step of the first epoch,
# every epoch from 10 to 100, every 10 epochs beyond; App. A.3), L_t and the accuracy on the training set on the
# same schedule (--loss_schedule paper: 280 evaluations of the 50000 images instead of 98000; the mini-batch loss at
# every step). The main-text caption says w = 512, App. A.3 says
# w = 128: we take the caption's 512 (pass --width 128 for A.3's). The c values are not stated: 0.5, 2, 4, 8 span
# the phases of Fig. 2's shallow CNN (c_loss = 2.82, c_sharp = 5.65, c_max = 17.1). One seed. GPU work.
# PHASEDIAG may name another executable (the tests set it to echo the command lines).
set -euo pipefail
PHASEDIAG=${PHASEDIAG:-phasediag}
for c in 0.5 2 4 8; do
  $PHASEDIAG run --arch cnn --depth 5 --width 512 --dataset cifar10 --loss mse --batch_size 512 --steps 98000 \
    --schedule paper --loss_schedule paper --c $c --seed 0 --experiment fig1_cnn_cifar10_long "$@"
done
