# Dense DLB, the baseline without pruning: ResNet-18 on Tiny-ImageNet trained with
# self-distillation from the last mini-batch (Shen et al., CVPR 2022).
# epsd_dlb_r18_tinyimagenet.py and snip_dlb_r18_tinyimagenet.py: this config plus a pruning hook.
#
#   python tools/train.py configs/classification/tinyimagenet/dense_dlb_r18_tinyimagenet.py
_base_ = [
    '../../_base_/models/sd_resnet18_cifar.py',
    '../../_base_/datasets/tinyimagenet.py',
    '../../_base_/schedules/dlb_cifar_240e.py',
    '../../_base_/default_runtime.py',
]

# the CIFAR ResNet-18 (3x3 stem, no max-pool) at Tiny-ImageNet's 64 pixels
model = dict(
    sd=dict(type='DLB', tau=3.0, loss_weight=1.0),
    head=dict(num_classes=200))
# DLB distils the previous batch under a second augmentation: two views of every sample
train_dataloader = dict(
    # the recipe's batch (schedules/dlb_cifar_240e.py)
    batch_size=64,
    collate_fn=dict(type='multiview_collate'),
    dataset=dict(pipeline=[
        *_base_.train_load,
        dict(type='MultiView', num_views=2, transforms=[_base_.train_augment]),
        dict(type='PackInputs'),
    ]))
custom_hooks = [dict(type='SelfDistillHook')]
