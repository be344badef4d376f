"""Parameters and FLOPs of a model, dense and effective under pruning masks.

Dense figures come from mmengine's analysis tools: :class:`mmengine.analysis.FlopAnalyzer`
traces the model once and counts FLOPs per module (one fused multiply-add = one FLOP, the
convention of fvcore and mmengine), :func:`mmengine.analysis.parameter_count` counts parameters.

Effective figures account for the masks:

* effective parameters = dense parameters - pruned entries;
* effective FLOPs = dense FLOPs - sum over masked modules of ``own_flops * (1 - kept)``, where
  ``own_flops`` are the FLOPs of the operations run by the module itself (its total minus its
  children's, i.e. the convolution of a ``Conv2d``, the matrix product of a ``Linear``) and
  ``kept`` the fraction of its masked entries kept. That is what an unstructured sparse kernel
  would execute; it is not a wall-clock speed-up on dense hardware.

Classification models (mmpretrain) are traced as ``model(inputs, mode='tensor')``, the backbone,
neck and head; detectors (mmdet) as ``model(inputs, data_samples, mode='tensor')`` (their
``_forward``) on a dummy image, the way mmdet's ``tools/analysis_tools/get_flops.py`` does,
so the detector's FLOPs include the RoI head over the proposals that the dummy image yields.
"""
import functools
import sys
from collections import OrderedDict

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.registry import DefaultScope

from ..utils.errors import UserError

#: Input shapes (H, W) used when neither ``--shape`` nor a pipeline of the config gives one.
DEFAULT_SHAPES = dict(classification=(224, 224), detection=(800, 1333))

_RESIZE_TYPES = ('Resize', 'FixScaleResize', 'ResizeEdge')
_CROP_TYPES = ('CenterCrop', )
# training crops give the size the network was trained at; their tuple order differs between
# mmpretrain (h, w) and mmdet (w, h), so only square sizes are read from them
_TRAIN_CROP_TYPES = ('RandomCrop', 'RandomResizedCrop')


# ---------------------------------------------------------------------- building
def build_model(cfg):
    """Build ``cfg.model`` in eval mode from the registry of ``cfg.default_scope``.

    The default scope is set only while building (and restored after), so that counting one
    config does not change how later code resolves registry names.

    Args:
        cfg (Config): a full config (``default_scope``, ``model``, optionally a top-level
            ``data_preprocessor`` as mmpretrain configs have).

    Returns:
        tuple[nn.Module, str]: the model and its task, ``'detection'`` or
        ``'classification'``.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS

    if cfg.get('model') is None:
        raise UserError('the config has no "model" entry')
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(_scope(cfg)):
        model = MODELS.build(model_cfg)
    # SyncBN needs a process group; counting needs none
    model = revert_sync_batchnorm(model)
    model.eval()
    return model, task_of(model)


def _scope(cfg):
    return cfg.get('default_scope') or 'mmpretrain'


def task_of(model):
    """``'detection'`` for an mmdet detector, else ``'classification'``."""
    # a detector's class is only defined once mmdet's detectors are imported; looking it up
    # instead of importing keeps classification-only use free of mmdet (and mmcv's ops)
    detectors = sys.modules.get('mmdet.models.detectors')
    if detectors is not None and isinstance(model, detectors.BaseDetector):
        return 'detection'
    return 'classification'


def _scale_to_hw(value, square_only=False):
    """An int ``s`` -> (s, s); a pair in mmcv's (w, h) order -> (h, w)."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, int) for v in value):
        w, h = value
        if square_only and w != h:
            return None
        return h, w
    return None


def _walk(transforms):
    """The transforms of a pipeline in order, including those nested in wrappers
    (``MultiView``, ``RandomApply``...) under ``transforms``."""
    for t in transforms or []:
        if isinstance(t, (list, tuple)):
            yield from _walk(t)
        elif isinstance(t, dict):
            yield t
            yield from _walk(t.get('transforms'))


def _pipelines(cfg, loaders, variable):
    for key in loaders:
        dataset = (cfg.get(key) or {}).get('dataset')
        while isinstance(dataset, dict):
            if dataset.get('pipeline'):
                yield key, dataset['pipeline']
                break
            dataset = dataset.get('dataset')  # wrappers: RepeatDataset, ClassBalancedDataset
    if cfg.get(variable):
        yield variable, cfg.get(variable)


def _last_size(pipeline, train):
    found = None
    for t in _walk(pipeline):
        kind = str(t.get('type', '')).rpartition('.')[2]
        if kind in _CROP_TYPES and t.get('crop_size') is not None:
            hw = _scale_to_hw(t['crop_size'])
        elif kind in _RESIZE_TYPES and t.get('scale') is not None:
            hw = _scale_to_hw(t['scale'])
        elif train and kind in _TRAIN_CROP_TYPES:
            hw = _scale_to_hw(t.get('crop_size', t.get('scale')), square_only=True)
        else:
            continue
        if hw is not None:
            found = (hw, kind)
    return found


def shape_from_pipeline(cfg):
    """The (H, W) that the test pipeline's last resize or crop produces; failing that, the
    square size of the training pipeline's crop (the size the network is trained at).

    Returns:
        tuple | None: ``((h, w), description)`` or None. With ``keep_ratio`` resizes the shape
        is the bound the image is fitted into.
    """
    for where, pipeline in _pipelines(cfg, ('test_dataloader', 'val_dataloader'),
                                      'test_pipeline'):
        found = _last_size(pipeline, train=False)
        if found is not None:
            return found[0], f"from the {where}'s {found[1]}"
    for where, pipeline in _pipelines(cfg, ('train_dataloader', ), 'train_pipeline'):
        found = _last_size(pipeline, train=True)
        if found is not None:
            return found[0], (f"from the {where}'s {found[1]}; the test pipeline fixes no "
                              'size')
    return None


def dummy_inputs(model, shape, task, seed=0):
    """A preprocessed one-image batch of ``shape`` for ``model``.

    The image (random uint8 pixels, fixed seed) goes through the model's own
    ``data_preprocessor``, like a batch from a data loader; a detector gets a
    ``DetDataSample`` with ``img_shape``, ``ori_shape`` and ``scale_factor`` set, as its test
    pipeline would leave it.

    Args:
        model (BaseModel): the model.
        shape (tuple[int, int]): image height and width.
        task (str): ``'classification'`` or ``'detection'``.
        seed (int): seed of the pixels. Defaults to 0.

    Returns:
        tuple: ``(inputs, data_samples)``; ``data_samples`` is None for classification.
    """
    h, w = shape
    mean = getattr(model.data_preprocessor, 'mean', None)
    channels = int(mean.numel()) if isinstance(mean, torch.Tensor) and mean.numel() > 1 else 3
    gen = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (channels, h, w), generator=gen, dtype=torch.uint8)
    if task == 'detection':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(
            img_id=0, img_path='', ori_shape=(h, w), img_shape=(h, w), scale_factor=(1.0, 1.0)))
        data = dict(inputs=[image], data_samples=[sample])
    else:
        data = dict(inputs=[image], data_samples=None)
    with torch.no_grad():
        data = model.data_preprocessor(data, training=False)
    return data['inputs'], data['data_samples']


# ---------------------------------------------------------------------- counting
def _own_flops(model, by_module):
    """FLOPs of the operations each module runs itself (its total minus its children's)."""
    own = {}
    for name, module in model.named_modules():
        if name not in by_module:  # an alias of a shared module, counted under its first name
            continue
        children = sum(by_module.get(f'{name}.{c}' if name else c, 0)
                       for c, _ in module.named_children())
        own[name] = by_module[name] - children
    return own


def count_complexity(model, inputs, masks=None, forward_kwargs=None):
    """Dense and effective parameters and FLOPs of ``model`` on ``inputs``.

    Args:
        model (nn.Module): the model (put it in eval mode first if that matters).
        inputs (Tensor | tuple[Tensor]): the positional input(s) of ``model``.
        masks (MaskSet, optional): pruning masks; those naming no parameter of ``model`` are
            ignored (e.g. a classifier head when the model is a detector), one whose shape
            differs is an error. Defaults to None (dense figures only).
        forward_kwargs (dict, optional): keyword arguments bound to ``model.forward`` while
            tracing (non-tensor arguments such as ``data_samples`` and ``mode``). Defaults to
            None.

    Returns:
        dict: ``params``, ``flops`` (dense), ``unsupported_ops`` (operator -> count of
        operators FlopAnalyzer does not count) and, with masks, ``effective_params``,
        ``effective_flops``, ``sparsity``, ``layers`` (one dict per masked module: ``module``,
        ``params`` (its masked parameter names), ``numel``, ``kept``, ``kept_fraction``,
        ``flops``, ``effective_flops``) and ``ignored`` (mask names not in the model). Without
        masks these are None / empty.
    """
    had_forward = 'forward' in vars(model)
    previous = vars(model).get('forward')
    if forward_kwargs:
        # jit tracing passes tensors only; bind the rest, as mmdet's get_flops does
        model.forward = functools.partial(model.forward, **forward_kwargs)
    try:
        with torch.no_grad():
            analyzer = FlopAnalyzer(model, inputs)
            analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            by_module = analyzer.by_module()
            unsupported = analyzer.unsupported_ops()
    finally:
        if had_forward:
            model.forward = previous
        elif 'forward' in vars(model):
            del model.forward
    result = dict(params=int(parameter_count(model)['']), flops=int(by_module['']),
                  unsupported_ops=dict(unsupported), effective_params=None,
                  effective_flops=None, sparsity=None, layers=[], ignored=[])
    if masks is None:
        return result

    fitting, ignored = masks.split_for(model)
    own = _own_flops(model, by_module)
    groups = OrderedDict()
    for name, mask in fitting.items():
        module = name.rpartition('.')[0]
        g = groups.setdefault(module, dict(module=module, params=[], numel=0, kept=0))
        g['params'].append(name)
        g['numel'] += mask.numel()
        g['kept'] += int(mask.sum())
    saved = 0.0
    for g in groups.values():
        g['kept_fraction'] = g['kept'] / g['numel'] if g['numel'] else 1.0
        g['flops'] = int(own.get(g['module'], 0))
        g['effective_flops'] = g['flops'] * g['kept_fraction']
        saved += g['flops'] - g['effective_flops']
    result.update(effective_params=result['params'] - (fitting.numel - fitting.kept),
                  effective_flops=result['flops'] - saved, sparsity=fitting.sparsity,
                  layers=list(groups.values()), ignored=ignored)
    return result


def analyze_config(cfg, shape=None, masks=None):
    """Build ``cfg``'s model and count it on a dummy image.

    Args:
        cfg (Config): the config.
        shape (tuple[int, int], optional): input (H, W); None takes the test pipeline's size,
            else :data:`DEFAULT_SHAPES`. Defaults to None.
        masks (MaskSet, optional): masks for the effective figures. Defaults to None.

    Returns:
        dict: :func:`count_complexity`'s result plus ``task``, ``model`` (class name),
        ``input_shape`` (of the preprocessed batch) and ``shape_source``.
    """
    model, task = build_model(cfg)
    if shape is not None:
        source = 'from --shape'
    else:
        found = shape_from_pipeline(cfg)
        if found is not None:
            shape, source = found
        else:
            shape = DEFAULT_SHAPES[task]
            source = 'default: no pipeline fixes a size; pass --shape H W'
    with DefaultScope.overwrite_default_scope(_scope(cfg)):
        inputs, data_samples = dummy_inputs(model, shape, task)
        result = count_complexity(
            model, inputs, masks, forward_kwargs=dict(data_samples=data_samples, mode='tensor'))
    result.update(task=task, model=type(model).__name__, input_shape=list(inputs.shape),
                  shape_source=source)
    return result


# ---------------------------------------------------------------------- printing
def _human(n):
    n = float(n)
    for unit in ('', 'K', 'M', 'G', 'T'):
        if abs(n) < 1000 or unit == 'T':
            return f'{n:.0f}' if unit == '' else f'{n:.3g} {unit}'
        n /= 1000.0
    return str(n)


def format_complexity(result, mask_source=None, per_layer=False):
    """The report as text.

    Args:
        result (dict): from :func:`count_complexity` or :func:`analyze_config`.
        mask_source (str, optional): where the masks came from, for the header.
        per_layer (bool): add a table of the masked modules. Defaults to False.
    """
    lines = []
    if 'model' in result:
        shape = 'x'.join(map(str, result['input_shape']))
        lines += [f'model: {result["model"]} ({result["task"]})',
                  f'input: {shape} ({result["shape_source"]})']
    eff = result['effective_flops'] is not None
    if eff:
        src = f' from {mask_source}' if mask_source else ''
        lines.append(f'masks: {len(result["layers"])} masked modules{src}, sparsity '
                     f'{result["sparsity"]:.4f}' + (
                         f'; ignored {len(result["ignored"])} masks naming no parameter of '
                         f'this model' if result['ignored'] else ''))
    else:
        lines.append('masks: none (no --checkpoint given): dense figures only')
    rows = [('dense parameters', result['params']),
            ('dense FLOPs (mmengine FlopAnalyzer)', result['flops'])]
    if eff:
        rows += [('effective parameters (pruned entries removed)', result['effective_params']),
                 ('effective FLOPs (masked layers scaled by kept fraction)',
                  result['effective_flops'])]
    width = max(len(r[0]) for r in rows) + 1
    lines.append('')
    for label, value in rows:
        lines.append(f'{label + ":":<{width}} {int(round(value)):>15,}  ({_human(value)})')
    if eff:
        lines.append(f'{"reduction (dense / effective):":<{width}} parameters '
                     f'{_ratio(result, "params")}, FLOPs {_ratio(result, "flops")}')
    lines.append('(FLOPs: one multiply-add = 1, one image' + (
        '; the effective count is what an unstructured\n sparse kernel would execute, not a '
        'speed-up on dense hardware)' if eff else ')'))
    uncounted = sorted(result['unsupported_ops'].items(), key=lambda kv: -kv[1])
    if uncounted:
        shown = ', '.join(op.replace('aten::', '') for op, _ in uncounted[:5])
        more = f', ... ({len(uncounted)} kinds)' if len(uncounted) > 5 else ''
        lines.append(f'(operators FlopAnalyzer counts as 0: {shown}{more})')
    if per_layer and eff:
        width = max([len('module')] + [len(g['module']) for g in result['layers']])
        lines += ['', f'{"module":<{width}}  {"dense FLOPs":>14}  {"kept":>7}  '
                  f'{"effective FLOPs":>15}', '-' * (width + 44)]
        for g in result['layers']:
            lines.append(f'{g["module"]:<{width}}  {g["flops"]:>14,}  '
                         f'{g["kept_fraction"]:>7.4f}  {int(round(g["effective_flops"])):>15,}')
    return '\n'.join(lines)


def _ratio(result, key):
    dense, effective = result[key], result[f'effective_{key}']
    return f'{dense / effective:.2f}x' if effective else 'inf'


__all__ = [
    'DEFAULT_SHAPES', 'build_model', 'task_of', 'shape_from_pipeline', 'dummy_inputs',
    'count_complexity', 'analyze_config', 'format_complexity'
]
