# CS-KD's CIFAR recipe (Yun et al., CVPR 2020; official code alinlab/cs-kd, train.py defaults and
# README): SGD, lr 0.1, momentum 0.9 (no Nesterov), weight decay 1e-4, 200 epochs, lr x0.1 at 50 %
# and 75 % of training (epochs 100 and 150), batch 128 samples plus their 128 same-class partners
# (the configs set train_dataloader.batch_size=128 with ClassPairBatchSampler). CS-KD's code uses
# the same recipe for Tiny-ImageNet. mmpretrain's cifar10_bs128 schedule is exactly this recipe.
_base_ = 'mmpretrain::_base_/schedules/cifar10_bs128.py'
