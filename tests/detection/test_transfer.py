"""Transfer of a pruned classification backbone into Faster R-CNN, masks kept.

The real chain at a tiny scale: an mmpretrain ``ImageClassifier`` (ResNet-18, 16 channels, the
demo's backbone) pruned to 0.9 and saved in mmengine's checkpoint layout, then the demo
detector config (the real ``FasterRCNN``, ``CheckedVOCDataset`` on generated VOC data, the
mmengine Runner, ``PruningHook(strict=False)``) trained for a few iterations from it.
"""
import glob
import importlib.util
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import epsd_mm  # noqa: F401
from epsd_mm.pruning import MaskSet, compute_masks
from epsd_mm.pruning.selection import prunable_parameters
from epsd_mm.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'frcnn_demo.py')
VOC_CONFIG = osp.join(ROOT, 'configs', 'epsd_voc_frcnn.py')
DENSE_CONFIG = osp.join(ROOT, 'configs', 'detection', 'dense_voc_frcnn.py')


def build_classifier(depth=18, width=16, num_classes=5, seed=0):
    """A real mmpretrain ImageClassifier with mmpretrain's ImageNet-style ResNet."""
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    expansion = 4 if depth >= 50 else 1
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='ImageClassifier',
        _scope_='mmpretrain',  # whatever default scope an earlier Runner left behind
        backbone=dict(type='ResNet', depth=depth, stem_channels=width, base_channels=width),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=8 * width * expansion)))
    model.init_weights()
    return model


def save_cls_checkpoint(path, apply_masks=True, **kwargs):
    """Prune a classifier to 0.9 (random criterion) and save it as mmengine does; return the
    state dict and the masks. ``apply_masks=False`` leaves the pruned entries non-zero, to see
    that the detector zeroes them itself."""
    model = build_classifier(**kwargs)
    masks = compute_masks(model, None, dict(type='random', seed=0), 0.9, show_progress=False)
    if apply_masks:
        masks.apply_(model)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(dict(meta=dict(epoch=1, iter=10), state_dict=state, pruning=masks.to_dict(),
                    optimizer=dict(state={}, param_groups=[])), path)
    return state, masks


def short_run(cfg, max_iters):
    """``cfg`` (changed in place) trained for ``max_iters`` iterations with a checkpoint at the
    last one, without validation, testing or schedulers."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10 ** 6)
    for split in ('val', 'test'):
        cfg[f'{split}_dataloader'] = cfg[f'{split}_cfg'] = cfg[f'{split}_evaluator'] = None
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=max_iters)
    return cfg


def demo_det_cfg(demo_data, work_dir, cls_ckpt, max_iters=3):
    """The demo detector config on the session's small demo data, for a few iterations."""
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.work_dir = work_dir
    cfg.model.backbone.init_cfg.checkpoint = cls_ckpt
    assert cfg.custom_hooks[0].type == 'PruningHook'
    cfg.custom_hooks[0].mask_file = cls_ckpt
    cfg.train_dataloader.dataset.data_root = demo_data.voc_root + '/'
    cfg.train_dataloader.batch_size = 2
    short_run(cfg, max_iters)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    return cfg


def _pruning_hook(runner):
    return next(h for h in runner.hooks if type(h).__name__ == 'PruningHook')


def test_demo_detector_keeps_transferred_masks_exactly_zero(demo_data, tmp_path):
    cls_ckpt = str(tmp_path / 'cls.pth')
    # pruned entries left non-zero in the file: the detector must zero them, frozen or not
    cls_state, cls_masks = save_cls_checkpoint(cls_ckpt, apply_masks=False)
    backbone_names = [n for n in cls_masks.names() if n.startswith('backbone.')]
    assert cls_masks.names() == backbone_names + ['head.fc.weight']
    assert cls_masks.zero_violations(cls_state) > 0

    work = str(tmp_path / 'det')
    runner = Runner.from_cfg(demo_det_cfg(demo_data, work, cls_ckpt))
    runner.train()

    # the hook applied exactly the backbone masks and reported the head's as ignored
    hook = _pruning_hook(runner)
    assert hook.masks.names() == backbone_names
    logs = glob.glob(osp.join(work, '*', '*.log'))
    assert len(logs) == 1
    with open(logs[0]) as f:
        log = f.read()
    assert re.search(r'applying 20 masks .*ignoring 1 .*: head\.fc\.weight', log), log[-3000:]

    ckpt = torch.load(osp.join(work, 'iter_3.pth'), map_location='cpu')
    state = ckpt['state_dict']
    saved = MaskSet.from_dict(ckpt['pruning'])
    assert saved.names() == backbone_names
    assert all(torch.equal(saved[n], cls_masks[n]) for n in backbone_names)
    assert saved.zero_violations(state) == 0
    assert 0.89 <= saved.sparsity < 0.91

    model = runner.model
    frozen = 'backbone.conv1.weight'  # the stem: frozen by frozen_stages=1
    trained = 'backbone.layer4.1.conv2.weight'
    assert not dict(model.named_parameters())[frozen].requires_grad
    assert dict(model.named_parameters())[trained].requires_grad
    for name in (frozen, trained):
        m = cls_masks[name]
        assert (state[name][~m] == 0).all(), name
    # the frozen stem holds the classifier's kept weights unchanged, and zeros elsewhere
    m = cls_masks[frozen]
    assert torch.equal(state[frozen], cls_state[frozen] * m)
    # a trainable layer did train (SGD with momentum and weight decay), its pruned entries
    # staying exactly zero
    m = cls_masks[trained]
    assert not torch.equal(state[trained][m], cls_state[trained][m])
    assert int((state[trained] != 0).sum()) <= int(m.sum())

    # what `make demo` reports about such a checkpoint (tools/demo.py)
    measured = _demo_tool().detector_sparsity(osp.join(work, 'iter_3.pth'))
    assert measured['backbone_masks'] == 20 and measured['pruned_nonzero'] == 0
    assert measured['backbone_sparsity'] == saved.sparsity
    assert measured['backbone_prunable'] == saved.numel
    zeros = sum(int((state[n] == 0).sum()) for n in backbone_names)
    assert measured['backbone_zero_fraction'] == zeros / saved.numel


def _demo_tool():
    spec = importlib.util.spec_from_file_location('demo_tool',
                                                  osp.join(ROOT, 'tools', 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('kwargs, mismatch', [
    # another width: the first mask (the stem) already differs
    (dict(width=32), r'backbone\.conv1\.weight: mask 32x3x7x7 but parameter 16x3x7x7'),
    # another depth (Bottleneck blocks): layer1.0.conv1 is 1x1 there, 3x3 in ResNet-18
    (dict(depth=50), r'backbone\.layer1\.0\.conv1\.weight: mask 16x16x1x1 but parameter '
                     r'16x16x3x3'),
])
def test_masks_of_another_backbone_fail_clearly(demo_data, tmp_path, kwargs, mismatch):
    cls_ckpt = str(tmp_path / 'cls.pth')
    save_cls_checkpoint(cls_ckpt, **kwargs)
    runner = Runner.from_cfg(demo_det_cfg(demo_data, str(tmp_path / 'det'), cls_ckpt))
    with pytest.raises(UserError, match=mismatch):
        runner.train()
    assert not glob.glob(str(tmp_path / 'det' / '*.pth'))


def test_masks_of_a_deeper_resnet_of_the_same_block_fail(demo_data, tmp_path):
    # ResNet-34 has the ResNet-18's blocks plus more (layer1.2, ...): every shared name fits
    cls_ckpt = str(tmp_path / 'cls.pth')
    save_cls_checkpoint(cls_ckpt, depth=34)
    runner = Runner.from_cfg(demo_det_cfg(demo_data, str(tmp_path / 'det'), cls_ckpt,
                                          max_iters=1))
    with pytest.raises(UserError, match=r'backbone\.layer1\.2\.conv1\.weight'):
        runner.train()


# ------------------------------------------------------------------------ the VOC configs
def _write_tiny_voc(root, year, ids):
    """A tiny VOCdevkit/VOC<year> with one 'dog' per image, in the real layout."""
    import os

    import numpy as np
    from PIL import Image

    from epsd_mm.datasets.demo import voc_xml
    voc = osp.join(root, f'VOC{year}')
    for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
        os.makedirs(osp.join(voc, sub), exist_ok=True)
    for i in ids:
        Image.fromarray(np.full((64, 80, 3), 90, np.uint8)).save(
            osp.join(voc, 'JPEGImages', f'{i}.jpg'))
        with open(osp.join(voc, 'Annotations', f'{i}.xml'), 'w') as f:
            f.write(voc_xml(f'{i}.jpg', 80, 64, [dict(name='dog', bbox=(4, 6, 60, 58))],
                            folder=f'VOC{year}'))
    for split, split_ids in (('trainval', ids[:-1]), ('test', ids[-1:])):
        with open(osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(split_ids) + '\n')


def test_epsd_voc_config_composes_and_builds(tmp_path):
    cfg = Config.fromfile(VOC_CONFIG)
    from mmdet.datasets import VOCDataset
    from mmdet.evaluation import VOCMetric
    from mmdet.models.detectors import FasterRCNN
    from mmdet.registry import DATASETS, HOOKS, METRICS, MODELS
    from mmdet.utils import register_all_modules
    from mmengine.dataset import RepeatDataset

    from epsd_mm.datasets import CheckedVOCDataset
    from epsd_mm.hooks import PruningHook
    register_all_modules(init_default_scope=True)

    ckpt = cfg.epsd_checkpoint
    backbone = cfg.model.backbone
    assert backbone.depth == 50 and backbone.frozen_stages == 1 and backbone.norm_eval
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')
    hooks = [HOOKS.build(h) for h in cfg.custom_hooks]
    assert len(hooks) == 1 and isinstance(hooks[0], PruningHook)
    assert hooks[0].mask_file == ckpt and hooks[0].strict is False

    metric = METRICS.build(cfg.val_evaluator)
    assert isinstance(metric, VOCMetric)
    assert metric.eval_mode == '11points' and metric.iou_thrs == [0.5]
    assert cfg.test_evaluator == cfg.val_evaluator

    # the datasets, on a tiny VOCdevkit in the real layout: VOC07+12 trainval x 3, VOC07 test
    devkit = str(tmp_path / 'VOCdevkit')
    _write_tiny_voc(devkit, 2007, ['000001', '000002', '000003'])
    _write_tiny_voc(devkit, 2012, ['2008_000001', '2008_000002'])
    train = cfg.train_dataloader.dataset
    for sub in train.dataset.datasets:
        sub.data_root = devkit + '/'
    train_set = DATASETS.build(train)
    assert isinstance(train_set, RepeatDataset) and len(train_set) == 3 * (2 + 1)
    for sub in train_set.dataset.datasets:
        assert isinstance(sub, CheckedVOCDataset)
        assert sub.metainfo['classes'] == VOCDataset.METAINFO['classes']
    assert train_set[0]['data_samples'].gt_instances.labels.tolist() == [11]  # dog
    test_cfg = cfg.test_dataloader.dataset
    test_cfg.data_root = devkit + '/'
    test_set = DATASETS.build(test_cfg)
    assert isinstance(test_set, CheckedVOCDataset) and len(test_set) == 1
    assert test_set.metainfo['dataset_type'] == 'VOC2007'

    # the model builds (without loading the checkpoint)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert isinstance(model, FasterRCNN)
    assert model.roi_head.bbox_head.num_classes == 20


def test_resnet50_masks_transfer_by_name_into_the_voc_detector():
    """mmpretrain's ResNet-50 (the ImageNet EPSD backbone) and the VOC config's mmdet ResNet-50
    name their parameters alike: every backbone mask fits, only the head's is ignored."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(VOC_CONFIG)
    cfg.model.backbone.init_cfg = None
    detector = MODELS.build(cfg.model)
    classifier = build_classifier(depth=50, width=64, num_classes=1000)
    # the masks the pruning hook would make (every conv and linear weight), drawn directly:
    # scoring 25 M weights is beside the point here
    g = torch.Generator().manual_seed(0)
    masks = MaskSet({n: torch.rand(p.shape, generator=g) >= 0.9
                     for n, p in prunable_parameters(classifier).items()})
    applied, ignored = masks.split_for(detector)
    assert ignored == ['head.fc.weight']
    convs = [n for n, p in detector.backbone.named_parameters() if p.dim() == 4]
    assert applied.names() == [f'backbone.{n}' for n in convs]
    # masks cover frozen layers too; applying them zeroes exactly the pruned entries
    applied.apply_(detector)
    assert applied.zero_violations(detector) == 0
    assert not detector.backbone.conv1.weight.requires_grad


def test_dense_twin_is_the_same_detector_without_masks():
    epsd, dense = Config.fromfile(VOC_CONFIG), Config.fromfile(DENSE_CONFIG)
    assert dense.custom_hooks == []
    assert dense.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint=dense.dense_checkpoint, prefix='backbone.')
    assert dense.dense_checkpoint != epsd.epsd_checkpoint
    dense.model.backbone.init_cfg = epsd.model.backbone.init_cfg
    for key in ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader',
                'val_evaluator', 'test_evaluator', 'train_cfg', 'optim_wrapper',
                'param_scheduler', 'default_hooks'):
        assert dense[key] == epsd[key], key
