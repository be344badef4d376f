# Dense CS-KD, the baseline without pruning: ResNet-50 on ImageNet trained with
# class-wise self-knowledge distillation (Yun et al., CVPR 2020).
# epsd_cskd_r50_imagenet.py and snip_cskd_r50_imagenet.py: this config plus a pruning hook.
#
#   python tools/train.py configs/classification/imagenet/dense_cskd_r50_imagenet.py
_base_ = [
    '../../_base_/models/sd_resnet50.py',
    '../../_base_/datasets/imagenet.py',
    '../../_base_/schedules/imagenet_100e.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    sd=dict(type='CSKD', tau=4.0, loss_weight=1.0),
    head=dict(num_classes=1000))
# 32 samples per GPU (x 8 GPUs = 256), each followed by a same-class partner
# (schedules/imagenet_100e.py)
train_dataloader = dict(batch_size=32, batch_sampler=dict(type='ClassPairBatchSampler'))
custom_hooks = [dict(type='SelfDistillHook')]
