# The dense twin of configs/epsd_voc_frcnn.py, for comparison: the same Faster R-CNN R50-FPN,
# data and schedule, with the backbone of a dense (unpruned) self-distilled ResNet-50 and no
# pruning hook.
#
#   python tools/train.py configs/detection/dense_voc_frcnn.py
_base_ = '../epsd_voc_frcnn.py'

# The dense SD classification checkpoint: configs/classification/imagenet/dense_dlb_r50_imagenet.py
# (the same SD method and schedule as the EPSD backbone, no pruning).
dense_checkpoint = 'work_dirs/dense_dlb_r50_imagenet/epoch_100.pth'

model = dict(backbone=dict(init_cfg=dict(checkpoint=dense_checkpoint)))

# No masks: the backbone is dense.
custom_hooks = []
