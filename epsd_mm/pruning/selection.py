"""Which parameters are prunable, and which of their entries survive a score.

Selection is deterministic: entries are ranked by score with ties broken by position (the
parameter's order in the model, then the flat index), so the same scores always give the same
masks and exactly ``round(sparsity * numel)`` entries are pruned.
"""
import re
from collections import OrderedDict

import torch
import torch.nn as nn

from ..utils.errors import UserError, check_sparsity

_TYPE_ALIASES = {'Conv2d': nn.Conv2d, 'Linear': nn.Linear, 'Conv1d': nn.Conv1d,
                 'Conv3d': nn.Conv3d, 'ConvTranspose2d': nn.ConvTranspose2d}


def _regex(pattern, key):
    try:
        return re.compile(pattern)
    except (re.error, TypeError) as e:
        raise UserError(f'prunable.{key} holds {pattern!r}, which is not a regular expression '
                        f'({e}); e.g. exclude=(r"^head\\.", ) keeps the head dense') from None


def prunable_parameters(model, types=('Conv2d', 'Linear'), include=None, exclude=()):
    """The ``weight`` parameters that may be pruned, in model order.

    Args:
        model (nn.Module): the model.
        types (Sequence[str | type]): module types whose ``weight`` is prunable; subclasses count
            (mmcv's conv wrappers subclass ``nn.Conv2d``). Biases and norm layers are never
            prunable. Defaults to ``('Conv2d', 'Linear')``.
        include (Sequence[str], optional): regular expressions; when given, only parameter names
            matching one of them (``re.search``) are prunable. Defaults to None (all).
        exclude (Sequence[str]): regular expressions of parameter names kept dense, e.g.
            ``('^backbone.conv1.', '^head.')``. Defaults to ``()``.

    Returns:
        OrderedDict[str, nn.Parameter]
    """
    classes = []
    for t in types:
        if isinstance(t, str):
            if t not in _TYPE_ALIASES:
                raise UserError(f'unknown prunable module type {t!r}; valid names: '
                                f'{", ".join(sorted(_TYPE_ALIASES))}')
            t = _TYPE_ALIASES[t]
        classes.append(t)
    inc = [_regex(p, 'include') for p in (include or ())]
    exc = [_regex(p, 'exclude') for p in exclude or ()]
    out = OrderedDict()
    for mod_name, module in model.named_modules():
        if not isinstance(module, tuple(classes)):
            continue
        weight = getattr(module, 'weight', None)
        if not isinstance(weight, nn.Parameter):
            continue
        name = f'{mod_name}.weight' if mod_name else 'weight'
        if inc and not any(p.search(name) for p in inc):
            continue
        if any(p.search(name) for p in exc):
            continue
        out[name] = weight
    if not out:
        raise UserError(f'no prunable parameters: no {"/".join(map(str, types))} weight matches '
                        f'include={include} exclude={list(exclude)}')
    return out


def _keep_top(flat_scores, num_keep):
    """Bool mask keeping the ``num_keep`` highest scores; ties go to the lower index."""
    keep = torch.zeros(flat_scores.numel(), dtype=torch.bool)
    if num_keep > 0:
        order = torch.argsort(flat_scores, descending=True, stable=True)
        keep[order[:num_keep]] = True
    return keep


def check_min_kept(min_kept_per_layer):
    """Return ``min_kept_per_layer`` as an int, or raise :class:`UserError` unless it is a
    whole number >= 0."""
    value = min_kept_per_layer
    if isinstance(value, str):
        value = value.strip()
        value = int(value) if value.lstrip('-').isdigit() else value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f'min_kept_per_layer must be a whole number >= 0 (0: a layer that '
                        f'would be emptied is an error; k: keep its k best weights), got '
                        f'{min_kept_per_layer!r}')
    return value


def check_reachable(sizes, sparsity, min_kept_per_layer, scope='global'):
    """Raise :class:`UserError` if keeping ``min_kept_per_layer`` weights in every tensor
    makes the global ``sparsity`` unreachable, naming the highest sparsity that is reachable.

    Args:
        sizes (Sequence[int]): number of entries of each prunable tensor.
        sparsity (float): the target, in (0, 1).
        min_kept_per_layer (int): the per-layer floor (0: none).
        scope (str): only ``'global'`` selection has one budget to check. Defaults to
            ``'global'``.
    """
    if scope != 'global' or min_kept_per_layer <= 0:
        return
    total = sum(sizes)
    floor = sum(min(min_kept_per_layer, size) for size in sizes)
    if total - int(round(sparsity * total)) < floor:
        raise UserError(
            f'sparsity {sparsity} is out of reach with min_kept_per_layer='
            f'{min_kept_per_layer}: keeping that many weights in each of the {len(sizes)} '
            f'prunable tensors keeps {floor:,} of {total:,}, so the highest reachable sparsity '
            f'is {1 - floor / total:.4f}; lower the sparsity or min_kept_per_layer')


def select_masks(scores, sparsity, scope='global', min_kept_per_layer=0):
    """Turn scores (higher = keep) into boolean masks.

    Args:
        scores (dict[str, Tensor]): parameter name -> score of that parameter's shape.
        sparsity (float): fraction of all scored entries to prune, in (0, 1).
        scope (str): ``'global'``: one ranking over all entries (default); ``'layer'``: the same
            sparsity in every tensor.
        min_kept_per_layer (int): with ``0`` (default), a tensor that would lose every entry is
            an error naming it. With ``k > 0``, each tensor keeps at least its ``k`` best entries
            (at most its size) and the global budget is met by pruning more elsewhere; which
            tensors needed it is reported in ``info['rescued']``.

    Returns:
        tuple[OrderedDict[str, Tensor], dict]: masks and ``info`` (``rescued`` layer names).
    """
    sparsity = check_sparsity(sparsity)
    min_kept_per_layer = check_min_kept(min_kept_per_layer)
    if scope not in ('global', 'layer'):
        raise UserError(f"unknown pruning scope {scope!r}; valid: 'global', 'layer'")
    names = list(scores)
    flat = [scores[n].detach().reshape(-1).double().cpu() for n in names]
    check_reachable([f.numel() for f in flat], sparsity, min_kept_per_layer, scope)
    for n, f in zip(names, flat):
        if not torch.isfinite(f).all():
            bad = int((~torch.isfinite(f)).sum())
            raise UserError(f'{bad} scores of {n} are NaN or infinite; the criterion diverged '
                            '(try a smaller inner_lr, fewer inner steps, or another seed)')
    info = dict(rescued=[])
    if scope == 'layer':
        masks = OrderedDict()
        for n, f in zip(names, flat):
            keep = max(int(round(f.numel() * (1 - sparsity))), 0)
            if keep == 0:
                if min_kept_per_layer <= 0:
                    raise _collapse_error([n], sparsity)
                keep = min(min_kept_per_layer, f.numel())
                info['rescued'].append(n)
            masks[n] = _keep_top(f, keep).reshape(scores[n].shape)
        return masks, info

    sizes = [f.numel() for f in flat]
    total = sum(sizes)
    num_keep = total - int(round(sparsity * total))
    allf = torch.cat(flat)
    keep = _keep_top(allf, num_keep)
    if min_kept_per_layer > 0:
        keep = _rescue(allf, keep, sizes, min_kept_per_layer, names, info)
    chunks = torch.split(keep, sizes)
    masks = OrderedDict((n, c.reshape(scores[n].shape)) for n, c in zip(names, chunks))
    empty = [n for n, m in masks.items() if not m.any()]
    if empty:
        raise _collapse_error(empty, sparsity)
    return masks, info


def _rescue(allf, keep, sizes, k, names, info):
    """Give every tensor at least ``k`` kept entries, dropping the lowest-scoring kept entries
    of other tensors so that the total count is unchanged."""
    forced = torch.zeros_like(keep)
    start = 0
    for n, size in zip(names, sizes):
        seg = slice(start, start + size)
        need = min(k, size)
        if int(keep[seg].sum()) < need:
            forced[seg] = _keep_top(allf[seg], need)
            info['rescued'].append(n)
        start += size
    if not info['rescued']:
        return keep
    num_keep = int(keep.sum())
    # rank again with forced entries first; the rest fill the remaining budget by score
    priority = torch.where(forced, torch.full_like(allf, float('inf')), allf)
    new_keep = _keep_top(priority, max(num_keep, int(forced.sum())))
    return new_keep


def _collapse_error(names, sparsity):
    shown = ', '.join(names[:5]) + (f' (+{len(names) - 5} more)' if len(names) > 5 else '')
    return UserError(
        f'sparsity {sparsity} would prune every weight of {shown}, disconnecting the network. '
        'Lower the sparsity, keep such layers dense with prunable.exclude, or set '
        'min_kept_per_layer > 0 to keep a minimum in every layer')
