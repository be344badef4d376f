# EPSD with PS-KD on the demo shapes (Kim et al., ICCV 2021; alpha_T=0.8): soft targets mix the
# label with the model's own prediction for the sample in the previous epoch.
_base_ = ['./_base_/cls_demo.py']
sparsity = 0.9

model = dict(sd=dict(type='PSKD', alpha_T=0.8))
custom_hooks = [
    dict(type='PruningHook', criterion=dict(type='epsd', inner_steps=3, inner_lr=0.1),
         sparsity=sparsity, min_kept_per_layer=4),
    dict(type='SelfDistillHook'),
]
