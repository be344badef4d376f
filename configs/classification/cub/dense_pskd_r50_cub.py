# Dense PS-KD, the baseline without pruning: ResNet-50 on CUB-200-2011 trained with
# progressive self-knowledge distillation (Kim et al., ICCV 2021).
# epsd_pskd_r50_cub.py and snip_pskd_r50_cub.py: this config plus a pruning hook.
#
#   python tools/train.py configs/classification/cub/dense_pskd_r50_cub.py
_base_ = [
    '../../_base_/models/sd_resnet50.py',
    '../../_base_/datasets/cub.py',
    '../../_base_/schedules/cub_200e.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    sd=dict(type='PSKD', alpha_T=0.8),
    head=dict(num_classes=200))
# the recipe's batch (schedules/cub_200e.py)
train_dataloader = dict(batch_size=32)
custom_hooks = [dict(type='SelfDistillHook')]
