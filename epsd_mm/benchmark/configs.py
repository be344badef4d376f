"""Runner configs of the benchmark: one network, one schedule, one data pipeline for every run.

Every run of a sweep is built here from the same :class:`BenchSetting`; the only things that
differ between runs are the seed, whether the model is an ``SDImageClassifier`` and, for pruned
runs, the ``PruningHook``'s criterion and sparsity. The criteria run with their registered
defaults (no per-method tuning).
"""
import ast
import copy
from dataclasses import asdict, dataclass, field

from ..utils.errors import UserError

#: ``--sd`` name -> the SD method config and what its training data loader needs.
SD_METHODS = {
    'dlb': dict(sd=dict(type='DLB', tau=3.0, loss_weight=1.0), two_views=True),
    'cskd': dict(sd=dict(type='CSKD', tau=4.0, loss_weight=1.0), pair_sampler=True),
    'pskd': dict(sd=dict(type='PSKD', alpha_T=0.8), two_views=False),
}

#: The pruning criteria a full sweep compares, in table order.
CRITERIA = ('random', 'snip', 'grasp', 'synflow', 'prospr', 'epsd')

# Pixel statistics of the digits training images after scaling 0..16 to 0..255.
_MEAN, _STD = 77.9, 95.9


@dataclass
class BenchSetting:
    """What every run of a sweep shares.

    Args:
        width (int): ``stem_channels`` and ``base_channels`` of ``ResNet_CIFAR``; the stages
            have ``width * (1, 2, 4, 8)`` channels. Defaults to 16.
        depth (int): ``ResNet_CIFAR`` depth. Defaults to 18.
        epochs (int): training epochs. Defaults to 10.
        batch_size (int): samples per training batch (CS-KD adds a same-class partner to each).
            Defaults to 64.
        lr (float): SGD learning rate (Nesterov momentum 0.9, cosine decay to 0).
            Defaults to 0.05.
        weight_decay (float): Defaults to 5e-4.
        min_kept_per_layer (int): the ``PruningHook`` guard against emptied layers, the same for
            every criterion. Defaults to 4.
        prunable (dict): which weights are prunable, the same for every criterion. Defaults to
            every Conv2d/Linear weight, the stem conv and the classifier included.
    """
    width: int = 16
    depth: int = 18
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    min_kept_per_layer: int = 4
    prunable: dict = field(default_factory=lambda: dict(types=('Conv2d', 'Linear')))

    def as_dict(self):
        return asdict(self)

    def model_name(self):
        return (f'ResNet_CIFAR-{self.depth} (mmpretrain; stem/base channels {self.width}, '
                f'1 input channel, 8x8 input)')


#: Method-spec keys that configure the ``PruningHook`` rather than the criterion.
HOOK_KEYS = ('score_mode', 'scope', 'min_kept_per_layer')


def parse_method(spec):
    """A method spec: a criterion name, optionally with options for a diagnostic variant.

    ``'epsd'`` -> ``({'type': 'epsd'}, {})``;
    ``'epsd:inner_steps=1,inner_lr=0.01,score_mode=eval'`` ->
    ``({'type': 'epsd', 'inner_steps': 1, 'inner_lr': 0.01}, {'score_mode': 'eval'})``.
    Values are Python literals (numbers, booleans) or plain strings; ``score_mode``, ``scope``
    and ``min_kept_per_layer`` go to the ``PruningHook``, everything else to the criterion.

    Returns:
        tuple[dict, dict]: the criterion config and the hook's extra arguments.
    """
    name, _, options = spec.partition(':')
    criterion, hook = dict(type=name.strip()), {}
    for item in filter(None, (o.strip() for o in options.split(','))):
        key, eq, value = item.partition('=')
        if not eq or not key.strip():
            raise UserError(f'method option {item!r} in {spec!r} is not key=value '
                            "(e.g. 'epsd:inner_steps=1,inner_lr=0.01')")
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            value = value.strip()
        (hook if key.strip() in HOOK_KEYS else criterion)[key.strip()] = value
    return criterion, hook


def check_sd(sd):
    if sd not in SD_METHODS:
        raise UserError(f'unknown SD method {sd!r}; valid: {", ".join(sorted(SD_METHODS))}')
    return sd


def model_cfg(setting, sd=None):
    """An ``ImageClassifier`` (``sd=None``) or ``SDImageClassifier`` config."""
    cfg = dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=[_MEAN],
                               std=[_STD], to_rgb=False),
        backbone=dict(type='ResNet_CIFAR', depth=setting.depth, in_channels=1,
                      stem_channels=setting.width, base_channels=setting.width,
                      # mmpretrain zero-initializes the last BN of every residual block by
                      # default; at initialization that makes the gradient of every conv inside
                      # a residual branch exactly 0, so SNIP, GraSP, SynFlow and the first inner
                      # step of ProsPr/EPSD would score those convs 0 (ties broken by position)
                      zero_init_residual=False),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=8 * setting.width,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
    if sd is not None:
        cfg.update(type='SDImageClassifier', sd=copy.deepcopy(SD_METHODS[sd]['sd']))
    return cfg


def _load():
    return dict(type='LoadImageFromFile', color_type='grayscale')


def _augment():
    # digits must not be flipped; a shift of at most one pixel keeps every stroke in view
    return [dict(type='RandomCrop', crop_size=8, padding=1)]


def train_dataloader_cfg(setting, data_root, sd=None):
    two_views = sd is not None and SD_METHODS[sd].get('two_views', False)
    pairs = sd is not None and SD_METHODS[sd].get('pair_sampler', False)
    aug = _augment()
    if two_views:
        aug = [dict(type='MultiView', num_views=2, transforms=[aug])]
    loader = dict(
        batch_size=setting.batch_size,
        num_workers=0,
        dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                     pipeline=[_load(), *aug, dict(type='PackInputs')]),
        sampler=dict(type='DefaultSampler', shuffle=True))
    if two_views:
        loader['collate_fn'] = dict(type='multiview_collate')
    if pairs:
        loader['batch_sampler'] = dict(type='ClassPairBatchSampler')
    return loader


def runner_cfg(setting, data_root, work_dir, seed, sd=None, criterion=None, sparsity=None,
               epochs=None, max_iters=None, mask_file=None, name='bench', extra_hooks=()):
    """The full Runner config of one benchmark run.

    Args:
        setting (BenchSetting): what every run shares.
        data_root (str): the digits dataset (:func:`prepare_digits`).
        work_dir (str): the run's scratch directory.
        seed (int): ``randomness.seed`` (weights, data order, random masks).
        sd (str, optional): ``'dlb'``, ``'cskd'`` or ``'pskd'``; None trains a plain
            ``ImageClassifier`` with cross-entropy. Defaults to None.
        criterion (str, optional): prune at initialization with this criterion, a method spec
            of :func:`parse_method` (needs ``sparsity``); None trains dense. Defaults to None.
        sparsity (float, optional): the pruning target. Defaults to None.
        epochs (int, optional): overrides ``setting.epochs``.
        max_iters (int, optional): train for this many iterations instead of epochs (the cost
            measurement), keeping the learning-rate schedule of the full run. Defaults to None.
        mask_file (str, optional): masks to load instead of scoring (``PruningHook``).
        name (str): the experiment name (unique per run in one process).
        extra_hooks (Sequence[Hook]): more hook objects (the benchmark's probes).
    """
    epochs = setting.epochs if epochs is None else int(epochs)
    hooks = []
    if sd is not None:
        hooks.append(dict(type='SelfDistillHook'))
    if criterion is not None or mask_file is not None:
        crit_cfg, hook_args = parse_method(criterion) if criterion else (None, {})
        hook = dict(type='PruningHook', criterion=crit_cfg, sparsity=sparsity,
                    prunable=copy.deepcopy(setting.prunable),
                    min_kept_per_layer=setting.min_kept_per_layer,
                    mask_file=mask_file, show_progress=False)
        hook.update(hook_args)
        hooks.append(hook)
    hooks.extend(extra_hooks)
    train_cfg = dict(by_epoch=True, max_epochs=epochs)
    if max_iters is not None:
        train_cfg = dict(by_epoch=False, max_iters=int(max_iters))
    return dict(
        model=model_cfg(setting, sd),
        work_dir=work_dir,
        experiment_name=name,
        default_scope='mmpretrain',
        train_dataloader=train_dataloader_cfg(setting, data_root, sd),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=setting.lr, momentum=0.9,
                                          nesterov=True, weight_decay=setting.weight_decay)),
        param_scheduler=[dict(type='CosineAnnealingLR', by_epoch=True, T_max=epochs,
                              eta_min=0.0, convert_to_iter_based=True)],
        test_dataloader=dict(
            batch_size=256, num_workers=0,
            dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='test',
                         pipeline=[_load(), dict(type='PackInputs')]),
            sampler=dict(type='DefaultSampler', shuffle=False)),
        test_evaluator=dict(type='Accuracy', topk=(1, )),
        test_cfg=dict(),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=10**6),  # the benchmark reports itself
            checkpoint=None),  # nothing is resumed; no checkpoint is worth its write time
        custom_hooks=hooks,
        randomness=dict(seed=int(seed)),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        visualizer=dict(type='Visualizer', vis_backends=[], name=name),
        log_level='WARNING',
    )
