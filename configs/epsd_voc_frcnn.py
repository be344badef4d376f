# Faster R-CNN R50-FPN on Pascal VOC07+12 whose backbone is an EPSD backbone: pruned at
# initialization with the self-distillation meta-gradient and SD-trained on ImageNet
# (configs/classification/imagenet/epsd_dlb_r50_imagenet.py). The pruning hook, in its
# keep-masks (transfer) mode, takes the backbone's masks from the same checkpoint and keeps
# those weights exactly zero through detection training: the result is a sparse detector.
#
#   python tools/train.py configs/epsd_voc_frcnn.py
#   python tools/test.py configs/epsd_voc_frcnn.py work_dirs/epsd_voc_frcnn/epoch_4.pth
#
# Data: data/VOCdevkit/VOC2007 and data/VOCdevkit/VOC2012 (see docs/detection.md).
_base_ = ['mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py', './_base_/det_flip_tta.py']

custom_imports = dict(imports=['epsd_mm'], allow_failed_imports=False)

# The EPSD classification checkpoint: its `state_dict` initializes the backbone and its
# `pruning` entry holds the masks. A full classification checkpoint works as it is (the
# classifier's head and its mask are ignored, and the log says so); tools/export_backbone.py
# makes a backbone-only one. Change it here, or override both uses with --cfg-options
# model.backbone.init_cfg.checkpoint=PATH custom_hooks.0.mask_file=PATH.
epsd_checkpoint = 'work_dirs/epsd_dlb_r50_imagenet/epoch_100.pth'

model = dict(
    backbone=dict(
        # mmdet's VOC settings, written out: the stem and the first stage stay frozen, and
        # BatchNorm keeps the ImageNet statistics. Masks apply to frozen layers as well.
        frozen_stages=1,
        norm_eval=True,
        # mmpretrain's ImageClassifier and mmdet's FasterRCNN both call their backbone
        # `backbone`, and mmpretrain's and mmdet's ResNet name their parameters alike.
        init_cfg=dict(type='Pretrained', checkpoint=epsd_checkpoint, prefix='backbone.')),
    roi_head=dict(bbox_head=dict(num_classes=20)))

custom_hooks = [
    # strict=False: masks naming no parameter of the detector (the classifier's head) are
    # ignored and listed in the log; a mask whose parameter has another shape is an error.
    dict(type='PruningHook', mask_file=epsd_checkpoint, strict=False),
]

# Datasets: mmdet's VOC07+12 (trainval of both, repeated 3 times) and VOC2007 test, read by
# CheckedVOCDataset, which names a missing path or a malformed XML file instead of failing
# deep inside mmdet.
dataset_type = 'CheckedVOCDataset'
data_root = 'data/VOCdevkit/'
missing_hint = ('put the Pascal VOC devkit under data/VOCdevkit/ (VOC2007/ and VOC2012/), '
                'see docs/detection.md')
train_filter_cfg = dict(filter_empty_gt=True, min_size=32, bbox_min_size=32)

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            datasets=[
                dict(
                    type=dataset_type,
                    data_root=data_root,
                    ann_file='VOC2007/ImageSets/Main/trainval.txt',
                    data_prefix=dict(sub_data_root='VOC2007/'),
                    filter_cfg=train_filter_cfg,
                    pipeline=_base_.train_pipeline,
                    missing_hint=missing_hint,
                    backend_args=None),
                dict(
                    type=dataset_type,
                    data_root=data_root,
                    ann_file='VOC2012/ImageSets/Main/trainval.txt',
                    data_prefix=dict(sub_data_root='VOC2012/'),
                    filter_cfg=train_filter_cfg,
                    pipeline=_base_.train_pipeline,
                    missing_hint=missing_hint,
                    backend_args=None),
            ])))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, missing_hint=missing_hint))
test_dataloader = val_dataloader

# mAP at IoU 0.5 on VOC2007 test, with VOC2007's 11-point interpolated AP.
val_evaluator = dict(type='VOCMetric', metric='mAP', iou_thrs=0.5, eval_mode='11points')
test_evaluator = val_evaluator

# Test-time augmentation (tools/test.py --tta): mmdet's VOC test pipeline with both flips, see
# configs/_base_/det_flip_tta.py.
tta_pipeline = [
    _base_.test_pipeline[0],
    dict(type='TestTimeAug',
         transforms=[[_base_.test_pipeline[1]], _base_.tta_flips, [_base_.test_pipeline[2]],
                     [dict(_base_.test_pipeline[3], meta_keys=_base_.tta_meta_keys)]])
]
