# Dense PS-KD, the baseline without pruning: ResNet-18 on CIFAR-10 trained with
# progressive self-knowledge distillation (Kim et al., ICCV 2021).
# epsd_pskd_r18_cifar10.py and snip_pskd_r18_cifar10.py: this config plus a pruning hook.
#
#   python tools/train.py configs/classification/cifar10/dense_pskd_r18_cifar10.py
_base_ = [
    '../../_base_/models/sd_resnet18_cifar.py',
    '../../_base_/datasets/cifar10.py',
    '../../_base_/schedules/pskd_cifar_300e.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    sd=dict(type='PSKD', alpha_T=0.8),
    head=dict(num_classes=10))
# the recipe's batch (schedules/pskd_cifar_300e.py)
train_dataloader = dict(batch_size=128)
custom_hooks = [dict(type='SelfDistillHook')]
