# The "simple combination" baseline with PS-KD: ResNet-50 on CUB-200-2011, pruned at
# initialization to `sparsity` by SNIP (cross-entropy saliency), then trained sparse with PS-KD.
# dense_pskd_r50_cub.py plus the pruning hook, nothing else.
#
#   python tools/train.py configs/classification/cub/snip_pskd_r50_cub.py
#
# `sparsity` is read when this file is parsed: change it here, or on the command line with
# --cfg-options custom_hooks.0.sparsity=0.95
_base_ = './dense_pskd_r50_cub.py'

sparsity = 0.8

custom_hooks = [
    dict(type='PruningHook',
         criterion=dict(type='snip', num_batches=1),
         sparsity=sparsity),
    dict(type='SelfDistillHook'),
]
