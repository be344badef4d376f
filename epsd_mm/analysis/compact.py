"""Compact checkpoints: ship a pruned model at the size of what it keeps.

A plain checkpoint stores every masked weight at full size although 90 % of it may be zeros.
The compact format stores each masked tensor as

* ``bits``: its mask, flattened in row-major order and packed 8 entries per byte
  (``numpy.packbits``, big bit order) into a ``uint8`` tensor,
* ``values``: its kept entries, a 1-D tensor of the original dtype, in row-major order,
* ``shape``: the tensor's shape (a list of ints),
* ``neg_zero`` (only when needed): packed bits over the *pruned* entries marking those that
  hold ``-0.0`` rather than ``+0.0``. Masking by multiplication leaves ``-0.0`` wherever a
  negative weight was pruned; recording it keeps the restore exact bit for bit.

Everything else travels as is: ``meta``, the unmasked ``state_dict`` entries (BatchNorm,
biases...) and ``state_dict._metadata``, the ``pruning`` dict without its ``masks`` (rebuilt
from ``bits``), and any other top-level key. A compact checkpoint is for shipping, not
resuming: :data:`RESUME_ONLY_KEYS` (``optimizer``, ``param_schedulers``, ``message_hub``,
``self_distill``) are dropped, so a restored checkpoint has none of them either.

The top-level key ``epsd_compact`` (the format version) marks the format, and the state dict
travels under ``compact_state_dict``, not ``state_dict``: a loader that does not know the
format then finds no weights at all (and says which keys are missing) instead of loading the
unmasked half of a model.

mmengine loads compact files through the checkpoint scheme ``epsdc://`` (registered when
``epsd_mm`` is imported): ``load_from='epsdc://work_dirs/x/compact.pth'`` or
``init_cfg=dict(type='Pretrained', checkpoint='epsdc://...')`` expand the file in memory into a
plain checkpoint. A plain path to a compact file is deliberately not intercepted, since that
would mean replacing mmengine's local-file loader for every checkpoint.
"""
import os.path as osp
from collections import OrderedDict

import numpy as np
import torch
from mmengine.runner import CheckpointLoader

from ..pruning.masks import CHECKPOINT_KEY, MaskSet
from ..utils.checkpoints import (  # SCHEME: the mmengine scheme that loads compact ones
    SCHEME,
    checkpoint_problem,
    describe_error,
)
from ..utils.errors import UserError
from ..utils.io import atomic_torch_save

#: Top-level key whose value (the format version) marks a compact checkpoint.
COMPACT_KEY = 'epsd_compact'
#: The compact format version this module writes and reads.
FORMAT_VERSION = 1
#: Top-level key holding the compacted ``state_dict``.
COMPACT_STATE_KEY = 'compact_state_dict'
#: Top-level checkpoint keys that only serve resuming a run; compact checkpoints drop them.
RESUME_ONLY_KEYS = ('optimizer', 'param_schedulers', 'message_hub', 'self_distill')


# ---------------------------------------------------------------------- one tensor
def pack_mask(mask):
    """Pack a boolean mask into bits.

    Args:
        mask (Tensor): any shape; non-zero = kept.

    Returns:
        Tensor: ``uint8``, ``ceil(mask.numel() / 8)`` bytes, row-major, big bit order.
    """
    flat = mask.detach().to('cpu', torch.bool).reshape(-1).numpy()
    return torch.from_numpy(np.packbits(flat, bitorder='big'))


def unpack_mask(bits, shape):
    """Inverse of :func:`pack_mask`: a ``torch.bool`` tensor of ``shape``."""
    shape = tuple(int(s) for s in shape)
    numel = int(np.prod(shape, dtype=np.int64))
    raw = bits.detach().to('cpu')
    if raw.dtype != torch.uint8 or raw.dim() != 1 or raw.numel() != (numel + 7) // 8:
        raise UserError(f'corrupt compact checkpoint: {raw.numel()} mask bytes of dtype '
                        f'{raw.dtype} cannot hold a mask of shape {list(shape)}')
    flat = np.unpackbits(raw.numpy(), count=numel, bitorder='big').astype(bool)
    return torch.from_numpy(flat).reshape(shape)


def compact_tensor(tensor, mask, name='tensor'):
    """Compact one masked tensor.

    Args:
        tensor (Tensor): the dense tensor; its pruned entries must be exactly zero.
        mask (Tensor): bool mask of the same shape (``True`` = kept).
        name (str): used in error messages. Defaults to ``'tensor'``.

    Returns:
        dict: ``shape``, ``bits``, ``values`` and, when some pruned entry is ``-0.0``,
        ``neg_zero``.
    """
    if not isinstance(tensor, torch.Tensor):
        raise UserError(f'state_dict entry {name!r} is a {type(tensor).__name__}, not a tensor, '
                        'but the pruning masks name it')
    if tuple(tensor.shape) != tuple(mask.shape):
        raise UserError(f'the mask of {name!r} has shape {list(mask.shape)} but the weight has '
                        f'{list(tensor.shape)}: the masks belong to another model')
    flat = tensor.detach().to('cpu').reshape(-1)
    keep = mask.to('cpu', torch.bool).reshape(-1)
    pruned = flat[~keep]
    bad = int((pruned != 0).sum())
    if bad:
        raise UserError(
            f'{bad} pruned entries of {name!r} are not zero, so the weights do not follow their '
            'masks (a checkpoint trained with PruningHook has exact zeros there); a compact '
            'checkpoint stores pruned entries as zeros and could not restore this one exactly')
    entry = dict(shape=list(tensor.shape), bits=pack_mask(keep), values=flat[keep].clone())
    if flat.is_floating_point() and bool(torch.signbit(pruned).any()):
        entry['neg_zero'] = pack_mask(torch.signbit(pruned))
    return entry


def expand_tensor(entry):
    """Inverse of :func:`compact_tensor`: the dense tensor, equal bit for bit to the original.

    Returns:
        tuple[Tensor, Tensor]: the dense tensor (on the device of ``values``) and its bool mask.
    """
    mask = unpack_mask(entry['bits'], entry['shape'])
    values = entry['values']
    keep = mask.reshape(-1)
    kept = int(keep.sum())
    if values.dim() != 1 or values.numel() != kept:
        raise UserError(f'corrupt compact checkpoint: {values.numel()} stored values for a mask '
                        f'that keeps {kept}')
    flat = torch.zeros(keep.numel(), dtype=values.dtype)
    flat[keep] = values.to('cpu')
    if 'neg_zero' in entry:
        pruned_idx = torch.nonzero(~keep).reshape(-1)
        neg = unpack_mask(entry['neg_zero'], [pruned_idx.numel()])
        flat[pruned_idx[neg]] = -0.0
    return flat.reshape(mask.shape).to(values.device), mask


# ---------------------------------------------------------------------- checkpoints
def is_compact(checkpoint):
    """Whether ``checkpoint`` (a loaded object) is in the compact format."""
    return isinstance(checkpoint, dict) and COMPACT_KEY in checkpoint


def compact_checkpoint(checkpoint, source='the checkpoint'):
    """Turn a plain checkpoint dict with a ``pruning`` entry into the compact format.

    Args:
        checkpoint (dict): an mmengine checkpoint (``meta``, ``state_dict``, ``pruning``...).
        source (str): how to name it in error messages. Defaults to ``'the checkpoint'``.

    Returns:
        dict: the compact checkpoint (see the module docstring). Tensors that are not masked
        are the same objects as in ``checkpoint``.
    """
    if is_compact(checkpoint):
        raise UserError(f'{source} is already a compact checkpoint')
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get('state_dict'), dict):
        raise UserError(f'{source} is not an mmengine checkpoint: it has no "state_dict" entry')
    if CHECKPOINT_KEY not in checkpoint:
        raise UserError(f'{source} has no "{CHECKPOINT_KEY}" entry, so it holds no masks to '
                        'compact; export a checkpoint of a run trained with PruningHook')
    pruning = checkpoint[CHECKPOINT_KEY]
    masks = MaskSet.from_dict(pruning, source=source)
    state_dict = checkpoint['state_dict']
    packed = OrderedDict()
    for name, mask in masks.items():
        if name in state_dict:
            packed[name] = compact_tensor(state_dict[name], mask, name)
        else:  # a mask without a weight in this state_dict still travels (as bits only)
            packed[name] = dict(shape=list(mask.shape), bits=pack_mask(mask))
    compact_sd = dict(
        order=list(state_dict),
        dense=OrderedDict((k, v) for k, v in state_dict.items() if k not in packed),
        packed=packed,
        metadata=getattr(state_dict, '_metadata', None))

    out = {COMPACT_KEY: FORMAT_VERSION}
    for key, value in checkpoint.items():
        if key in RESUME_ONLY_KEYS:
            continue
        if key == 'state_dict':
            out[COMPACT_STATE_KEY] = compact_sd
        elif key == CHECKPOINT_KEY:
            out[key] = {k: v for k, v in pruning.items() if k != 'masks'}
        else:
            out[key] = value
    return out


def expand_checkpoint(compact, source='the compact checkpoint'):
    """Inverse of :func:`compact_checkpoint`: a plain checkpoint whose ``state_dict`` equals
    the original bit for bit, with ``pruning['masks']`` rebuilt (resume-only keys stay
    absent)."""
    if not is_compact(compact):
        raise UserError(f'{source} is not a compact checkpoint (no "{COMPACT_KEY}" entry); '
                        'write one with tools/export_sparse.py')
    version = compact[COMPACT_KEY]
    if version != FORMAT_VERSION:
        raise UserError(f'{source} has compact format version {version!r}; this epsd_mm reads '
                        f'version {FORMAT_VERSION}')
    csd = compact[COMPACT_STATE_KEY]
    masks, tensors = OrderedDict(), {}
    for name, entry in csd['packed'].items():
        if 'values' in entry:
            tensors[name], masks[name] = expand_tensor(entry)
        else:
            masks[name] = unpack_mask(entry['bits'], entry['shape'])
    state_dict = OrderedDict(
        (k, tensors[k] if k in tensors else csd['dense'][k]) for k in csd['order'])
    if csd.get('metadata') is not None:
        # BatchNorm & co. read their version from here when loading (_load_from_state_dict)
        state_dict._metadata = csd['metadata']

    out = {}
    for key, value in compact.items():
        if key == COMPACT_KEY:
            continue
        if key == COMPACT_STATE_KEY:
            out['state_dict'] = state_dict
        elif key == CHECKPOINT_KEY:
            out[key] = {'masks': masks, **value}
        else:
            out[key] = value
    return out


def compact_stats(compact):
    """Sizes of the masked tensors in a compact checkpoint.

    Returns:
        dict: ``tensors`` (masked tensors with weights), ``numel``, ``kept``, ``sparsity``,
        ``dense_bytes`` (their size as dense tensors), ``compact_bytes`` (bits + values +
        neg_zero) and ``ratio`` (compact / dense).
    """
    dense_bytes = compact_bytes = numel = kept = tensors = 0
    for entry in compact[COMPACT_STATE_KEY]['packed'].values():
        if 'values' not in entry:
            continue
        values = entry['values']
        n = int(np.prod(entry['shape'], dtype=np.int64))
        tensors += 1
        numel += n
        kept += values.numel()
        dense_bytes += n * values.element_size()
        compact_bytes += values.numel() * values.element_size() + entry['bits'].numel()
        if 'neg_zero' in entry:
            compact_bytes += entry['neg_zero'].numel()
    return dict(tensors=tensors, numel=numel, kept=kept,
                sparsity=1.0 - kept / numel if numel else 0.0, dense_bytes=dense_bytes,
                compact_bytes=compact_bytes,
                ratio=compact_bytes / dense_bytes if dense_bytes else 0.0)


# ---------------------------------------------------------------------- files
def _torch_load(path, map_location='cpu'):
    # mmengine's own checkpoints need the narrow safe-loading allow-list (message_hub)
    from ..utils import compat
    compat.install()
    return torch.load(path, map_location=map_location)


def read_checkpoint(path, expand=True):
    """Load a checkpoint file, plain or compact.

    Args:
        path (str): the file.
        expand (bool): expand a compact checkpoint into a plain one. Defaults to True.

    Returns:
        dict: the checkpoint.
    """
    if not osp.isfile(path):
        raise UserError(f'checkpoint {path} does not exist')
    problem = checkpoint_problem(path)
    if problem is not None:
        raise UserError(f'cannot read checkpoint {path}: {problem}')
    try:
        checkpoint = _torch_load(path)
    except Exception as e:  # a corrupt or foreign file is the user's input
        raise UserError(f'cannot read checkpoint {path}: {describe_error(e)}') from None
    if expand and is_compact(checkpoint):
        checkpoint = expand_checkpoint(checkpoint, source=path)
    return checkpoint


def masks_from_checkpoint(path):
    """The :class:`MaskSet` of a checkpoint (plain or compact) or of a ``masks.pth`` file."""
    checkpoint = read_checkpoint(path)
    if isinstance(checkpoint, dict) and 'masks' in checkpoint and 'state_dict' not in checkpoint:
        return MaskSet.from_dict(checkpoint, source=path)  # masks.pth from tools/prune.py
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint:
        raise UserError(f'{path} has no "{CHECKPOINT_KEY}" entry: it is not a checkpoint of a '
                        'pruned run (train with PruningHook, or pass the masks.pth that '
                        'tools/prune.py writes)')
    return MaskSet.from_dict(checkpoint[CHECKPOINT_KEY], source=path)


def export_compact(src, dst):
    """Write the compact form of checkpoint ``src`` to ``dst`` atomically.

    Returns:
        dict: :func:`compact_stats` plus ``dropped`` (the resume-only keys removed), and the
        file sizes ``src_bytes``, ``dst_bytes``.
    """
    checkpoint = read_checkpoint(src, expand=False)
    compact = compact_checkpoint(checkpoint, source=src)
    atomic_torch_save(compact, dst)
    stats = compact_stats(compact)
    stats.update(dropped=[k for k in RESUME_ONLY_KEYS if k in checkpoint],
                 src_bytes=osp.getsize(src), dst_bytes=osp.getsize(dst))
    return stats


def restore_compact(src, dst):
    """Write the plain checkpoint that compact checkpoint ``src`` holds to ``dst``
    atomically; return it."""
    compact = read_checkpoint(src, expand=False)
    checkpoint = expand_checkpoint(compact, source=src)
    atomic_torch_save(checkpoint, dst)
    return checkpoint


# ---------------------------------------------------------------------- mmengine scheme
def load_from_epsdc(filename, map_location=None):
    """mmengine checkpoint loader for ``epsdc://PATH``: reads ``PATH`` and returns a plain
    checkpoint dict (a compact file is expanded, a plain one returned as is).

    Args:
        filename (str): ``epsdc://`` followed by a local path.
        map_location (str, optional): as for :func:`torch.load`. Defaults to None.
    """
    path = osp.expanduser(filename[len(SCHEME):])
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} can not be found (from {filename}).')
    checkpoint = _torch_load(path, map_location=map_location)
    return expand_checkpoint(checkpoint, source=path) if is_compact(checkpoint) else checkpoint


# force=True only makes a repeated import (importlib.reload, test isolation) idempotent: the
# prefix is this package's own.
CheckpointLoader.register_scheme(prefixes=SCHEME, loader=load_from_epsdc, force=True)

__all__ = [
    'COMPACT_KEY', 'COMPACT_STATE_KEY', 'FORMAT_VERSION', 'RESUME_ONLY_KEYS', 'SCHEME',
    'pack_mask', 'unpack_mask', 'compact_tensor', 'expand_tensor', 'is_compact',
    'compact_checkpoint', 'expand_checkpoint', 'compact_stats', 'read_checkpoint',
    'masks_from_checkpoint', 'export_compact', 'restore_compact', 'load_from_epsdc'
]
