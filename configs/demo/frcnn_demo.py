# The demo detector: the small EPSD backbone of configs/demo/epsd_dlb_demo.py (pruned at
# initialization to 0.9 sparsity and trained with DLB on the demo shapes) transferred into a
# small Faster R-CNN trained on the demo's VOC-format shapes, its masks kept. `make demo`
# (tools/demo.py) runs the whole chain; by hand:
#
#   python tools/misc/make_demo_data.py --out data/demo
#   python tools/train.py configs/demo/epsd_dlb_demo.py --work-dir work_dirs/demo/cls
#   python tools/train.py configs/demo/frcnn_demo.py --work-dir work_dirs/demo/det \
#       --cfg-options model.backbone.init_cfg.checkpoint=CLS_CKPT custom_hooks.0.mask_file=CLS_CKPT
#   python tools/test.py configs/demo/frcnn_demo.py work_dirs/demo/det/epoch_12.pth [--tta]
#   python tools/publish_model.py work_dirs/demo/det/epoch_12.pth work_dirs/demo/frcnn_demo.pth
#
# (A top-level variable is resolved where it is used when the config is parsed, so
# `--cfg-options cls_checkpoint=...` would change nothing: override the two fields.)
# The model, data, TTA and schedule are the plain mmdet config configs/demo/frcnn_demo_infer.py
# (which opens published checkpoints without epsd_mm); this file adds the project's parts.
# Its own short SGD schedule reaches the demo-test mAP@0.5 that the README quotes (made by
# tools/misc/refresh_docs.py) in under 3 CPU-minutes.
_base_ = ['./frcnn_demo_infer.py']

custom_imports = dict(imports=['epsd_mm'], allow_failed_imports=False)

# The demo classification checkpoint (weights and masks): the last epoch of
# configs/demo/epsd_dlb_demo.py. tools/demo.py passes the path its run actually wrote.
cls_checkpoint = 'work_dirs/demo/cls/epoch_30.pth'

model = dict(
    backbone=dict(
        # _delete_: the plain config has no initialization (init_cfg=None) to merge into
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=cls_checkpoint,
                      prefix='backbone.')))

custom_hooks = [
    # Keep-masks (transfer) mode: the backbone's masks from the classification checkpoint are
    # applied and kept exactly zero; the classifier head's mask is ignored and logged.
    # tools/demo.py sets custom_hooks.0.mask_file: keep this hook first.
    dict(type='PruningHook', mask_file=cls_checkpoint, strict=False),
]

# CheckedVOCDataset: mmdet's VOCDataset, plus a one-line error for a missing path.
checked = dict(type='CheckedVOCDataset',
               missing_hint='create it with: python tools/misc/make_demo_data.py --out data/demo')
train_dataloader = dict(dataset=checked)
val_dataloader = dict(dataset=checked)
test_dataloader = val_dataloader
