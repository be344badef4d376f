# EPSD with PS-KD: ResNet-50 on CUB-200-2011, pruned at initialization to `sparsity` by the
# meta-gradient of PS-KD's own loss (the EPSD criterion), then trained sparse with PS-KD.
# dense_pskd_r50_cub.py plus the pruning hook, nothing else.
#
#   python tools/train.py configs/classification/cub/epsd_pskd_r50_cub.py
#
# `sparsity` is read when this file is parsed: change it here, or on the command line with
# --cfg-options custom_hooks.0.sparsity=0.95
_base_ = './dense_pskd_r50_cub.py'

sparsity = 0.8

custom_hooks = [
    dict(type='PruningHook',
         criterion=dict(type='epsd', inner_steps=3, inner_lr=0.1, first_order=False),
         sparsity=sparsity),
    dict(type='SelfDistillHook'),
]
