# EPSD with CS-KD on the demo shapes (Yun et al., CVPR 2020; tau=4, lambda=1): every batch is
# 16 samples followed by a same-class partner of each.
_base_ = ['./_base_/cls_demo.py']
sparsity = 0.9

model = dict(sd=dict(type='CSKD', tau=4.0, loss_weight=1.0))
train_dataloader = dict(batch_size=16, batch_sampler=dict(type='ClassPairBatchSampler'))
custom_hooks = [
    dict(type='PruningHook', criterion=dict(type='epsd', inner_steps=3, inner_lr=0.1),
         sparsity=sparsity, min_kept_per_layer=4),
    dict(type='SelfDistillHook'),
]
