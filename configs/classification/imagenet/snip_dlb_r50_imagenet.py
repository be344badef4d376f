# The "simple combination" baseline with DLB: ResNet-50 on ImageNet, pruned at
# initialization to `sparsity` by SNIP (cross-entropy saliency), then trained sparse with DLB.
# dense_dlb_r50_imagenet.py plus the pruning hook, nothing else.
#
#   python tools/train.py configs/classification/imagenet/snip_dlb_r50_imagenet.py
#
# `sparsity` is read when this file is parsed: change it here, or on the command line with
# --cfg-options custom_hooks.0.sparsity=0.95
_base_ = './dense_dlb_r50_imagenet.py'

sparsity = 0.8

custom_hooks = [
    dict(type='PruningHook',
         criterion=dict(type='snip', num_batches=1),
         sparsity=sparsity),
    dict(type='SelfDistillHook'),
]
