# The demo classifier as a plain mmpretrain config: nothing of epsd_mm (no custom_imports, a
# plain ImageClassifier, mmpretrain's own CustomDataset), so that a process that never imports
# epsd_mm opens a published demo checkpoint (tools/publish_model.py) with mmpretrain's APIs:
#
#   from mmpretrain.apis import ImageClassificationInferencer
#   inferencer = ImageClassificationInferencer('configs/demo/cls_demo_infer.py',
#                                              pretrained='PUBLISHED.pth', device='cpu')
#   inferencer('data/demo/cls/val/circle/circle_00000.png')[0]['pred_class']
#
# The SD demos (configs/demo/epsd_<sd>_demo.py, through configs/demo/_base_/cls_demo.py) are
# this config plus the project's parts: the SD classifier (its state_dict is exactly this
# ImageClassifier's), the method, the pruning and SD hooks, the path-checking dataset.
# A small ResNet-18 (16 base channels) on the generated shapes
# (python tools/misc/make_demo_data.py --out data/demo).
_base_ = ['mmpretrain::_base_/default_runtime.py']

data_root = 'data/demo/cls'
num_classes = 5
image_size = 32

model = dict(
    type='ImageClassifier',
    # mmpretrain's ImageNet-style ResNet, so the pruned backbone's parameter names and shapes are
    # those of mmdet's ResNet with the same widths (configs/demo/frcnn_demo.py)
    # zero_init_residual=False: mmpretrain's default zeroes each block's last BatchNorm, which
    # leaves every residual-branch conv with zero gradient at init, the moment pruning scores
    backbone=dict(type='ResNet', depth=18, stem_channels=16, base_channels=16,
                  out_indices=(3, ), zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=128,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )),
    data_preprocessor=dict(num_classes=num_classes, mean=[127.5, 127.5, 127.5],
                           std=[64.0, 64.0, 64.0], to_rgb=True))

augment = [
    dict(type='RandomCrop', crop_size=image_size, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]
train_pipeline = [dict(type='LoadImageFromFile'), *augment, dict(type='PackInputs')]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=16, num_workers=2, persistent_workers=True,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 with_label=True, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=100, num_workers=2, persistent_workers=True,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 with_label=True, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# SGD with Nesterov momentum as in the DLB and PS-KD recipes, sized to the demo: at 0.9 sparsity
# 10 epochs left the classifier at 43 % top-1 (still climbing); 30 epochs at lr 0.05 (batch 16,
# against the recipes' 0.1 at batch 128) reach the top-1 the README quotes (made by
# tools/misc/refresh_docs.py) in about 2 CPU-minutes.
max_epochs = 30  # 50 iterations per epoch at batch 16
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=max_epochs, T_max=max_epochs - 1),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                    save_best='accuracy/top1', rule='greater'))
randomness = dict(seed=0, deterministic=False)
