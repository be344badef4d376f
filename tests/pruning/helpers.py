"""Tiny real mmpretrain classifiers and batches for the pruning tests."""
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from mmpretrain.utils import register_all_modules

import epsd_mm  # noqa: F401

register_all_modules(init_default_scope=True)

NUM_CLASSES = 3


def tiny_classifier(seed=0, sd=None, width=8):
    """A real mmpretrain ResNet_CIFAR-18 classifier, ``width`` base channels (tiny)."""
    torch.manual_seed(seed)
    cfg = dict(
        type='ImageClassifier' if sd is None else 'SDImageClassifier',
        backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=width, base_channels=width),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=8 * width,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
    if sd is not None:
        cfg['sd'] = sd
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def batch(seed, n=6, size=8):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 3, size, size, generator=g)
    labels = torch.arange(n) % NUM_CLASSES
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return inputs, samples


def batches(start=0):
    """Endless deterministic batch iterator."""
    k = start
    while True:
        yield batch(k)
        k += 1


SDS = {'dlb': dict(type='DLB', tau=3.0), 'cskd': dict(type='CSKD', tau=4.0),
       'pskd': dict(type='PSKD', alpha_T=0.8)}


def sd_batch(kind, seed, n=6, size=8):
    """A preprocessed batch in the layout of an SD method: ``n`` samples (CS-KD: n/2 pairs),
    two views for DLB, ``sample_idx`` for PS-KD."""
    g = torch.Generator().manual_seed(seed)
    if kind == 'cskd':
        half = torch.arange(n // 2) % NUM_CLASSES
        labels = torch.cat([half, half])
    else:
        labels = (torch.arange(n) + seed) % NUM_CLASSES
    views = 2 if kind == 'dlb' else 1
    inputs = torch.randn(views * n, 3, size, size, generator=g)
    samples = []
    for i, y in enumerate(labels):
        ds = DataSample().set_gt_label(int(y))
        ds.set_metainfo(dict(sample_idx=seed * n + i))
        samples.append(ds)
    return inputs, samples


def stream(kind, n=6):
    """Endless deterministic :func:`sd_batch` iterator."""
    k = 0
    while True:
        yield sd_batch(kind, k, n)
        k += 1


def write_class_folders(root, num_classes=NUM_CLASSES, per_class=8, size=16, seed=0):
    """A tiny class-folder image set (mmpretrain ``CustomDataset`` layout) of coloured noise
    whose mean colour depends on the class."""
    import os

    import numpy as np
    from PIL import Image
    rng = np.random.RandomState(seed)
    for c in range(num_classes):
        d = os.path.join(root, f'class{c}')
        os.makedirs(d, exist_ok=True)
        for i in range(per_class):
            img = rng.randint(0, 80, (size, size, 3)).astype(np.uint8)
            img[..., c % 3] += 150
            Image.fromarray(img).save(os.path.join(d, f'{i}.png'))
    return root


def runner_cfg(data_root, work_dir, hook, max_epochs=1, sd=None, **kw):
    """A complete mmengine Runner config training the tiny classifier on ``data_root``."""
    model = dict(
        type='ImageClassifier' if sd is None else 'SDImageClassifier',
        backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=64,
                  loss=dict(type='CrossEntropyLoss')),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=NUM_CLASSES,
                               mean=[127.5] * 3, std=[64.] * 3))
    if sd is not None:
        model['sd'] = sd
    cfg = dict(
        model=model, work_dir=work_dir, default_scope='mmpretrain',
        train_dataloader=dict(
            batch_size=4, num_workers=0,
            dataset=dict(type='CustomDataset', data_root=data_root, with_label=True,
                         pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]),
            sampler=dict(type='DefaultSampler', shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                                          weight_decay=5e-4)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[hook], randomness=dict(seed=0), log_level='WARNING')
    cfg.update(kw)
    return cfg
