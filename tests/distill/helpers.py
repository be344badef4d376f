"""Shared pieces of the self-distillation tests: a tiny real mmpretrain classifier, tiny
class-folder data written with PIL, batches as the data preprocessor makes them, and a Runner
config."""
import os
import os.path as osp

import numpy as np
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from PIL import Image

import epsd_mm.distill  # noqa: F401  (registers the SD components)

NUM_CLASSES = 3
# ResNet_CIFAR-18 with 8 base channels: the real backbone, 1/64 of its width.
BACKBONE = dict(type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8)
NECK = dict(type='GlobalAveragePooling')
HEAD = dict(type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=64)


def classifier_cfg(sd=None):
    """An SDImageClassifier config (a plain ImageClassifier when ``sd`` is None)."""
    cfg = dict(type='ImageClassifier', backbone=BACKBONE, neck=NECK, head=HEAD)
    if sd is not None:
        cfg.update(type='SDImageClassifier', sd=sd)
    return cfg


def build_classifier(sd=None, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(classifier_cfg(sd))
    model.init_weights()
    return model.train()


def samples(labels, start=0):
    """Data samples with ``gt_label`` and ``sample_idx`` (start, start + 1, ...)."""
    out = []
    for k, y in enumerate(labels):
        ds = DataSample().set_gt_label(int(y))
        ds.set_metainfo(dict(sample_idx=start + k))
        out.append(ds)
    return out


def images(n, seed, size=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def ce(logits, labels):
    """Cross-entropy by hand: mean of -log softmax at the label."""
    return -(logits.log_softmax(1).gather(1, labels[:, None])).mean()


def kd(student, teacher, tau):
    """tau^2 * KL(softmax(teacher/tau) || softmax(student/tau)), batch mean, by hand."""
    p_t = (teacher / tau).softmax(1)
    return tau * tau * (p_t * ((teacher / tau).log_softmax(1)
                               - (student / tau).log_softmax(1))).sum(1).mean()


def logits_of(model, x):
    with torch.no_grad():
        return model.head(model.extract_feat(x))


# ---------------------------------------------------------------------------- on-disk data
def make_class_folders(root, counts=(4, 4, 4), size=8, seed=0):
    """``root/<class>/<i>.png`` for classes c0, c1, ... with ``counts[c]`` images each: a
    mmpretrain ``CustomDataset`` (labels in sorted folder order). Returns ``root``."""
    rng = np.random.RandomState(seed)
    for c, n in enumerate(counts):
        d = osp.join(root, f'c{c}')
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            img = rng.randint(0, 60, (size, size, 3)).astype(np.uint8)
            img[..., c % 3] += 150  # the class is the dominant colour
            Image.fromarray(img).save(osp.join(d, f'{i}.png'))
    return root


def runner_cfg(work_dir, data_root, sd, max_epochs=2, batch_size=4, two_views=False,
               pair_sampler=False, augment=True, val=False, hooks=()):
    """A complete mmengine Runner config training an SDImageClassifier on class folders."""
    aug = [dict(type='RandomFlip', prob=0.5, direction='horizontal')] if augment else []
    if two_views:
        aug = [dict(type='MultiView', num_views=2,
                    transforms=[aug or [dict(type='RandomFlip', prob=0.)]])]
    train_pipeline = [dict(type='LoadImageFromFile'), *aug, dict(type='PackInputs')]
    train_dataloader = dict(
        batch_size=batch_size, num_workers=0,
        dataset=dict(type='CustomDataset', data_root=data_root, pipeline=train_pipeline),
        sampler=dict(type='DefaultSampler', shuffle=True))
    if two_views:
        train_dataloader['collate_fn'] = dict(type='multiview_collate')
    if pair_sampler:
        train_dataloader['batch_sampler'] = dict(type='ClassPairBatchSampler')
    model = classifier_cfg(sd)
    model['data_preprocessor'] = dict(num_classes=NUM_CLASSES, mean=[127.5] * 3,
                                      std=[127.5] * 3, to_rgb=True)
    cfg = dict(
        work_dir=work_dir,
        default_scope='mmpretrain',
        model=model,
        train_dataloader=train_dataloader,
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                                          weight_decay=5e-4)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=[dict(type='SelfDistillHook'), *hooks],
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
    )
    if val:
        val_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
        cfg.update(
            val_dataloader=dict(batch_size=4, num_workers=0,
                                dataset=dict(type='CustomDataset', data_root=data_root,
                                             pipeline=val_pipeline),
                                sampler=dict(type='DefaultSampler', shuffle=False)),
            val_evaluator=dict(type='Accuracy', topk=(1, )),
            val_cfg=dict())
    return cfg
