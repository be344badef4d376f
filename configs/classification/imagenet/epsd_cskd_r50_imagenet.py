# EPSD with CS-KD: ResNet-50 on ImageNet, pruned at initialization to `sparsity` by the
# meta-gradient of CS-KD's own loss (the EPSD criterion), then trained sparse with CS-KD.
# dense_cskd_r50_imagenet.py plus the pruning hook, nothing else.
#
#   python tools/train.py configs/classification/imagenet/epsd_cskd_r50_imagenet.py
#
# `sparsity` is read when this file is parsed: change it here, or on the command line with
# --cfg-options custom_hooks.0.sparsity=0.95
_base_ = './dense_cskd_r50_imagenet.py'

sparsity = 0.8

custom_hooks = [
    dict(type='PruningHook',
         criterion=dict(type='epsd', inner_steps=3, inner_lr=0.1, first_order=False),
         sparsity=sparsity),
    dict(type='SelfDistillHook'),
]
