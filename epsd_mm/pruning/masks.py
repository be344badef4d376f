"""The one mask type of epsd_mm.

A :class:`MaskSet` maps parameter names to boolean tensors (``True`` = kept). It owns everything
that touches masks: applying them, keeping pruned entries at exactly zero through training,
per-layer statistics, (de)serialization under the checkpoint key ``pruning``, the cross-rank
checksum, and checking that masks fit a model.
"""
import hashlib
from collections import OrderedDict

import torch
import torch.nn as nn

from ..utils.checkpoints import checkpoint_problem, describe_error
from ..utils.errors import UserError
from ..utils.io import atomic_torch_save

#: Top-level checkpoint key under which the masks travel beside a plain ``state_dict``.
CHECKPOINT_KEY = 'pruning'


def _fmt_shape(shape):
    return 'x'.join(str(s) for s in shape) if len(shape) else 'scalar'


class MaskSet:
    """Boolean masks over named parameters.

    Args:
        masks (dict[str, Tensor]): parameter name -> mask of the parameter's shape; any dtype is
            accepted and stored as ``torch.bool`` (non-zero = kept) on the CPU.
        method (str): the criterion that produced the masks. Defaults to ``''``.
        target_sparsity (float, optional): the sparsity that was asked for. Defaults to None.
        extra (dict, optional): more provenance to save (e.g. ``scope``). Defaults to None.
    """

    def __init__(self, masks, method='', target_sparsity=None, extra=None):
        self.masks = OrderedDict(
            (name, torch.as_tensor(m).detach().to('cpu', torch.bool).contiguous())
            for name, m in masks.items())
        self.method = method
        self.target_sparsity = target_sparsity
        self.extra = dict(extra or {})
        self._hooks = []

    # ------------------------------------------------------------------ accounting
    def __len__(self):
        return len(self.masks)

    def __contains__(self, name):
        return name in self.masks

    def __getitem__(self, name):
        return self.masks[name]

    def names(self):
        return list(self.masks)

    def items(self):
        return self.masks.items()

    def jaccard(self, other):
        """Overlap of the kept entries with another mask set of the same parameters: kept by
        both / kept by either, over all tensors (1.0 when neither keeps anything)."""
        inter = union = 0
        for name in self.names():
            inter += int((self[name] & other[name]).sum())
            union += int((self[name] | other[name]).sum())
        return inter / union if union else 1.0

    def select(self, keep):
        """The masks whose names satisfy ``keep(name)``, in order, with this set's method,
        target sparsity and extra info."""
        return MaskSet(OrderedDict((n, m) for n, m in self.masks.items() if keep(n)),
                       self.method, self.target_sparsity, self.extra)

    @property
    def numel(self):
        """Number of masked (prunable) entries."""
        return sum(m.numel() for m in self.masks.values())

    @property
    def kept(self):
        """Number of entries kept."""
        return sum(int(m.sum()) for m in self.masks.values())

    @property
    def sparsity(self):
        """Fraction of masked entries that are pruned (0.9 = 90 % removed)."""
        n = self.numel
        return 1.0 - self.kept / n if n else 0.0

    def layer_stats(self):
        """Per-parameter statistics in mask order: dicts with ``name, shape, numel, kept,
        sparsity``."""
        rows = []
        for name, m in self.masks.items():
            kept = int(m.sum())
            rows.append(dict(name=name, shape=list(m.shape), numel=m.numel(), kept=kept,
                             sparsity=1.0 - kept / m.numel()))
        return rows

    def checksum(self):
        """SHA-256 over names, shapes and mask bits: equal on two ranks iff the masks are."""
        h = hashlib.sha256()
        for name, m in self.masks.items():
            h.update(name.encode())
            h.update(str(tuple(m.shape)).encode())
            h.update(m.numpy().tobytes())
        return h.hexdigest()

    def equal(self, other):
        return (self.names() == other.names()
                and all(torch.equal(self[n], other[n]) for n in self.masks))

    # ------------------------------------------------------------------ model interaction
    def check_fits(self, model, prefix_hint=''):
        """Raise :class:`UserError` unless every mask names a parameter of ``model`` (a module,
        or a state dict: name -> tensor) of the same shape; the message shows the first
        mismatches, and says so when one name prefix explains them all (a model wrapper or a
        test-time-augmentation model adds ``module.`` to every parameter name)."""
        params = dict(model.named_parameters()) if isinstance(model, nn.Module) else model
        problems = []
        for name, m in self.masks.items():
            if name not in params:
                problems.append(f'{name}: no such parameter in the model')
            elif tuple(params[name].shape) != tuple(m.shape):
                problems.append(f'{name}: mask {_fmt_shape(m.shape)} but parameter '
                                f'{_fmt_shape(params[name].shape)}')
        if problems:
            shown = '; '.join(problems[:5])
            more = f' (and {len(problems) - 5} more)' if len(problems) > 5 else ''
            head = (f'the masks do not fit this model: {len(problems)} of {len(self.masks)} '
                    f'masks mismatch, e.g. {shown}{more}')
            renamed = self._renaming(params)
            if renamed:
                raise UserError(f'{head}. {renamed}')
            raise UserError(f'{head}. Use masks computed for this architecture{prefix_hint}.')

    def _renaming(self, params):
        """A sentence naming the one prefix that, added to or removed from every mask name,
        makes all masks fit ``params`` (name -> tensor); ``''`` when there is none."""
        names = self.names()
        if not names:
            return ''

        def fits(rename):
            return all(rename(n) in params and tuple(params[rename(n)].shape)
                       == tuple(self.masks[n].shape) for n in names)

        first = names[0]
        added = {p[:-len(first)] for p in params if p.endswith('.' + first)}
        for prefix in sorted(added, key=len):
            if fits(lambda n: prefix + n):
                return (f'Every mask fits once {prefix!r} is put before its name: this model '
                        f'wraps the network the masks were made for (model wrappers and '
                        f'test-time-augmentation models such as DetTTAModel hold it as '
                        f'{prefix.rstrip(".")!r}); apply the masks to the wrapped network')
        parts = first.split('.')
        for k in range(1, len(parts)):
            prefix = '.'.join(parts[:k]) + '.'
            if all(n.startswith(prefix) for n in names) and fits(lambda n: n[len(prefix):]):
                return (f'Every mask fits once {prefix!r} is removed from its name: the masks '
                        f'were saved from a wrapped model; save them with the wrapped '
                        f'network\'s own names')
        return ''

    def split_for(self, model):
        """Split into ``(fitting, ignored)`` for transfer into another model.

        Masks of a top-level module the model does not have are ignored (e.g. a classifier's
        ``head.fc.weight`` when moving into a detector, which has no ``head``). Every other mask
        must fit: a missing parameter inside a module the model has (a ResNet-34 block in a
        ResNet-18 backbone) or a shape mismatch means another architecture, and is an error.
        """
        tops = {name for name, _ in model.named_children()}
        sub = self.select(lambda n: n.split('.', 1)[0] in tops)
        ignored = [n for n in self.masks if n not in sub]
        sub.check_fits(model)
        return sub, ignored

    @torch.no_grad()
    def apply_(self, model):
        """Zero every pruned entry of ``model``'s parameters in place."""
        params = dict(model.named_parameters())
        for name, m in self.masks.items():
            p = params[name]
            # masked_fill, not multiplication: w * 0 keeps the sign of w (-0.0), which would
            # cost compact checkpoints a sign bit per pruned entry to restore bit for bit
            p.masked_fill_(~m.to(p.device), 0)

    def enforce(self, model, optimizer):
        """Keep pruned entries at exactly zero through every step of ``optimizer``.

        Two hooks on the optimizer, each one fused ``torch._foreach_mul_`` over all masked
        tensors: before a step, the gradients of pruned entries are zeroed, so SGD's momentum
        buffer and weight decay (``wd * w`` with ``w == 0``) never move them and Adam's moments
        stay zero for them; after a step, the weights are multiplied by their masks again, a
        cheap guarantee against any update rule that moves a zero weight with a zero gradient.
        Hooking the optimizer, not the backward pass, makes the cost one pass per optimizer step
        (gradient accumulation included). Frozen parameters (``requires_grad=False``, e.g.
        mmdet's ``frozen_stages``) are not stepped; :meth:`apply_` zeroes them once.

        Args:
            model (nn.Module): the model whose parameters the masks name.
            optimizer (torch.optim.Optimizer | Sequence[Optimizer]): the optimizer(s) stepping
                those parameters.
        """
        self.release()
        params = dict(model.named_parameters())
        tensors, masks = [], []
        for name, m in self.masks.items():
            p = params[name]
            if p.requires_grad:
                tensors.append(p)
                masks.append(m.to(device=p.device, dtype=p.dtype))

        def mask_grads(opt, args, kwargs):
            pairs = [(p.grad, m) for p, m in zip(tensors, masks) if p.grad is not None]
            if pairs:
                torch._foreach_mul_([g for g, _ in pairs], [m for _, m in pairs])

        def mask_weights(opt, args, kwargs):
            with torch.no_grad():
                torch._foreach_mul_(tensors, masks)

        optimizers = optimizer if isinstance(optimizer, (list, tuple)) else [optimizer]
        for opt in optimizers:
            self._hooks.append(opt.register_step_pre_hook(mask_grads))
            self._hooks.append(opt.register_step_post_hook(mask_weights))

    def release(self):
        """Remove the hooks installed by :meth:`enforce`."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def zero_violations(self, model_or_state):
        """Number of pruned entries that are not exactly zero in a model or a state dict."""
        if isinstance(model_or_state, nn.Module):
            tensors = dict(model_or_state.named_parameters())
        else:
            tensors = model_or_state
        bad = 0
        for name, m in self.masks.items():
            t = tensors[name].detach().cpu()
            bad += int((t[~m] != 0).sum())
        return bad

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self):
        """The ``pruning`` dict saved in checkpoints and in ``masks.pth``."""
        return dict(masks=OrderedDict(self.masks), method=self.method,
                    target_sparsity=self.target_sparsity, sparsity=self.sparsity, **self.extra)

    @classmethod
    def from_dict(cls, d, source='the mask dict'):
        if not isinstance(d, dict) or not isinstance(d.get('masks'), dict):
            raise UserError(f'{source} holds no masks: expected a dict with a "masks" entry '
                            '(parameter name -> bool tensor), as tools/prune.py writes')
        extra = {k: v for k, v in d.items()
                 if k not in ('masks', 'method', 'target_sparsity', 'sparsity')}
        return cls(d['masks'], d.get('method', ''), d.get('target_sparsity'), extra)

    def save(self, path):
        """Write the ``pruning`` dict to ``path`` atomically."""
        atomic_torch_save(self.to_dict(), path)

    @classmethod
    def load(cls, path):
        """Load masks from a ``masks.pth`` file or from any checkpoint with a ``pruning`` key."""
        import os.path as osp
        if not osp.isfile(path):
            raise UserError(f'mask file {path} does not exist; create one with tools/prune.py '
                            'or point to a checkpoint of a pruned run')
        problem = checkpoint_problem(path)
        if problem is not None:
            raise UserError(f'cannot read masks from {path}: {problem}')
        try:
            obj = torch.load(path, map_location='cpu')
        except Exception as e:  # a corrupt or foreign file is the user's input, not our bug
            raise UserError(f'cannot read masks from {path}: {describe_error(e)}') from None
        if isinstance(obj, dict) and CHECKPOINT_KEY in obj:
            obj = obj[CHECKPOINT_KEY]
        return cls.from_dict(obj, source=path)

    # ------------------------------------------------------------------ distributed
    def broadcast(self, src=0):
        """Return rank ``src``'s masks on every rank (a no-op without distributed training)."""
        from mmengine import dist
        if dist.get_world_size() == 1:
            return self
        payload = [self.to_dict() if dist.get_rank() == src else None]
        dist.broadcast_object_list(payload, src=src)
        return MaskSet.from_dict(payload[0])

    def verify_across_ranks(self):
        """Raise ``RuntimeError`` when any rank holds other masks (compared by checksum)."""
        from mmengine import dist
        if dist.get_world_size() == 1:
            return
        sums = dist.all_gather_object(self.checksum())
        if len(set(sums)) != 1:
            raise RuntimeError(f'pruning masks differ across ranks (checksums {sums}); '
                               'stopping rather than training divergent models')

    def __repr__(self):
        return (f'MaskSet({len(self)} tensors, {self.numel} entries, sparsity '
                f'{self.sparsity:.4f}, method={self.method!r})')
