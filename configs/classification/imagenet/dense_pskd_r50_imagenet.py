# Dense PS-KD, the baseline without pruning: ResNet-50 on ImageNet trained with
# progressive self-knowledge distillation (Kim et al., ICCV 2021).
# epsd_pskd_r50_imagenet.py and snip_pskd_r50_imagenet.py: this config plus a pruning hook.
#
#   python tools/train.py configs/classification/imagenet/dense_pskd_r50_imagenet.py
_base_ = [
    '../../_base_/models/sd_resnet50.py',
    '../../_base_/datasets/imagenet.py',
    '../../_base_/schedules/imagenet_100e.py',
    '../../_base_/default_runtime.py',
]

# PS-KD keeps every training sample's last prediction: N x C = 1.28 M x 1000 values,
# 5.1 GB in float32 on every rank and in every checkpoint; float16 halves it (2.6 GB),
# ample precision for a soft target.
model = dict(
    sd=dict(type='PSKD', alpha_T=0.8, memory_dtype='float16'),
    head=dict(num_classes=1000))
# the recipe's batch per GPU (x 8 GPUs = 256) (schedules/imagenet_100e.py)
train_dataloader = dict(batch_size=32)
custom_hooks = [dict(type='SelfDistillHook')]
