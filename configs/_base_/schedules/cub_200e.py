# CUB-200-2011, for all three SD methods: CS-KD's fine-grained recipe (Yun et al., CVPR 2020;
# alinlab/cs-kd README: `--lr 0.1 --epoch 200 --batch-size 32 --decay 1e-4 --lamda 3`, trained
# from scratch at 224 pixels), the one SD recipe for CUB that is published with its code: SGD,
# lr 0.1, momentum 0.9, weight decay 1e-4, batch 32, 200 epochs, lr x0.1 at 50 % and 75 %
# (epochs 100 and 150). CS-KD's configs also take its lambda = 3 for CUB. (mmpretrain's own
# cub_bs64 schedule fine-tunes a pretrained network, lr 0.01, and does not apply to pruning at
# initialization, which starts from random weights.)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[100, 150], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
