"""configs/epsd_voc_frcnn.py composes through mmdet:: inheritance and builds a real mmdet
Faster R-CNN for the 20 VOC classes, which trains (a loss step) on a tiny input."""
import os.path as osp

import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'epsd_voc_frcnn.py')


def test_voc_config_builds_faster_rcnn():
    cfg = Config.fromfile(CONFIG)  # imports epsd_mm through custom_imports
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports == dict(imports=['epsd_mm'], allow_failed_imports=False)

    from mmdet.models.detectors import FasterRCNN
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.structures import InstanceData

    register_all_modules(init_default_scope=True)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)  # building loads no weights (that is init_weights)
    assert isinstance(model, FasterRCNN)
    assert model.roi_head.bbox_head.num_classes == 20
    assert model.backbone.depth == 50

    # one loss step on a 128x128 image with one box: the whole detector is wired up
    model.train()
    sample = DetDataSample(metainfo=dict(img_shape=(128, 128), pad_shape=(128, 128),
                                         ori_shape=(128, 128), scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[20., 30., 90., 110.]]),
                                       labels=torch.tensor([7]))
    data = model.data_preprocessor(
        dict(inputs=[torch.randint(0, 256, (3, 128, 128), dtype=torch.uint8)],
             data_samples=[sample]), training=True)
    losses = model(**data, mode='loss')
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'acc'):
        assert key in losses, key
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert model.roi_head.bbox_head.fc_cls.weight.grad.abs().sum() > 0
