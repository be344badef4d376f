# DLB's CIFAR recipe (Shen et al., CVPR 2022; official code Meta-knowledge-Lab/DLB, dlb.py).
# From the code: SGD with Nesterov momentum 0.9 and weight decay 5e-4 (its defaults); lr, epochs,
# milestones and batch size are required command-line arguments there, with no default.
# ASSUMED (not verifiable here, as the paper's text is not readable from this project's machines:
# check it against the paper's implementation details): lr 0.05, 240 epochs, lr x0.1 at epochs
# 150, 180 and 210, batch 64 (the configs set train_dataloader.batch_size=64); the CIFAR recipe
# of the CRD distillation benchmark that DLB compares against. Used for Tiny-ImageNet too.
_base_ = 'mmpretrain::_base_/schedules/cifar10_bs128.py'

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[150, 180, 210], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=1)
auto_scale_lr = dict(base_batch_size=64)
