# The demo detector as a plain mmdet config: nothing of epsd_mm (no custom_imports, no
# PruningHook, mmdet's own VOCDataset), so that a process that never imports epsd_mm opens a
# published demo checkpoint (tools/publish_model.py) with mmdet's own APIs and tools:
#
#   from mmdet.apis import init_detector, inference_detector
#   model = init_detector('configs/demo/frcnn_demo_infer.py', 'PUBLISHED.pth', device='cpu')
#   result = inference_detector(model, 'data/demo/voc/VOCdevkit/VOC2007/JPEGImages/000001.jpg')
#
# configs/demo/frcnn_demo.py (what `make demo` trains) is this config plus the project's parts:
# the EPSD backbone initialization, the PruningHook and the path-checking dataset.
# Sized for a 2-core CPU: 128-pixel images, a ResNet-18 of 1/4 width, a 64-channel FPN, few
# proposals and RoIs; the rest of the model is mmdet's Faster R-CNN R50-FPN.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/det_flip_tta.py',
]

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
        init_cfg=None),
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

# ------------------------------------------------------------------------------- data
dataset_type = 'VOCDataset'
data_root = 'data/demo/voc/VOCdevkit/'
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
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# VOC mAP at IoU 0.5, VOC2007's 11-point interpolated AP.
val_evaluator = dict(type='VOCMetric', metric='mAP', iou_thrs=0.5, eval_mode='11points')
test_evaluator = val_evaluator

# Test-time augmentation (tools/test.py --tta): both flips, see configs/_base_/det_flip_tta.py.
tta_pipeline = [
    test_pipeline[0],
    dict(type='TestTimeAug', transforms=[[test_pipeline[1]], _base_.tta_flips, [test_pipeline[2]],
                                         [dict(test_pipeline[3], meta_keys=_base_.tta_meta_keys)]])
]

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
