# EPSD with DLB on the demo shapes: prune at init to `sparsity` by the meta-gradient of DLB's
# own loss, then train the sparse network with DLB (Shen et al., CVPR 2022; tau=3, alpha=1).
_base_ = ['./_base_/cls_demo.py']
sparsity = 0.9

model = dict(sd=dict(type='DLB', tau=3.0, loss_weight=1.0))
# DLB distils the previous batch under a second augmentation: two views per sample
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[{{_base_.augment}}]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline),
                        collate_fn=dict(type='multiview_collate'))
custom_hooks = [
    dict(type='PruningHook', criterion=dict(type='epsd', inner_steps=3, inner_lr=0.1),
         sparsity=sparsity, min_kept_per_layer=4),
    dict(type='SelfDistillHook'),
]
