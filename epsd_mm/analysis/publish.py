"""Publish a trained checkpoint the OpenMMLab way: weights, ``meta`` and masks, nothing else.

A training checkpoint of the mmengine Runner carries resume state: the optimizer, the
schedulers, the message hub (``HistoryBuffer`` objects and numpy values, which torch >= 2.6
refuses to load with its default ``weights_only=True``) and, here, the self-distillation state.
Only ``epsd_mm`` (its narrow allow-list in :mod:`epsd_mm.utils.compat`) and our tools can open
it. :func:`publish_checkpoint` follows the convention of mmdet's and mmpretrain's
``tools/model_converters/publish_model.py``: it drops that state and keeps

* ``meta``, with every value turned into plain Python types (``dict``, ``list``, ``tuple``,
  ``str``, numbers, ``None``; numpy scalars and arrays become numbers and lists),
* ``state_dict``, the model's own key names (it loads into an unmodified mmdet/mmpretrain
  model),
* ``pruning``, the masks (bool tensors) and their provenance, plain types as well,

and writes ``OUT-<first 8 hex digits of its sha256>.pth`` atomically. Before the file gets
its final name it is read back with ``torch.load(weights_only=True)`` against torch's *stock*
allow-list (epsd_mm's additions removed for the check), so what is published loads in any
process that never imports ``epsd_mm``: ``mmdet.apis.init_detector``, ``DetInferencer``,
``mmpretrain.apis.init_model``, the inferencers, mmdet's own ``tools/test.py``.
"""
import os.path as osp
from collections import OrderedDict

import numpy as np
import torch

from ..pruning.masks import CHECKPOINT_KEY
from ..utils.errors import UserError
from ..utils.io import atomic_hashed_torch_save
from .compact import read_checkpoint

#: The top-level keys a published checkpoint keeps; every other one is dropped.
PUBLISHED_KEYS = ('meta', 'state_dict', CHECKPOINT_KEY)

_SCALARS = (bool, int, float, str, type(None))


def plain(obj):
    """``obj`` with every container and scalar turned into a plain Python type that
    ``torch.load(weights_only=True)`` accepts; tensors stay tensors.

    Dicts (``ConfigDict``, ``OrderedDict``...) become ``dict``, tuples stay tuples (named
    tuples become plain ones), lists stay lists; numpy scalars become Python numbers and numpy
    arrays nested lists; ``torch.Size`` becomes a tuple; any other object becomes its
    ``str()`` (e.g. a ``torch.dtype``), since a published checkpoint must not need its class.
    """
    if type(obj) in _SCALARS:  # exact types: np.float64 is a float subclass but pickles as numpy
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {plain(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, torch.Size)):
        return tuple(plain(v) for v in obj)
    if isinstance(obj, (list, set, frozenset)):
        return [plain(v) for v in obj]
    for kind in (bool, str, int, float):  # subclasses: enum members, np.str_, ...
        if isinstance(obj, kind):
            return kind(obj)
    return str(obj)


def _state_dict(state, source):
    if not isinstance(state, dict) or not state:
        raise UserError(f'{source} has no "state_dict" (or an empty one): it is not a model '
                        'checkpoint of the mmengine Runner')
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f'state_dict entries of {source} that are not tensors: '
                        f'{", ".join(map(str, bad[:5]))}; a published checkpoint holds tensors '
                        'only')
    out = OrderedDict((str(k), v.detach().cpu()) for k, v in state.items())
    metadata = getattr(state, '_metadata', None)
    if metadata is not None:
        # the module versions BatchNorm & co. read when loading (_load_from_state_dict)
        out._metadata = OrderedDict((str(k), plain(v)) for k, v in metadata.items())
    return out


def published_form(checkpoint, source='the checkpoint'):
    """The published form of a loaded checkpoint dict.

    Returns:
        tuple[dict, list[str]]: the published checkpoint and the top-level keys dropped.
    """
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise UserError(f'{source} is not an mmengine checkpoint: it has no "state_dict" entry '
                        '(a bare state dict needs no publishing: it already holds tensors only)')
    out = dict(meta=plain(checkpoint.get('meta') or {}),
               state_dict=_state_dict(checkpoint['state_dict'], source))
    if CHECKPOINT_KEY in checkpoint:
        pruning = checkpoint[CHECKPOINT_KEY]
        masks = pruning.get('masks') if isinstance(pruning, dict) else None
        if not isinstance(masks, dict):
            raise UserError(f'the "{CHECKPOINT_KEY}" entry of {source} holds no masks')
        pruning = plain({k: v for k, v in pruning.items() if k != 'masks'})
        pruning['masks'] = OrderedDict(
            (str(n), torch.as_tensor(m).detach().to('cpu', torch.bool)) for n, m in masks.items())
        out[CHECKPOINT_KEY] = pruning
    dropped = [k for k in checkpoint if k not in PUBLISHED_KEYS]
    return out, dropped


def _stock_weights_only_load(path):
    """``torch.load(path, weights_only=True)`` with only torch's own safe globals: the
    allow-list that epsd_mm adds (:mod:`epsd_mm.utils.compat`) is set aside for the check."""
    serialization = torch.serialization
    added = serialization.get_safe_globals() if hasattr(serialization, 'get_safe_globals') \
        else []
    if added:
        serialization.clear_safe_globals()
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    finally:
        if added:
            serialization.add_safe_globals(added)


def published_name(out):
    """``OUT`` without a ``.pth`` ending: the stem that the sha256 suffix is added to."""
    return out[:-len('.pth')] if out.endswith('.pth') else out


def publish_checkpoint(src, out):
    """Write the published form of checkpoint ``src`` (plain or compact) as
    ``published_name(out) + '-<sha256[:8]>.pth'``, atomically.

    Args:
        src (str): A training checkpoint (or a compact one, which is expanded).
        out (str): The output name, with or without ``.pth``.

    Returns:
        dict: ``path`` (the file written), ``sha256``, ``dropped`` (top-level keys removed),
        ``kept`` (those kept), ``masks`` (number of pruning masks), ``bytes`` and
        ``src_bytes``.
    """
    stem = published_name(out)
    if not osp.basename(stem):
        raise UserError(f'the output name {out!r} has no file name')
    checkpoint = read_checkpoint(src)
    published, dropped = published_form(checkpoint, source=src)
    def check(tmp):
        try:
            _stock_weights_only_load(tmp)
        except Exception as e:  # a bug of plain(): never publish a file that would not load
            raise RuntimeError(f'the published form of {src} does not load with '
                               f'weights_only=True: {e}') from e

    final, digest = atomic_hashed_torch_save(published, stem, check=check)
    return dict(path=final, sha256=digest, dropped=dropped, kept=list(published),
                masks=len(published.get(CHECKPOINT_KEY, {}).get('masks', {})),
                bytes=osp.getsize(final), src_bytes=osp.getsize(src))


__all__ = ['PUBLISHED_KEYS', 'plain', 'published_form', 'published_name', 'publish_checkpoint']
