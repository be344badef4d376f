# Flip test-time augmentation for a detector (tools/test.py --tta, as mmdet's test tool): each
# image unflipped and flipped, the boxes of both views merged by NMS (mmdet's DetTTAModel).
# A config inheriting this builds its tta_pipeline from its own test pipeline's steps:
#   [load, TestTimeAug([[resize], tta_flips, [load annotations], [pack with tta_meta_keys]])]
# The annotations come after the flips (and, as in mmdet's VOC pipeline, after Resize), so that
# every view's ground truth stays in the original image's coordinates; the unflipped view comes
# first because the merged result keeps the first view's data sample, which VOCMetric reads.
tta_model = dict(
    type='DetTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_flips = [dict(type='RandomFlip', prob=0.), dict(type='RandomFlip', prob=1.)]
tta_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                 'flip_direction')
