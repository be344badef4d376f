# Dense DLB, the baseline without pruning: ResNet-50 on ImageNet trained with
# self-distillation from the last mini-batch (Shen et al., CVPR 2022).
# epsd_dlb_r50_imagenet.py and snip_dlb_r50_imagenet.py: this config plus a pruning hook.
#
#   python tools/train.py configs/classification/imagenet/dense_dlb_r50_imagenet.py
_base_ = [
    '../../_base_/models/sd_resnet50.py',
    '../../_base_/datasets/imagenet.py',
    '../../_base_/schedules/imagenet_100e.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    sd=dict(type='DLB', tau=3.0, loss_weight=1.0),
    head=dict(num_classes=1000))
# DLB distils the previous batch under a second augmentation: two views of every sample
train_dataloader = dict(
    # the recipe's batch per GPU (x 8 GPUs = 256) (schedules/imagenet_100e.py)
    batch_size=32,
    collate_fn=dict(type='multiview_collate'),
    dataset=dict(pipeline=[
        *_base_.train_load,
        dict(type='MultiView', num_views=2, transforms=[_base_.train_augment]),
        dict(type='PackInputs'),
    ]))
custom_hooks = [dict(type='SelfDistillHook')]
