import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope

from epsd_mm.analysis.flops import (
    analyze_config,
    build_model,
    count_complexity,
    format_complexity,
    shape_from_pipeline,
)
from epsd_mm.pruning import MaskSet
from epsd_mm.utils.errors import UserError

from . import CONFIG_TEXT, tiny_masks, tiny_model

# Conv2d 3->8, 3x3, padding 1 on 8x8: 8 output channels x 3 input channels x 9 taps x 64 pixels
CONV_MACS = 8 * 3 * 9 * 64


def _keep_first(shape, kept):
    mask = torch.zeros(shape, dtype=torch.bool).reshape(-1)
    mask[:kept] = True
    return mask.reshape(shape)


def test_conv_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1))
    inputs = torch.randn(1, 3, 8, 8)
    dense = count_complexity(model, inputs)
    assert dense['flops'] == CONV_MACS == 13824
    assert dense['params'] == 8 * 3 * 9 + 8
    assert dense['effective_flops'] is None and dense['layers'] == []

    masks = MaskSet({'0.weight': _keep_first((8, 3, 3, 3), 54)})  # kept fraction 0.25
    result = count_complexity(model, inputs, masks)
    assert result['flops'] == CONV_MACS
    assert result['effective_flops'] == 0.25 * CONV_MACS == 3456
    assert result['effective_params'] == 224 - 162
    assert result['sparsity'] == 0.75
    (layer, ) = result['layers']
    assert layer['module'] == '0' and layer['flops'] == CONV_MACS
    assert layer['kept_fraction'] == 0.25 and layer['effective_flops'] == 3456


class _OwnWeight(nn.Module):
    """A module that convolves with its own weight and then calls a child: only its own
    operation may be scaled by its mask."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 3, 3, 3))
        self.child = nn.Conv2d(8, 8, 1, bias=False)

    def forward(self, x):
        return self.child(F.conv2d(x, self.weight, padding=1))


class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.block = _OwnWeight()
        self.fc = nn.Linear(8 * 64, 4)

    def forward(self, x):
        return self.fc(self.block(x).flatten(1))


def test_scaling_uses_a_modules_own_operations_only():
    torch.manual_seed(0)
    model = _Net()
    child, fc = 8 * 8 * 64, 8 * 64 * 4
    masks = MaskSet({'block.weight': _keep_first((8, 3, 3, 3), 108),  # half
                     'fc.weight': _keep_first((4, 512), 512)})  # a quarter
    result = count_complexity(model, torch.randn(1, 3, 8, 8), masks)
    assert result['flops'] == CONV_MACS + child + fc
    assert result['effective_flops'] == 0.5 * CONV_MACS + child + 0.25 * fc
    layers = {g['module']: g for g in result['layers']}
    assert layers['block']['flops'] == CONV_MACS and layers['fc']['flops'] == fc


def test_masks_naming_other_parameters():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1))
    masks = MaskSet({'0.weight': torch.ones(8, 3, 3, 3, dtype=torch.bool),
                     'head.fc.weight': torch.ones(3, 64, dtype=torch.bool)})
    result = count_complexity(model, torch.randn(1, 3, 8, 8), masks)
    assert result['ignored'] == ['head.fc.weight']
    assert result['effective_flops'] == CONV_MACS
    bad = MaskSet({'0.weight': torch.ones(8, 3, 1, 1, dtype=torch.bool)})
    with pytest.raises(UserError, match='do not fit'):
        count_complexity(model, torch.randn(1, 3, 8, 8), bad)


def _macs_by_hook(model, run):
    """Multiply-adds of every Conv2d/Linear, from the output shapes seen in a forward pass."""
    macs, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(
                lambda m, i, o, name=name: macs.__setitem__(
                    name, o.numel() * m.in_channels // m.groups * m.kernel_size[0]
                    * m.kernel_size[1])))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(
                lambda m, i, o, name=name: macs.__setitem__(name, o.numel() * m.in_features)))
    with torch.no_grad():
        run()
    for h in handles:
        h.remove()
    return macs


def test_mmpretrain_config_with_masks(tmp_path):
    cfg_path = tmp_path / 'tiny_cls.py'
    cfg_path.write_text(CONFIG_TEXT)
    cfg = Config.fromfile(str(cfg_path))
    model = tiny_model()
    masks = tiny_masks(model)
    result = analyze_config(cfg, shape=(8, 8), masks=masks)
    assert result['task'] == 'classification' and result['model'] == 'ImageClassifier'
    assert result['input_shape'] == [1, 3, 8, 8]
    assert result['params'] == sum(p.numel() for p in model.parameters())
    assert result['effective_params'] == result['params'] - (masks.numel - masks.kept)
    # every masked layer (the head's fc included) carries its hand-counted multiply-adds
    model.eval()
    macs = _macs_by_hook(model, lambda: model(torch.zeros(1, 3, 8, 8), mode='tensor'))
    layers = {g['module']: g for g in result['layers']}
    assert len(layers) == len(masks) == 21
    assert layers['head.fc']['flops'] == 64 * 3
    expected = result['flops']
    for name, mask in masks.items():
        module = name.rpartition('.')[0]
        assert layers[module]['flops'] == macs[module], module
        expected -= macs[module] * (1 - int(mask.sum()) / mask.numel())
    assert result['effective_flops'] == pytest.approx(expected, rel=1e-12)
    assert result['effective_flops'] < 0.2 * result['flops']
    text = format_complexity(result, mask_source='ckpt.pth')
    assert 'effective FLOPs (masked layers scaled by kept fraction)' in text
    assert 'dense FLOPs' in text and 'ckpt.pth' in text

    dense = analyze_config(cfg, shape=(8, 8))
    assert dense['flops'] == result['flops'] and dense['effective_flops'] is None
    assert 'dense figures only' in format_complexity(dense)


def test_shape_from_pipeline():
    cls = Config(dict(test_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'), dict(type='ResizeEdge', scale=256, edge='short'),
        dict(type='CenterCrop', crop_size=224), dict(type='PackInputs')]))))
    assert shape_from_pipeline(cls) == ((224, 224), "from the test_dataloader's CenterCrop")
    det = Config(dict(test_dataloader=dict(dataset=dict(type='RepeatDataset', dataset=dict(
        pipeline=[dict(type='mmdet.Resize', scale=(1000, 600), keep_ratio=True)])))))
    assert shape_from_pipeline(det)[0] == (600, 1000)  # mmcv scales are (w, h)
    # CIFAR-style: no size at test time; the training crop (inside a MultiView) gives it
    crop = [dict(type='RandomCrop', crop_size=32, padding=4), dict(type='RandomFlip')]
    cifar = dict(test_dataloader=dict(dataset=dict(pipeline=[dict(type='PackInputs')])),
                 train_dataloader=dict(dataset=dict(pipeline=[
                     dict(type='MultiView', num_views=2, transforms=[crop]),
                     dict(type='PackInputs')])))
    assert shape_from_pipeline(Config(cifar))[0] == (32, 32)
    cifar['train_dataloader']['dataset']['pipeline'][0]['transforms'] = [
        dict(type='RandomCrop', crop_size=(32, 48))]  # order differs by library: not read
    assert shape_from_pipeline(Config(cifar)) is None


DET_CONFIG = """
default_scope = 'mmdet'
model = dict(
    type='FasterRCNN',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, base_channels=8, stem_channels=8,
                  out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'), style='pytorch'),
    neck=dict(type='FPN', in_channels=[8, 16, 32, 64], out_channels=16, num_outs=5),
    rpn_head=dict(
        type='RPNHead', in_channels=16, feat_channels=16,
        anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                              strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4, target_stds=[1.] * 4),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True),
        loss_bbox=dict(type='L1Loss')),
    roi_head=dict(
        type='StandardRoIHead',
        bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                out_channels=16, featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(type='Shared2FCBBoxHead', in_channels=16, fc_out_channels=32,
                       roi_feat_size=7, num_classes=3,
                       bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                                       target_stds=[0.1, 0.1, 0.2, 0.2]),
                       loss_cls=dict(type='CrossEntropyLoss'), loss_bbox=dict(type='L1Loss'))),
    train_cfg=None,
    test_cfg=dict(
        rpn=dict(nms_pre=100, max_per_img=20, nms=dict(type='nms', iou_threshold=0.7),
                 min_bbox_size=0),
        rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=10)))
test_pipeline = [dict(type='LoadImageFromFile'),
                 dict(type='Resize', scale=(96, 64), keep_ratio=True),
                 dict(type='PackDetInputs')]
"""


def test_mmdet_config_with_backbone_masks(tmp_path):
    cfg_path = tmp_path / 'tiny_det.py'
    cfg_path.write_text(DET_CONFIG)
    cfg = Config.fromfile(str(cfg_path))
    detector, task = build_model(cfg)
    convs = {n: p for n, p in detector.named_parameters()
             if n.startswith('backbone.') and p.dim() == 4}
    g = torch.Generator().manual_seed(0)
    masks = MaskSet({n: torch.rand(p.shape, generator=g) < 0.1 for n, p in convs.items()},
                    'random', 0.9)
    # a classifier's head mask travels along and is ignored, as in transfer to detection
    masks.masks['head.fc.weight'] = torch.ones(3, 64, dtype=torch.bool)
    before = DefaultScope.get_current_instance()
    result = analyze_config(cfg, masks=masks)
    after = DefaultScope.get_current_instance()
    # the default scope is left as found
    assert (after and after.scope_name) == (before and before.scope_name)
    assert result['task'] == task == 'detection' and result['model'] == 'FasterRCNN'
    # the test pipeline's Resize gives 64x96, the preprocessor pads to a multiple of 32
    assert result['input_shape'] == [1, 3, 64, 96]
    assert result['ignored'] == ['head.fc.weight']
    # hand-counted backbone convolutions on the 64x96 input
    detector.eval()
    backbone_macs = _macs_by_hook(detector.backbone,
                                  lambda: detector.backbone(torch.zeros(1, 3, 64, 96)))
    expected = result['flops']
    for g in result['layers']:
        name = g['module'][len('backbone.'):]
        assert g['flops'] == backbone_macs[name], name
        expected -= backbone_macs[name] * (1 - g['kept_fraction'])
    assert backbone_macs['conv1'] == 8 * 3 * 49 * 32 * 48
    assert result['effective_flops'] == pytest.approx(expected, rel=1e-12)
    # the detector's FLOPs go beyond the backbone: neck, RPN and RoI head were traced too
    assert result['flops'] > sum(backbone_macs.values()) * 1.2
    assert result['effective_params'] == result['params'] - sum(
        int((~m).sum()) for n, m in masks.items() if n in convs)
