"""Which parameters are prunable, and which of their entries survive a score.

Selection is deterministic: entries are ranked by score with ties broken by position (the
parameter's order in the model, then the flat index), so the same scores always give the same
masks and exactly ``round(sparsity * numel)`` entries are pruned.
"""
import math
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


#: layer-budget modes of :func:`select_masks` (``budget=``)
BUDGETS = ('erk', 'fanin')


def select_masks(scores, sparsity, scope='global', min_kept_per_layer=0, budget=None,
                 budget_share=0.5, counts=None):
    """Turn scores (higher = keep) into boolean masks.

    Args:
        scores (dict[str, Tensor]): parameter name -> score of that parameter's shape.
        sparsity (float): fraction of all scored entries to prune, in (0, 1).
        scope (str): ``'global'``: one ranking over all entries (default); ``'layer'``: the same
            sparsity in every tensor.
        min_kept_per_layer (int): with ``0`` (default), a tensor that would lose every entry is
            an error naming it. With ``k > 0``, each tensor keeps at least its ``k`` best entries
            (at most its size): every tensor first gets this floor, then the rest of the global
            budget goes to the best remaining entries, so exactly ``round(sparsity * numel)``
            entries are still pruned. Floors that alone exceed the budget are an error giving
            the highest reachable sparsity. The tensors whose plain top-k kept fewer than ``k``
            are reported in ``info['rescued']``.
        budget (str, optional): with ``scope='global'``, how many entries each tensor keeps
            (the scores then only rank entries inside their tensor, except for the fill):

            - None (default): global top-k, no allocation;
            - ``'erk'``: Erdős–Rényi-Kernel (Evci et al., RigL 2020): a tensor of shape
              ``(n_1, ..., n_d)`` keeps ``eps * (n_1 + ... + n_d)`` entries (density
              proportional to ``sum(shape) / prod(shape)``), capped at its size, ``eps`` chosen
              so the counts add up to the budget; each tensor keeps its own best entries;
            - ``'fanin'``: a floor proportional to the tensor's fan-in (``prod(shape[1:])``)
              takes ``budget_share`` of the budget; the rest goes to the globally best
              remaining entries.
        budget_share (float): the share of the budget that ``'fanin'`` spends on its floors,
            in [0, 1]. Defaults to 0.5.
        counts (Sequence[int], optional): with ``scope='global'`` and no ``budget``, the exact
            number of entries each tensor keeps (in ``scores`` order, adding up to the budget of
            ``sparsity``), e.g. another criterion's allocation; the scores then only rank
            entries inside their tensor. Defaults to None.

    Returns:
        tuple[OrderedDict[str, Tensor], dict]: masks and ``info`` (``rescued`` layer names).
    """
    sparsity = check_sparsity(sparsity)
    min_kept_per_layer = check_min_kept(min_kept_per_layer)
    if scope not in ('global', 'layer'):
        raise UserError(f"unknown pruning scope {scope!r}; valid: 'global', 'layer'")
    if budget is not None and budget not in BUDGETS:
        raise UserError(f'unknown layer budget {budget!r}; valid: None, '
                        f'{", ".join(map(repr, BUDGETS))}')
    if budget is not None and scope != 'global':
        raise UserError(f'a layer budget ({budget!r}) allots the global budget across layers; '
                        f"it needs scope='global', got scope={scope!r}")
    if counts is not None and (budget is not None or scope != 'global'):
        raise UserError("explicit per-layer counts replace a layer budget and need "
                        f"scope='global' (got budget={budget!r}, scope={scope!r})")
    if not 0.0 <= float(budget_share) <= 1.0:
        raise UserError(f'budget_share must lie in [0, 1], got {budget_share}')
    k = int(min_kept_per_layer)
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
            if keep < min(k, f.numel()):
                keep = min(k, f.numel())
                info['rescued'].append(n)
            if keep == 0:
                raise _collapse_error([n], sparsity)
            masks[n] = _keep_top(f, keep).reshape(scores[n].shape)
        return masks, info

    sizes = [f.numel() for f in flat]
    total = sum(sizes)
    num_keep = total - int(round(sparsity * total))
    shapes = [tuple(scores[n].shape) for n in names]

    if counts is not None:
        counts = [int(c) for c in counts]
        if len(counts) != len(sizes) or sum(counts) != num_keep or \
                any(not 0 <= c <= n for c, n in zip(counts, sizes)):
            raise UserError(f'per-layer counts must give each of the {len(sizes)} tensors '
                            f'between 0 and its size, {num_keep} in all at sparsity '
                            f'{sparsity}; got {sum(counts)} over {len(counts)} tensors')

    def floors(kk):
        low = [min(kk, size) for size in sizes]
        if counts is not None:
            return [max(c, lo) for c, lo in zip(counts, low)]
        if budget is None:
            return low
        alloc = layer_counts(shapes, num_keep, budget, budget_share, lower=low)
        return [max(a, lo) for a, lo in zip(alloc, low)]

    keep = _keep_with_floors(flat, floors(k), num_keep, sparsity, total)
    if k > 0:
        unguarded = torch.split(_keep_with_floors(flat, floors(0), num_keep, sparsity, total),
                                sizes)
        info['rescued'] = [n for n, c, size in zip(names, unguarded, sizes)
                           if int(c.sum()) < min(k, size)]
    chunks = torch.split(keep, sizes)
    masks = OrderedDict((n, c.reshape(scores[n].shape)) for n, c in zip(names, chunks))
    empty = [n for n, m in masks.items() if not m.any()]
    if empty:
        raise _collapse_error(empty, sparsity)
    return masks, info


def _keep_with_floors(flat, floors, num_keep, sparsity, total):
    """Keep each tensor's ``floors[i]`` best entries, then fill the rest of ``num_keep`` with
    the best remaining entries of all tensors."""
    need = sum(floors)
    if need > num_keep:
        reachable = 1.0 - need / total
        raise UserError(
            f'the per-layer minimum ({need} weights in all) exceeds the budget of {num_keep} '
            f'weights kept at sparsity {sparsity}; the highest sparsity reachable with it is '
            f'{reachable:.6g}: lower the sparsity or min_kept_per_layer')
    forced = torch.cat([_keep_top(f, n) for f, n in zip(flat, floors)])
    allf = torch.cat(flat)
    # forced entries rank first; the remaining budget goes to the rest by score
    priority = torch.where(forced, torch.full_like(allf, float('inf')), allf)
    return _keep_top(priority, num_keep)


def layer_counts(shapes, num_keep, budget, share=0.5, lower=None):
    """How many entries each tensor keeps under a layer budget (see :func:`select_masks`).

    Args:
        shapes (list[tuple]): the tensors' shapes.
        num_keep (int): entries kept in all.
        budget (str): ``'erk'`` (the counts add up to ``num_keep``) or ``'fanin'`` (floors
            adding up to at most ``share * num_keep``).
        share (float): ``'fanin'``'s share of the budget. Defaults to 0.5.
        lower (list[int], optional): lower bounds of the ``'erk'`` counts. Defaults to 0.

    Returns:
        list[int]
    """
    sizes = [math.prod(s) for s in shapes]
    lower = [0] * len(sizes) if lower is None else [min(lo, n) for lo, n in zip(lower, sizes)]
    if budget == 'fanin':
        fan_in = [math.prod(s[1:]) if len(s) > 1 else 1 for s in shapes]
        scale = share * num_keep / sum(fan_in)
        return [min(n, int(math.floor(scale * f))) for n, f in zip(sizes, fan_in)]
    weights = [float(sum(s)) for s in shapes]
    if sum(lower) >= num_keep:
        return list(lower)

    def counts(eps):
        return [min(n, max(lo, eps * w)) for n, lo, w in zip(sizes, lower, weights)]

    lo_eps, hi_eps = 0.0, max(n / w for n, w in zip(sizes, weights))
    for _ in range(200):  # bisection on eps: sum(counts) is monotone in it
        mid = 0.5 * (lo_eps + hi_eps)
        if sum(counts(mid)) < num_keep:
            lo_eps = mid
        else:
            hi_eps = mid
    real = counts(hi_eps)
    out = [int(math.floor(c)) for c in real]
    # largest remainders first (ties: model order) until the counts add up exactly
    order = sorted(range(len(out)), key=lambda i: (-(real[i] - out[i]), i))
    for i in order:
        if sum(out) >= num_keep:
            break
        if out[i] < sizes[i]:
            out[i] += 1
    return out


def masks_as_scores(masks, scores):
    """Scores whose global top-k (k = the number of kept entries) is exactly ``masks``.

    A criterion that selects its own masks (a layer budget, iterative rounds) returns these, so
    the caller's global selection reproduces its choice: kept entries score in [1, 1.5], the
    others in [0, 0.5], each ordered as ``scores`` inside its tensor (a per-layer floor that
    the caller adds still takes a tensor's best entries).
    """
    out = OrderedDict()
    for n, m in masks.items():
        f = scores[n].detach().reshape(-1).double().cpu()
        order = torch.argsort(f, descending=True, stable=True)
        rank = torch.empty_like(f)
        rank[order] = torch.arange(f.numel(), dtype=f.dtype)
        v = 0.5 * (1.0 - rank / max(f.numel(), 1))
        out[n] = (v + m.reshape(-1).double()).reshape(m.shape)
    return out


def _collapse_error(names, sparsity):
    shown = ', '.join(names[:5]) + (f' (+{len(names) - 5} more)' if len(names) > 5 else '')
    return UserError(
        f'sparsity {sparsity} would prune every weight of {shown}, disconnecting the network. '
        'Lower the sparsity, keep such layers dense with prunable.exclude, or set '
        'min_kept_per_layer > 0 to keep a minimum in every layer')
