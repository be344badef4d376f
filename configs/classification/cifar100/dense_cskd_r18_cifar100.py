# Dense CS-KD, the baseline without pruning: ResNet-18 on CIFAR-100 trained with
# class-wise self-knowledge distillation (Yun et al., CVPR 2020).
# epsd_cskd_r18_cifar100.py and snip_cskd_r18_cifar100.py: this config plus a pruning hook.
#
#   python tools/train.py configs/classification/cifar100/dense_cskd_r18_cifar100.py
_base_ = [
    '../../_base_/models/sd_resnet18_cifar.py',
    '../../_base_/datasets/cifar100.py',
    '../../_base_/schedules/cskd_cifar_200e.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    sd=dict(type='CSKD', tau=4.0, loss_weight=1.0),
    head=dict(num_classes=100))
# 128 samples, each followed by a same-class partner
# (schedules/cskd_cifar_200e.py)
train_dataloader = dict(batch_size=128, batch_sampler=dict(type='ClassPairBatchSampler'))
custom_hooks = [dict(type='SelfDistillHook')]
