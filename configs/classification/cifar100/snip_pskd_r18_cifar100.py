# The "simple combination" baseline with PS-KD: ResNet-18 on CIFAR-100, pruned at
# initialization to `sparsity` by SNIP (cross-entropy saliency), then trained sparse with PS-KD.
# dense_pskd_r18_cifar100.py plus the pruning hook, nothing else.
#
#   python tools/train.py configs/classification/cifar100/snip_pskd_r18_cifar100.py
#
# `sparsity` is read when this file is parsed: change it here, or on the command line with
# --cfg-options custom_hooks.0.sparsity=0.95
_base_ = './dense_pskd_r18_cifar100.py'

sparsity = 0.9

custom_hooks = [
    dict(type='PruningHook',
         criterion=dict(type='snip', num_batches=1),
         sparsity=sparsity),
    dict(type='SelfDistillHook'),
]
