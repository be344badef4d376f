# Dense CS-KD, the baseline without pruning: ResNet-50 on CUB-200-2011 trained with
# class-wise self-knowledge distillation (Yun et al., CVPR 2020).
# epsd_cskd_r50_cub.py and snip_cskd_r50_cub.py: this config plus a pruning hook.
#
#   python tools/train.py configs/classification/cub/dense_cskd_r50_cub.py
_base_ = [
    '../../_base_/models/sd_resnet50.py',
    '../../_base_/datasets/cub.py',
    '../../_base_/schedules/cub_200e.py',
    '../../_base_/default_runtime.py',
]

# lambda = 3 on CUB, as in CS-KD's fine-grained recipe
model = dict(
    sd=dict(type='CSKD', tau=4.0, loss_weight=3.0),
    head=dict(num_classes=200))
# 32 samples, each followed by a same-class partner
# (schedules/cub_200e.py)
train_dataloader = dict(batch_size=32, batch_sampler=dict(type='ClassPairBatchSampler'))
custom_hooks = [dict(type='SelfDistillHook')]
