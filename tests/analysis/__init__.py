"""Tiny real models and checkpoints (mmengine layout) for the analysis and export tests."""
import torch
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import get_state_dict, weights_to_cpu
from mmpretrain.registry import MODELS

import epsd_mm  # noqa: F401  (registers components)
import epsd_mm.analysis  # noqa: F401  (registers the epsdc:// scheme)
from epsd_mm.pruning import compute_masks

NUM_CLASSES = 3

#: A real mmpretrain classifier: ResNet_CIFAR-18 with 8 base channels (about 176 K parameters).
MODEL_CFG = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=NUM_CLASSES, in_channels=64,
              loss=dict(type='CrossEntropyLoss')),
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=NUM_CLASSES,
                           mean=[127.5] * 3, std=[64.] * 3))

CONFIG_TEXT = f"""default_scope = 'mmpretrain'
model = {MODEL_CFG!r}
"""


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = MODELS.build(dict(MODEL_CFG, **overrides))
    model.init_weights()
    return model


def tiny_masks(model, sparsity=0.9):
    return compute_masks(model, None, dict(type='random', seed=0), sparsity,
                         show_progress=False)


def make_checkpoint(path, seed=0, sparsity=0.9, pruning=True):
    """Save a pruned checkpoint the way an mmengine Runner lays it out (``meta``,
    ``state_dict`` with ``_metadata``, ``pruning``, plus resume-only state: ``optimizer``,
    ``param_schedulers``, ``message_hub`` with a HistoryBuffer). Returns ``(checkpoint,
    masks)``."""
    model = tiny_model(seed)
    masks = tiny_masks(model, sparsity)
    # one SGD step with momentum and weight decay, then masking: real weights, pruned
    # entries exactly zero
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss = model(torch.randn(2, 3, 8, 8), mode='tensor').square().sum()
    loss.backward()
    optimizer.step()
    masks.apply_(model)
    # apply_ leaves +0.0; checkpoints made by multiplying with a mask (other tools, older
    # epsd_mm) hold -0.0 where a negative weight was pruned: cover that encoding too
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in masks:
                p[~masks[name]] *= -1.0
    hub = MessageHub.get_instance('epsd_analysis_tests')
    hub.update_scalar('train/loss', loss.item())
    checkpoint = dict(
        meta=dict(epoch=1, iter=10, seed=seed, mmengine_version='0.10.7',
                  dataset_meta=dict(classes=['a', 'b', 'c'])),
        state_dict=weights_to_cpu(get_state_dict(model)),
        optimizer=optimizer.state_dict(),
        param_schedulers=[dict(base_lrs=[0.1], last_epoch=1)],
        message_hub=hub.state_dict())
    if pruning:
        checkpoint['pruning'] = masks.to_dict()
    torch.save(checkpoint, path)
    return checkpoint, masks


def bits_equal(a, b):
    """Same dtype, shape and bytes (so +0.0 and -0.0 differ, unlike torch.equal)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.detach().cpu().reshape(-1).view(torch.uint8),
                       b.detach().cpu().reshape(-1).view(torch.uint8))
