"""Every classification format, written tiny in its real layout, through the real dataset class,
a real pipeline, mmengine's collate, ClsDataPreprocessor and one training iteration."""
import os.path as osp
import re

import numpy as np
import pytest
import torch

from epsd_mm.datasets import (
    CheckedCustomDataset,
    CIFAR10Local,
    CIFAR100Local,
    TinyImageNet,
    write_tiny_cifar,
    write_tiny_imagenet,
    write_tiny_tinyimagenet,
)
from epsd_mm.utils.errors import UserError


def build_dataset(cfg):
    from mmpretrain.registry import DATASETS
    return DATASETS.build(cfg)


def labels(ds):
    return [ds.get_data_info(i)['gt_label'] for i in range(len(ds))]


# --------------------------------------------------------------------------------- CIFAR

@pytest.mark.parametrize('cifar100', [False, True], ids=['cifar10', 'cifar100'])
def test_cifar_local_reads_the_pickled_batches_exactly(tiny_formats, cifar100):
    from mmpretrain.datasets.categories import CIFAR10_CATEGORIES, CIFAR100_CATEGORIES
    key = 'cifar100' if cifar100 else 'cifar10'
    written = tiny_formats['details'][key]
    cls_name = 'CIFAR100Local' if cifar100 else 'CIFAR10Local'
    for split in ('train', 'test'):
        ds = build_dataset(dict(type=cls_name, data_root=tiny_formats[key], split=split,
                                pipeline=[dict(type='PackInputs')]))
        imgs, lbls = written[split]
        assert len(ds) == len(lbls) == (10 if split == 'train' else 5)
        assert labels(ds) == lbls
        for i in range(len(ds)):  # pixel for pixel, HWC RGB as written
            assert np.array_equal(ds.get_data_info(i)['img'], imgs[i])
            assert torch.equal(ds[i]['inputs'], torch.from_numpy(imgs[i]).permute(2, 0, 1))
    assert ds.metainfo['classes'] == (CIFAR100_CATEGORIES if cifar100 else CIFAR10_CATEGORIES)


@pytest.mark.parametrize('cifar100', [False, True], ids=['cifar10', 'cifar100'])
def test_mmpretrain_cifar_rejects_a_non_official_copy(tiny_formats, cifar100):
    # why CIFAR10Local exists: mmpretrain's class checks the official md5s
    from mmpretrain.datasets import CIFAR10, CIFAR100
    key = 'cifar100' if cifar100 else 'cifar10'
    with pytest.raises(RuntimeError, match='download'):
        (CIFAR100 if cifar100 else CIFAR10)(data_root=tiny_formats[key], download=False)


def test_cifar_local_errors(tmp_path):
    write_tiny_cifar(str(tmp_path), num_train=5, num_test=1)
    missing = tmp_path / 'cifar-10-batches-py' / 'data_batch_3'
    missing.unlink()
    with pytest.raises(UserError, match=re.escape(f'CIFAR10Local file not found: {missing};')):
        CIFAR10Local(data_root=str(tmp_path))
    with pytest.raises(UserError, match='never downloads'):
        CIFAR100Local(data_root=str(tmp_path), download=True)


# --------------------------------------------------------------------------------- ImageNet

def test_imagenet_meta_lists(tiny_formats):
    from mmpretrain.datasets import ImageNet
    written = tiny_formats['details']['imagenet']
    for split in ('train', 'val'):
        ds = ImageNet(data_root=tiny_formats['imagenet'], split=split)
        assert len(ds.metainfo['classes']) == 1000  # mmpretrain's own metainfo applies
        assert [(osp.relpath(ds.get_data_info(i)['img_path'],
                             osp.join(tiny_formats['imagenet'], split)),
                 ds.get_data_info(i)['gt_label']) for i in range(len(ds))] == written[split]
    assert len(written['train']) == 6 and len(written['val']) == 3


def test_imagenet_class_folders(tmp_path):
    from mmpretrain.datasets import ImageNet
    written = write_tiny_imagenet(str(tmp_path), num_classes=2, train_per_class=2,
                                  val_per_class=2, with_meta=False)
    for split in ('train', 'val'):
        ds = ImageNet(data_root=str(tmp_path), split=split,
                      metainfo=dict(classes=written['classes']))
        assert labels(ds) == [0, 0, 1, 1]
        assert [osp.basename(osp.dirname(ds.get_data_info(i)['img_path']))
                for i in range(4)] == [written['classes'][k] for k in (0, 0, 1, 1)]


# ------------------------------------------------------------------------------ Tiny-ImageNet

def test_tinyimagenet_splits(tiny_formats):
    root = tiny_formats['tinyimagenet']
    written = tiny_formats['details']['tinyimagenet']
    with open(osp.join(root, 'wnids.txt')) as f:
        assert f.read().split() == sorted(written['classes'], reverse=True)  # unsorted file
    for split in ('train', 'val'):
        ds = build_dataset(dict(type='TinyImageNet', data_root=root, split=split))
        assert ds.metainfo['classes'] == tuple(written['classes'])  # sorted: the label order
        assert [(osp.relpath(ds.get_data_info(i)['img_path'], root),
                 ds.get_data_info(i)['gt_label']) for i in range(len(ds))] == written[split]
    test = TinyImageNet(data_root=root, split='test')
    assert len(test) == 2 and 'gt_label' not in test.get_data_info(0)


def test_tinyimagenet_errors(tmp_path):
    root = str(tmp_path / 'tiny-imagenet-200')
    with pytest.raises(UserError, match=re.escape(f'Tiny-ImageNet data_root not found: {root}')):
        TinyImageNet(data_root=root)
    write_tiny_tinyimagenet(root, num_classes=2, train_per_class=1, num_test=0)
    ann = osp.join(root, 'val', 'val_annotations.txt')
    with open(ann, 'a') as f:
        f.write('val_9.JPEG\tn99999999\t0\t0\t1\t1\n')
    with pytest.raises(UserError, match=re.escape(f'{ann}, line 3: expected')):
        TinyImageNet(data_root=root, split='val')
    with pytest.raises(UserError, match="split must be 'train', 'val' or 'test'"):
        TinyImageNet(data_root=root, split='trainval')


# --------------------------------------------------------------------------------- CUB

def test_cub_split_files(tiny_formats):
    from mmpretrain.datasets import CUB
    written = tiny_formats['details']['cub']
    root = tiny_formats['cub']
    for split in ('train', 'test'):
        ds = CUB(data_root=root, split=split)
        assert len(ds.metainfo['classes']) == 200
        assert [(osp.relpath(ds.get_data_info(i)['img_path'], osp.join(root, 'images')),
                 ds.get_data_info(i)['gt_label']) for i in range(len(ds))] == written[split]
    assert [label for _, label in written['train']] == [0, 0, 1, 1, 2, 2]
    assert [label for _, label in written['test']] == [0, 1, 2]


# ------------------------------------------------------------------------- checked CustomDataset

def test_checked_custom_dataset(demo_data, tmp_path):
    ds = CheckedCustomDataset(data_root=demo_data.cls_root, data_prefix='train')
    assert len(ds) == 40
    hint = 'run `make demo`'
    nowhere = str(tmp_path / 'nowhere')
    with pytest.raises(UserError) as e:
        CheckedCustomDataset(data_root=nowhere, data_prefix='train', missing_hint=hint)
    assert str(e.value) == f'dataset data_root not found: {nowhere}; {hint}'
    with pytest.raises(UserError, match='annotation file not found: .*meta/test.txt'):
        CheckedCustomDataset(data_root=demo_data.cls_root, ann_file='meta/test.txt')
    with pytest.raises(UserError, match='image folder not found: .*/cls/test$'):
        CheckedCustomDataset(data_root=demo_data.cls_root, data_prefix='test')


# --------------------------------------------------------- pipeline, collate, preprocess, train

FILE_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='RandomResizedCrop', scale=32),
                 dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                 dict(type='PackInputs')]
CIFAR_PIPELINE = [dict(type='RandomCrop', crop_size=32, padding=4),
                  dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                  dict(type='PackInputs')]
FORMATS = {
    'cifar10': (dict(type='CIFAR10Local', split='train', pipeline=CIFAR_PIPELINE), 10),
    'cifar100': (dict(type='CIFAR100Local', split='train', pipeline=CIFAR_PIPELINE), 100),
    'imagenet': (dict(type='ImageNet', split='train', pipeline=FILE_PIPELINE), 1000),
    'tinyimagenet': (dict(type='TinyImageNet', split='train', pipeline=FILE_PIPELINE), 200),
    'cub': (dict(type='CUB', split='train', pipeline=FILE_PIPELINE), 200),
}


@pytest.mark.parametrize('fmt', sorted(FORMATS))
def test_one_training_iteration(tiny_formats, fmt):
    from mmengine.dataset import default_collate, pseudo_collate
    from mmengine.optim import OptimWrapper
    from mmpretrain.registry import MODELS
    from torch.utils.data import DataLoader

    cfg, num_classes = FORMATS[fmt]
    ds = build_dataset(dict(cfg, data_root=tiny_formats[fmt]))
    torch.manual_seed(0)
    loader = DataLoader(ds, batch_size=4, shuffle=False, collate_fn=pseudo_collate)
    batch = next(iter(loader))
    expected = torch.tensor(labels(ds)[:4])
    assert torch.equal(torch.cat([s.gt_label for s in batch['data_samples']]), expected)

    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet_CIFAR', depth=18, base_channels=16),  # narrow: fast
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=128,
                  loss=dict(type='CrossEntropyLoss')),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=num_classes,
                               mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7],
                               to_rgb=fmt not in ('cifar10', 'cifar100'))))
    data = model.data_preprocessor(batch, training=True)
    assert data['inputs'].shape == (4, 3, 32, 32) and data['inputs'].dtype == torch.float32
    assert torch.equal(torch.cat([s.gt_label for s in data['data_samples']]), expected)
    # default_collate stacks the same inputs into one uint8 tensor
    stacked = default_collate([ds[i] for i in range(4)])
    assert stacked['inputs'].shape == (4, 3, 32, 32) and stacked['inputs'].dtype == torch.uint8

    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = model.head.fc.weight.detach().clone()
    log_vars = model.train_step(batch, optim)
    assert torch.isfinite(log_vars['loss']) and log_vars['loss'] > 0
    assert not torch.equal(model.head.fc.weight, before)
