# PS-KD's CIFAR-100 recipe (Kim et al., ICCV 2021; official code lgcnsai/PS-KD-Pytorch, main.py
# defaults and the README's command): SGD with Nesterov momentum 0.9, lr 0.1, weight decay 5e-4,
# batch 128, 300 epochs, lr x0.1 at epochs 150 and 225. Used for CIFAR-10 and Tiny-ImageNet too.
_base_ = 'mmpretrain::_base_/schedules/cifar10_bs128.py'

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[150, 225], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
auto_scale_lr = dict(base_batch_size=128)
