# The demo detector: the small EPSD backbone of configs/demo/epsd_dlb_demo.py (pruned at
# initialization to 0.9 sparsity and trained with DLB on the demo shapes) transferred into a
# small Faster R-CNN trained on the demo's VOC-format shapes, its masks kept. `make demo`
# (tools/demo.py) runs the whole chain; by hand:
#
#   python tools/misc/make_demo_data.py --out data/demo
#   python tools/train.py configs/demo/epsd_dlb_demo.py --work-dir work_dirs/demo/cls
#   python tools/train.py configs/demo/frcnn_demo.py --work-dir work_dirs/demo/det \
#       --cfg-options model.backbone.init_cfg.checkpoint=CLS_CKPT custom_hooks.0.mask_file=CLS_CKPT
#   python tools/test.py configs/demo/frcnn_demo.py work_dirs/demo/det/epoch_12.pth
#
# (A top-level variable is resolved where it is used when the config is parsed, so
# `--cfg-options cls_checkpoint=...` would change nothing: override the two fields.)
# Sized for a 2-core CPU: 128-pixel images, a ResNet-18 of 1/4 width, a 64-channel FPN, few
# proposals and RoIs; the rest of the model is mmdet's Faster R-CNN R50-FPN. Its own short SGD
# schedule reaches a demo-test mAP@0.5 of about 0.94 in under 3 CPU-minutes.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
]

custom_imports = dict(imports=['epsd_mm'], allow_failed_imports=False)

# The demo classification checkpoint (weights and masks): the last epoch of
# configs/demo/epsd_dlb_demo.py. tools/demo.py passes the path its run actually wrote.
cls_checkpoint = 'work_dirs/demo/cls/epoch_30.pth'

# The demo's shapes (epsd_mm.datasets.DEMO_CLASSES), in label order.
classes = ('circle', 'cross', 'ring', 'square', 'triangle')
image_size = 128
max_epochs = 12

model = dict(
    backbone=dict(
        depth=18,
        # the widths of the demo classifier's backbone (mmpretrain ResNet, the same names)
        stem_channels=16,
        base_channels=16,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=cls_checkpoint, prefix='backbone.')),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64, num_outs=5),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(
            # torchvision's RoIAlign (the same op: aligned=True) runs its CPU backward about
            # twice as fast as mmcv's here; 2x2 samples per bin suffice for 7x7 bins on these
            # small feature maps.
            roi_layer=dict(sampling_ratio=2, use_torchvision=True),
            out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=len(classes))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100)))

custom_hooks = [
    # Keep-masks (transfer) mode: the backbone's masks from the classification checkpoint are
    # applied and kept exactly zero; the classifier head's mask is ignored and logged.
    # tools/demo.py sets custom_hooks.0.mask_file: keep this hook first.
    dict(type='PruningHook', mask_file=cls_checkpoint, strict=False),
]

# ------------------------------------------------------------------------------- data
dataset_type = 'CheckedVOCDataset'
data_root = 'data/demo/voc/VOCdevkit/'
missing_hint = 'create it with: python tools/misc/make_demo_data.py --out data/demo'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    # after Resize, so that the boxes stay in the original image's coordinates
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=dict(classes=classes),
        filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
        missing_hint=missing_hint,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=dict(classes=classes),
        test_mode=True,
        missing_hint=missing_hint,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# VOC mAP at IoU 0.5, VOC2007's 11-point interpolated AP.
val_evaluator = dict(type='VOCMetric', metric='mAP', iou_thrs=0.5, eval_mode='11points')
test_evaluator = val_evaluator

# ------------------------------------------------------------------------------- schedule
# Validation once, at the end (tools/test.py measures the same split again).
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[9], gamma=0.1),
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
log_processor = dict(window_size=25)
randomness = dict(seed=0)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
