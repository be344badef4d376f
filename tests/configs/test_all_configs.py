"""Every shipped config under configs/ (``_base_`` folders aside) parses, builds its model and its
datasets on tiny copies written in the real on-disk formats, and, for classification, trains:
one preprocessed batch gives a finite ``loss_cls`` and ``loss_sd_<method>``.

The classification recipes are also checked as a matrix: every (pruning, SD method, dataset)
exists, EPSD configs prune with ``epsd`` and SNIP ones with ``snip``, dense ones do not prune,
and the three variants of a setting differ in nothing but the pruning hook.

Speed: each model is built once (configs with the same model share it), each setting's data and
loss step are checked once, mmengine's reading of the packages' metafiles is cached (see
``_cached_metafiles``), batches hold 2 samples (plus CS-KD's partners, or DLB's second views),
the loss steps crop at most 64 pixels (ResNet-50 at 224 would dominate the time) and torch runs
one thread (``_one_thread``).
"""
import copy
import functools
import glob
import json
import os
import os.path as osp
import random
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config

from epsd_mm.utils.config_checks import check_data_paths

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(ROOT, 'configs')


def _shipped_configs():
    paths = glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    return sorted(osp.relpath(p, CONFIG_DIR) for p in paths
                  if '_base_' not in osp.relpath(p, CONFIG_DIR).split(os.sep))


CONFIGS = _shipped_configs()

# ------------------------------------------------------------------------ the recipe matrix
VARIANTS = ('epsd', 'dense', 'snip')
SD_METHODS = ('cskd', 'pskd', 'dlb')
#: dataset -> (arch, number of classes, crop size of the train pipeline)
DATASETS = {
    'cifar10': ('r18', 10, 32),
    'cifar100': ('r18', 100, 32),
    'tinyimagenet': ('r18', 200, 64),
    'imagenet': ('r50', 1000, 224),
    'cub': ('r50', 200, 224),
}
CLS_NAME = re.compile(r'^(epsd|dense|snip)_(cskd|pskd|dlb)_(r18|r50)_([a-z0-9]+)$')
SD_TYPES = {'cskd': 'CSKD', 'pskd': 'PSKD', 'dlb': 'DLB'}


def _recipe(variant, sd, dataset):
    arch = DATASETS[dataset][0]
    return osp.join('classification', dataset, f'{variant}_{sd}_{arch}_{dataset}.py')


SETTINGS = [(sd, ds) for ds in DATASETS for sd in SD_METHODS]
RECIPES = [_recipe(v, sd, ds) for sd, ds in SETTINGS for v in VARIANTS]
CLASSIFICATION = [c for c in CONFIGS if c.startswith('classification' + os.sep)]


# ------------------------------------------------------------------------ helpers
@pytest.fixture(scope='module', autouse=True)
def _cached_metafiles():
    """Read each metafile of mmpretrain/mmdet once.

    For every ``mmpretrain::``/``mmdet::`` base, mmengine 0.10.7 (``config/utils.py``,
    ``_get_cfg_metainfo``) re-reads all of the package's model-index YAML files (340 for
    mmpretrain, about 0.25 s) before it falls back to the base file's path, which made parsing the
    shipped configs take a minute. The files do not change during the tests, so their loading is
    memoized; how mmengine resolves a path is unchanged.
    """
    import mmengine.config.utils as cfg_utils
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cfg_utils, 'load', functools.lru_cache(maxsize=None)(cfg_utils.load))
        yield


@pytest.fixture(scope='module', autouse=True)
def _one_thread():
    """One intra-op thread for this module's tiny forwards: on 2 busy cores, torch's two OpenMP
    threads spend most of the time waiting for each other (measured: twice the CPU time)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module', autouse=True)
def _free_caches():
    """The built models and loss steps are kept for this module only."""
    yield
    _MODELS.clear()
    _LOSSES.clear()
    _DATA_CHECKED.clear()


@functools.lru_cache(maxsize=None)
def _parsed(rel):
    return Config.fromfile(osp.join(CONFIG_DIR, rel))


def load_cfg(rel):
    """The parsed config (a private copy: tests may change it)."""
    return copy.deepcopy(_parsed(rel))


def _canonical(obj):
    if hasattr(obj, 'to_dict'):
        obj = obj.to_dict()
    return json.dumps(obj, sort_keys=True, default=repr)


def _drop_pretrained(cfg):
    """Set every ``init_cfg`` of type Pretrained to None (no checkpoint is read)."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        elif isinstance(init, list):
            cfg['init_cfg'] = [c for c in init if c.get('type') != 'Pretrained'] or None
        for value in cfg.values():
            _drop_pretrained(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _drop_pretrained(value)


def _registries(scope):
    if scope == 'mmpretrain':
        from mmpretrain.registry import DATASETS as DATA
        from mmpretrain.registry import MODELS
    elif scope == 'mmdet':
        from mmdet.registry import DATASETS as DATA
        from mmdet.registry import MODELS
    else:
        raise AssertionError(f'unexpected default_scope {scope!r}')
    return MODELS, DATA


def _model_cfg(cfg):
    # a ConfigDict, as the Runner passes it (mmdet reads train_cfg.rpn as an attribute)
    model = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        # what the Runner does with a top-level data_preprocessor
        model.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    _drop_pretrained(model)
    return model


_MODELS = {}


def get_model(cfg):
    """The model of ``cfg``, built once per distinct model config (never run: copy it)."""
    from mmengine.registry import DefaultScope
    model_cfg = _model_cfg(cfg)
    key = (cfg.default_scope, _canonical(model_cfg))
    if key not in _MODELS:
        models, _ = _registries(cfg.default_scope)
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            _MODELS[key] = models.build(model_cfg)
    return _MODELS[key]


def _leaf_datasets(dataset):
    if isinstance(dataset.get('datasets'), (list, tuple)):
        for sub in dataset['datasets']:
            yield from _leaf_datasets(sub)
    elif isinstance(dataset.get('dataset'), dict):
        yield from _leaf_datasets(dataset['dataset'])
    else:
        yield dataset


TINY_KEYS = {'CIFAR10Local': 'cifar10', 'CIFAR100Local': 'cifar100', 'ImageNet': 'imagenet',
             'TinyImageNet': 'tinyimagenet', 'CUB': 'cub'}


def point_to_tiny(cfg, request):
    """Replace every dataset's ``data_root`` by a tiny copy in the same format."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not loader:
            continue
        for ds in _leaf_datasets(loader['dataset']):
            root, dtype = ds.get('data_root', ''), ds['type']
            if root.startswith('data/demo/'):
                ds['data_root'] = osp.join(request.getfixturevalue('demo_data').root,
                                           root[len('data/demo/'):])
            elif dtype in TINY_KEYS:
                ds['data_root'] = request.getfixturevalue('tiny_formats')[TINY_KEYS[dtype]]
            elif dtype in ('VOCDataset', 'CheckedVOCDataset'):
                ds['data_root'] = request.getfixturevalue('tiny_voc0712')
            else:
                raise AssertionError(f'no tiny copy for a {dtype} at {root!r}: add one here')
            # mmengine serializes a dataset's list after a gc.collect(), 0.5 s each with this
            # module's models alive; the list is a handful of entries here
            ds['serialize_data'] = False
    check_data_paths(cfg)  # every path the config names exists in the tiny copy
    return cfg


def build_loader(cfg, key='train_dataloader', batch_size=2):
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner
    loader = copy.deepcopy(cfg[key])
    loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return Runner.build_dataloader(loader, seed=0)


#: the largest train crop in the loss steps: ResNet-50 at 224 pixels would make them slow
LOSS_CROP = 64


def _shrink(transform):
    """Lower the crop sizes of a train pipeline to at most LOSS_CROP pixels (a detector's Resize
    to 128): the loss steps stay fast, the pipeline's structure is unchanged."""
    if isinstance(transform, (list, tuple)):
        for t in transform:
            _shrink(t)
        return
    kind = transform.get('type')
    if kind == 'RandomResizedCrop' and transform['scale'] > LOSS_CROP:
        transform['scale'] = LOSS_CROP
    elif kind == 'RandomCrop' and transform['crop_size'] > LOSS_CROP:
        transform['crop_size'] = LOSS_CROP
    elif kind == 'Resize' and 'scale' in transform:
        transform['scale'] = (128, 128)
    _shrink(transform.get('transforms', []))


def _crops(transform):
    if isinstance(transform, (list, tuple)):
        return [c for t in transform for c in _crops(t)]
    kind = transform.get('type')
    own = [transform['scale']] if kind == 'RandomResizedCrop' else \
        [transform['crop_size']] if kind == 'RandomCrop' else []
    return own + _crops(transform.get('transforms', []))


def train_crop(cfg):
    """The crop size of a classification config's train pipeline."""
    crops = set(_crops(cfg.train_dataloader.dataset.pipeline))
    assert len(crops) == 1, cfg.train_dataloader.dataset.pipeline
    return crops.pop()


@pytest.fixture(scope='module')
def tiny_voc0712(tmp_path_factory):
    """A tiny ``VOCdevkit`` with VOC2007 (trainval 2, test 1) and VOC2012 (trainval 2), the
    objects named with VOC classes."""
    from mmdet.datasets import VOCDataset
    from PIL import Image

    from epsd_mm.datasets import DEMO_CLASSES
    from epsd_mm.datasets.demo import render_detection_image, voc_xml
    rename = dict(zip(DEMO_CLASSES, VOCDataset.METAINFO['classes']))
    root = str(tmp_path_factory.mktemp('voc0712') / 'VOCdevkit')
    for year, splits in (('VOC2007', dict(trainval=2, test=1)), ('VOC2012', dict(trainval=2))):
        voc = osp.join(root, year)
        for sub in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
            os.makedirs(osp.join(voc, sub))
        n = 0
        for split, count in splits.items():
            ids = []
            for _ in range(count):
                n += 1
                img_id = f'{year[3:]}_{n:06d}'
                img, objects = render_detection_image(np.random.RandomState(n))
                for obj in objects:
                    obj['name'] = rename[obj['name']]
                Image.fromarray(img).save(osp.join(voc, 'JPEGImages', f'{img_id}.jpg'))
                with open(osp.join(voc, 'Annotations', f'{img_id}.xml'), 'w') as f:
                    f.write(voc_xml(f'{img_id}.jpg', 128, 128, objects, folder=year))
                ids.append(img_id)
            with open(osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
                f.write('\n'.join(ids) + '\n')
    return root + '/'


def _sd_hook_names(cfg):
    return [h['type'] for h in cfg.get('custom_hooks', [])]


# ------------------------------------------------------------------------ every config
#: The demo's plain mmdet/mmpretrain configs, which open published checkpoints without epsd_mm.
PLAIN_CONFIGS = (osp.join('demo', 'cls_demo_infer.py'), osp.join('demo', 'frcnn_demo_infer.py'))


@pytest.mark.parametrize('rel', CONFIGS)
def test_config_parses_and_builds_its_model(rel):
    cfg = load_cfg(rel)
    assert cfg.default_scope in ('mmpretrain', 'mmdet')
    if rel in PLAIN_CONFIGS:
        assert 'custom_imports' not in cfg and not cfg.get('custom_hooks')
        assert 'epsd_mm' not in cfg.pretty_text and 'Checked' not in cfg.pretty_text
        model = get_model(cfg)
        assert type(model).__name__ == ('ImageClassifier' if cfg.default_scope == 'mmpretrain'
                                        else 'FasterRCNN')
        return
    assert cfg.custom_imports == dict(imports=['epsd_mm'], allow_failed_imports=False)
    model = get_model(cfg)
    if cfg.default_scope == 'mmpretrain':
        from epsd_mm.distill import SDImageClassifier
        assert isinstance(model, SDImageClassifier)
        # every SD method needs the hook (PS-KD's epoch and memory size, SD state in checkpoints)
        assert 'SelfDistillHook' in _sd_hook_names(cfg)
    else:
        from mmdet.models.detectors import FasterRCNN
        assert isinstance(model, FasterRCNN)


_DATA_CHECKED = set()


@pytest.mark.parametrize('rel', CONFIGS)
def test_datasets_build_on_a_tiny_copy_in_the_real_format(rel, request):
    cfg = point_to_tiny(load_cfg(rel), request)
    key = (cfg.default_scope, _canonical(cfg.train_dataloader), _canonical(cfg.val_dataloader))
    if key in _DATA_CHECKED:  # the same data as a config checked already (epsd/snip/dense)
        return
    _, datasets = _registries(cfg.default_scope)
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        val = datasets.build(copy.deepcopy(cfg.val_dataloader.dataset))
        assert len(val) > 0 and 'inputs' in val[0]
    batch = next(iter(build_loader(cfg, batch_size=1)))
    assert len(batch['data_samples']) >= 1
    if cfg.default_scope == 'mmdet':
        assert len(batch['data_samples'][0].gt_instances) > 0
    _DATA_CHECKED.add(key)


_LOSSES = {}


def loss_steps(cfg, request):
    """The losses of training iterations on the tiny copy (no update), once per setting, as the
    Runner computes them: the real dataloader (sampler, batch sampler, collate) and the model's
    data preprocessor; an SD method is told the dataset size and the epoch as SelfDistillHook
    tells it. Two iterations for an SD classifier (DLB's second one distils the first), one for
    a detector."""
    cfg = point_to_tiny(copy.deepcopy(cfg), request)
    _shrink(cfg.train_dataloader.dataset.get('pipeline', []))
    for ds in _leaf_datasets(cfg.train_dataloader.dataset):
        _shrink(ds.get('pipeline', []))
    key = (_canonical(_model_cfg(cfg)), _canonical(cfg.train_dataloader))
    if key not in _LOSSES:
        model = copy.deepcopy(get_model(cfg))
        model.init_weights()  # as the Runner does (no Pretrained init_cfg is left)
        model.train()
        loader = build_loader(cfg)
        sd = getattr(model, 'sd', None)
        if sd is not None:
            sd.set_num_samples(len(loader.dataset))
            sd.set_epoch(0, cfg.train_cfg.max_epochs)
        # the augmentations draw from numpy's and Python's global generators
        torch.manual_seed(0)
        np.random.seed(0)
        random.seed(0)
        steps, batches = [], iter(loader)
        for _ in range(1 if sd is None else 2):
            data = model.data_preprocessor(next(batches), training=True)
            with torch.no_grad():
                losses = model(**data, mode='loss')
            steps.append((data, losses))
        # BatchNorm weights that are all zero at initialization (mmpretrain's zero-init of the
        # last BN of residual blocks) would zero the pruning scores of whole residual branches
        zero_bn = [n for n, m in model.named_modules()
                   if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine
                   and not m.weight.detach().any()]
        _LOSSES[key] = (sd, steps, zero_bn)
    return _LOSSES[key]


def _finite(value):
    values = value if isinstance(value, (list, tuple)) else [value]
    return all(bool(torch.isfinite(v).all()) for v in values)


@pytest.mark.parametrize('rel', CONFIGS)
def test_a_training_batch_gives_finite_losses(rel, request):
    cfg = load_cfg(rel)
    sd, steps, zero_bn = loss_steps(cfg, request)
    if cfg.default_scope == 'mmdet':
        (_, losses), = steps
        for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'):
            assert key in losses and _finite(losses[key]), key
        return

    if rel in PLAIN_CONFIGS:  # a plain ImageClassifier: mmpretrain's own loss
        for _, losses in steps:
            assert set(losses) == {'loss'} and _finite(losses['loss'])
        return
    name = type(sd).__name__.lower()
    m = CLS_NAME.match(osp.splitext(osp.basename(rel))[0])
    if m:  # the recipes prune at initialization: no residual branch may start silenced
        assert zero_bn == []
    size = min(train_crop(cfg), LOSS_CROP)
    sd_key = f'loss_sd_{name}'
    for data, losses in steps:
        assert set(losses) == {'loss_cls', sd_key}
        for k, v in losses.items():
            assert v.dim() == 0 and torch.isfinite(v), (k, v)
        assert losses['loss_cls'] > 0
        inputs, samples = data['inputs'], data['data_samples']
        assert inputs.shape[-2:] == (size, size)
        if name == 'cskd':  # 2 samples, then a same-class partner of each
            assert inputs.size(0) == len(samples) == 4
            labels = [int(s.gt_label) for s in samples]
            assert labels[:2] == labels[2:]
        elif name == 'dlb':  # two views of 2 samples
            assert inputs.size(0) == 2 * len(samples) == 4
        else:
            assert inputs.size(0) == len(samples) == 2
    first, second = steps[0][1][sd_key], steps[1][1][sd_key]
    if name == 'dlb':
        # no previous batch in the first iteration; the second distils the first
        assert first == 0 and second > 0
    elif name == 'pskd':
        # alpha_1 = alpha_T / max_epochs > 0; the memory now holds the 4 samples seen
        assert first > 0 and second > 0
        assert int(sd.seen.sum()) == 4
    else:
        assert first >= 0 and second >= 0


# ------------------------------------------------------------------------ the recipes
def test_the_recipe_matrix_is_complete():
    assert sorted(CLASSIFICATION) == sorted(RECIPES)


def _pruning_hooks(cfg):
    return [h for h in cfg.get('custom_hooks', []) if h['type'] == 'PruningHook']


@pytest.mark.parametrize('rel', [c for c in CONFIGS if osp.basename(c).startswith('epsd_')])
def test_epsd_configs_prune_with_the_epsd_criterion(rel):
    cfg = load_cfg(rel)
    hooks = _pruning_hooks(cfg)
    if cfg.default_scope == 'mmdet':  # the detector keeps the classifier's masks: no criterion
        assert len(hooks) == 1 and hooks[0].get('mask_file')
        return
    assert len(hooks) == 1 and hooks[0]['criterion']['type'] == 'epsd'
    assert 0 < hooks[0]['sparsity'] < 1


@pytest.mark.parametrize('rel', CLASSIFICATION)
def test_recipe_contents(rel):
    cfg = load_cfg(rel)
    variant, sd, arch, dataset = CLS_NAME.match(osp.splitext(osp.basename(rel))[0]).groups()
    assert osp.basename(osp.dirname(rel)) == dataset
    want_arch, num_classes, _ = DATASETS[dataset]
    assert arch == want_arch
    model = cfg.model
    assert model.type == 'SDImageClassifier' and model.sd.type == SD_TYPES[sd]
    assert model.backbone.depth == {'r18': 18, 'r50': 50}[arch]
    assert model.backbone.zero_init_residual is False
    assert train_crop(cfg) == DATASETS[dataset][2]
    assert model.head.num_classes == num_classes == cfg.data_preprocessor.num_classes

    hooks = _pruning_hooks(cfg)
    assert _sd_hook_names(cfg).count('SelfDistillHook') == 1
    if variant == 'dense':
        assert hooks == [] and cfg.get('sparsity') is None
    else:
        assert len(hooks) == 1
        assert hooks[0]['criterion']['type'] == variant  # 'epsd' or 'snip'
        assert hooks[0]['sparsity'] == cfg.sparsity and 0 < cfg.sparsity < 1
        assert cfg.custom_hooks[0]['type'] == 'PruningHook'  # custom_hooks.0.sparsity=... works

    loader = cfg.train_dataloader
    if sd == 'cskd':
        assert loader.batch_sampler.type == 'ClassPairBatchSampler'
        assert model.sd.loss_weight == (3.0 if dataset == 'cub' else 1.0)
    if sd == 'dlb':
        assert loader.collate_fn.type == 'multiview_collate'
        multiview = [t for t in loader.dataset.pipeline if t['type'] == 'MultiView']
        assert len(multiview) == 1 and multiview[0]['num_views'] == 2
        assert multiview[0]['transforms'] == [cfg.train_augment]
    else:
        assert loader.dataset.pipeline == cfg.train_pipeline
    if sd == 'pskd':
        # N x C memory: float16 on ImageNet
        assert model.sd.get('memory_dtype', 'float32') == (
            'float16' if dataset == 'imagenet' else 'float32')


@pytest.mark.parametrize('sd,dataset', SETTINGS, ids=[f'{sd}-{ds}' for sd, ds in SETTINGS])
def test_epsd_snip_and_dense_differ_only_in_the_pruning_hook(sd, dataset):
    cfgs = {v: load_cfg(_recipe(v, sd, dataset)).to_dict() for v in VARIANTS}
    rest = {v: {k: c[k] for k in c if k not in ('custom_hooks', 'sparsity')}
            for v, c in cfgs.items()}
    assert rest['epsd'] == rest['dense'] == rest['snip']  # model, data, schedule, runtime
    assert cfgs['epsd']['sparsity'] == cfgs['snip']['sparsity']
    dense_hooks = cfgs['dense']['custom_hooks']
    assert dense_hooks == [dict(type='SelfDistillHook')]
    epsd_hooks, snip_hooks = cfgs['epsd']['custom_hooks'], cfgs['snip']['custom_hooks']
    assert epsd_hooks[1:] == snip_hooks[1:] == dense_hooks
    epsd_prune, snip_prune = dict(epsd_hooks[0]), dict(snip_hooks[0])
    assert epsd_prune.pop('criterion')['type'] == 'epsd'
    assert snip_prune.pop('criterion')['type'] == 'snip'
    assert epsd_prune == snip_prune  # same sparsity, scope, prunable layers


def test_the_detection_config_names_an_existing_classification_config():
    # configs/epsd_voc_frcnn.py loads work_dirs/<classification config name>/epoch_<N>.pth
    cfg = load_cfg('epsd_voc_frcnn.py')
    ckpt = cfg.model.backbone.init_cfg.checkpoint
    m = re.fullmatch(r'work_dirs/(\w+)/epoch_(\d+)\.pth', ckpt)
    assert m, ckpt
    rel = osp.join('classification', 'imagenet', m.group(1) + '.py')
    assert rel in CONFIGS
    cls_cfg = load_cfg(rel)
    assert int(m.group(2)) == cls_cfg.train_cfg.max_epochs
    assert _pruning_hooks(cls_cfg)[0]['criterion']['type'] == 'epsd'
    # the same depth of ResNet
    assert cls_cfg.model.backbone.depth == cfg.model.backbone.depth
