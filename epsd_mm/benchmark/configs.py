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

#: The data sets a sweep can run on: pixel statistics of the training images (0..255), image
#: side, and the default training augmentation.
DATASETS = {
    # digits: sklearn's 0..16 scaled to 0..255; a one-pixel shift keeps every stroke in view
    'digits': dict(mean=77.9, std=95.9, size=8, augment='crop'),
    # Fashion-MNIST: statistics of the 60,000 official training images
    'fashion': dict(mean=72.94, std=90.02, size=28, augment='flip'),
}


#: the network and data of each data set's benchmark (:class:`BenchSetting` fields beside the
#: defaults)
SETTINGS = {
    'digits': dict(width=16),
    # calibrated on 2026-12-01 (README, "Fashion-MNIST benchmark"): 175 K prunable weights,
    # about 2 M multiply-adds per image, so ~130 runs of 2 epochs fit in about an hour on two
    # cores; the validation split is held out of the training file in every mode. lr 0.1 was
    # chosen on the validation split by dense + DLB (seed 0: 85.76 / 86.37 / 81.94 / 39.75 at
    # 0.05 / 0.1 / 0.2 / 0.4), the same for every method
    'fashion': dict(width=8, strides=(2, 2, 2, 2), lr=0.1, train_images=10000,
                    val_images=10000),
}


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
        data (str): ``'digits'`` or ``'fashion'`` (:data:`DATASETS`). Defaults to ``'digits'``.
        strides (tuple[int]): the strides of the four ``ResNet_CIFAR`` stages. Defaults to
            ``(1, 2, 2, 2)`` (mmpretrain's).
        input_size (int, optional): side of the network's input; images of another size are
            resized (``Resize``, area interpolation). Defaults to the data set's own size.
        augment (str, optional): the training augmentation, ``'crop'`` (a shift of at most one
            pixel), ``'flip'`` (horizontal flip) or ``'none'``; DLB's two views are two draws of
            it. Defaults to the data set's (:data:`DATASETS`).
        train_images (int, optional): Fashion-MNIST: the size of the fixed stratified training
            subset (:func:`~.fashion.split_indices`). Defaults to None (digits: its split).
        val_images (int): Fashion-MNIST: the size of the validation split carved from the
            training file, disjoint from the training subset. Defaults to 0.
        eval_split (str): ``'test'`` (the data set's test set) or ``'val'`` (the validation
            split, for choosing settings). Defaults to ``'test'``.
        deterministic (bool): ``randomness.deterministic`` of every Runner
            (``torch.use_deterministic_algorithms``). Defaults to True.
    """
    width: int = 16
    depth: int = 18
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    min_kept_per_layer: int = 4
    prunable: dict = field(default_factory=lambda: dict(types=('Conv2d', 'Linear')))
    data: str = 'digits'
    strides: tuple = (1, 2, 2, 2)
    input_size: int = None
    augment: str = None
    train_images: int = None
    val_images: int = 0
    eval_split: str = 'test'
    deterministic: bool = True

    def __post_init__(self):
        if self.data not in DATASETS:
            raise UserError(f'unknown benchmark data {self.data!r}; valid: '
                            f'{", ".join(DATASETS)}')
        if self.eval_split not in ('test', 'val'):
            raise UserError(f"eval_split must be 'test' or 'val', got {self.eval_split!r}")
        if self.eval_split == 'val' and not self.val_images:
            raise UserError('evaluating on the validation split needs val_images > 0')
        self.strides = tuple(int(s) for s in self.strides)
        if self.input_size is None:
            self.input_size = DATASETS[self.data]['size']
        if self.augment is None:
            self.augment = DATASETS[self.data]['augment']
        if self.augment not in ('crop', 'flip', 'none'):
            raise UserError(f"augment must be 'crop', 'flip' or 'none', got {self.augment!r}")

    def as_dict(self):
        return asdict(self)

    def model_name(self):
        return (f'ResNet_CIFAR-{self.depth} (mmpretrain; stem/base channels {self.width}, '
                f'stage strides {self.strides}, 1 input channel, {self.input_size}x'
                f'{self.input_size} input)')


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


def _is_meta_gradient(name):
    from ..pruning.scorers import ProsPr
    from ..registry import CRITERIA
    cls = CRITERIA.get(name)
    return isinstance(cls, type) and issubclass(cls, ProsPr)


def check_sd(sd):
    if sd not in SD_METHODS:
        raise UserError(f'unknown SD method {sd!r}; valid: {", ".join(sorted(SD_METHODS))}')
    return sd


def model_cfg(setting, sd=None):
    """An ``ImageClassifier`` (``sd=None``) or ``SDImageClassifier`` config."""
    stats = DATASETS[setting.data]
    cfg = dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10,
                               mean=[stats['mean']], std=[stats['std']], to_rgb=False),
        backbone=dict(type='ResNet_CIFAR', depth=setting.depth, in_channels=1,
                      stem_channels=setting.width, base_channels=setting.width,
                      strides=tuple(setting.strides),
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


def _load(setting):
    """Transforms that bring an image into ``results['img']`` at the network's input size."""
    if setting.data == 'digits':
        steps = [dict(type='LoadImageFromFile', color_type='grayscale')]
    else:
        steps = []  # FashionMNIST puts the 28x28 uint8 array into results['img'] itself
    if setting.input_size != DATASETS[setting.data]['size']:
        steps.append(dict(type='Resize', scale=(setting.input_size, setting.input_size),
                          interpolation='area'))
    return steps


def _augment(setting):
    if setting.augment == 'crop':
        return [dict(type='RandomCrop', crop_size=setting.input_size, padding=1)]
    if setting.augment == 'flip':  # clothes keep their class under a mirror; digits would not
        return [dict(type='RandomFlip', prob=0.5, direction='horizontal')]
    return []


def dataset_cfg(setting, data, split, pipeline):
    """The dataset of one split: ``'train'`` or the evaluated one (``'eval'``).

    ``data`` is what :func:`~.sweep.prepare_data` returns: ``root`` and, for Fashion-MNIST, the
    fixed ``train_indices`` / ``val_indices`` into the official training file.
    """
    if setting.data == 'digits':
        return dict(type='CustomDataset', data_root=data['root'],
                    data_prefix='train' if split == 'train' else 'test', pipeline=pipeline)
    test_file = split == 'eval' and setting.eval_split == 'test'
    cfg = dict(type='FashionMNIST', data_root=data['root'], split='test' if test_file else
               'train', test_mode=test_file, download=False, pipeline=pipeline)
    if not test_file:
        cfg['indices'] = data['train_indices' if split == 'train' else 'val_indices']
    return cfg


def train_dataloader_cfg(setting, data, sd=None):
    two_views = sd is not None and SD_METHODS[sd].get('two_views', False)
    pairs = sd is not None and SD_METHODS[sd].get('pair_sampler', False)
    aug = _augment(setting)
    if two_views:
        aug = [dict(type='MultiView', num_views=2, transforms=[aug])]
    loader = dict(
        batch_size=setting.batch_size,
        num_workers=0,
        dataset=dataset_cfg(setting, data, 'train',
                            [*_load(setting), *aug, dict(type='PackInputs')]),
        sampler=dict(type='DefaultSampler', shuffle=True))
    if two_views:
        loader['collate_fn'] = dict(type='multiview_collate')
    if pairs:
        loader['batch_sampler'] = dict(type='ClassPairBatchSampler')
    return loader


def runner_cfg(setting, data, work_dir, seed, sd=None, criterion=None, sparsity=None,
               epochs=None, max_iters=None, mask_file=None, name='bench', extra_hooks=()):
    """The full Runner config of one benchmark run.

    Args:
        setting (BenchSetting): what every run shares.
        data (dict): the prepared data set (:func:`~.sweep.prepare_data`): ``root``, and the
            Fashion-MNIST split's indices.
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
        if crit_cfg is not None and _is_meta_gradient(crit_cfg['type']):
            # the reference meta-gradient, with which the quoted sweeps were made; the
            # memory-bounded default gives the same scores up to float rounding, which can
            # swap near-tied weights and so move an accuracy by a run's noise
            crit_cfg.setdefault('meta_mode', 'unrolled')
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
        train_dataloader=train_dataloader_cfg(setting, data, sd),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=setting.lr, momentum=0.9,
                                          nesterov=True, weight_decay=setting.weight_decay)),
        param_scheduler=[dict(type='CosineAnnealingLR', by_epoch=True, T_max=epochs,
                              eta_min=0.0, convert_to_iter_based=True)],
        test_dataloader=dict(
            batch_size=256, num_workers=0,
            dataset=dataset_cfg(setting, data, 'eval',
                                [*_load(setting), dict(type='PackInputs')]),
            sampler=dict(type='DefaultSampler', shuffle=False)),
        test_evaluator=dict(type='Accuracy', topk=(1, )),
        test_cfg=dict(),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=10**6),  # the benchmark reports itself
            checkpoint=None),  # nothing is resumed; no checkpoint is worth its write time
        custom_hooks=hooks,
        randomness=dict(seed=int(seed), deterministic=bool(setting.deterministic)),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        visualizer=dict(type='Visualizer', vis_backends=[], name=name),
        log_level='WARNING',
    )
