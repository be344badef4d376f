"""Meta-gradients with respect to a mask through a few SGD steps: the score of ProsPr and EPSD.

Masks ``m = 1`` multiply the prunable weights, ``theta_0 = theta_init * m`` (the other trainable
parameters start at ``theta_init``), ``M`` plain SGD steps follow,
``theta_{k+1} = theta_k - lr * grad L_k(theta_k)`` on every trainable parameter, and the
meta-gradient of an outer loss ``L_out(theta_M)`` is ``dL_out/dm``. Two implementations compute
it, selected by ``mode``:

- ``'unrolled'``, the reference: autograd keeps the graph of every inner step (``create_graph``)
  and differentiates ``L_out`` through all of them at once. Its peak memory grows with ``M``:
  every step's activations and their double-backward graph stay alive to the end.
- ``'bounded'``: checkpointed unrolled differentiation (reverse mode through the SGD steps). The
  forward pass keeps only the parameter trajectory ``theta_0 .. theta_{M-1}`` (detached, one
  copy of the parameters per step) and, for every micro-batch, the SD state and RNG state its
  loss saw. The backward pass starts from ``v_M = dL_out/dtheta_M`` and goes back through the
  steps, recomputing each step's graph at ``theta_k`` and applying the adjoint update
  ``v_k = v_{k+1} - lr * H_k v_{k+1}`` with a Hessian-vector product of the recomputed step;
  ``dL_out/dm = theta_init * v_0`` on the prunable weights (``theta_0 = theta_init * m``: the
  mask reaches the loss only through ``theta_0``, and ``v_0`` already carries every step's
  dependence on it). Peak memory is one micro-batch's double-backward graph plus ``M + 2``
  copies of the parameters (trajectory, adjoint, accumulator), whatever ``M`` is.
  ``first_order=True`` drops ``H_k`` (``v_0 = v_M``) and needs no recomputation at all.

Both give the same result up to float rounding (tests/pruning/test_metagrad.py).

**Micro-batches.** Every inner step reads one or more chunks (loader batches); with
``micro_batch=b`` each chunk is further cut into micro-batches of at most ``b`` samples (by
``split``, which keeps an SD method's batch layout: both views of a sample, CS-KD's pairs). A
micro-batch's loss, a mean over its samples, is weighted by its share of the step's samples
(``len(data_samples)``, summed over ranks under DDP), so the weighted sum is the mean over the
whole step's batch; gradients and Hessian-vector products are accumulated over micro-batches.
This is exact whenever a sample's loss does not depend on the other samples of its batch: a
model without BatchNorm, or BatchNorm in eval mode (``score_mode='eval'``). In train mode,
BatchNorm normalizes each micro-batch with that micro-batch's own statistics: the semantics of
DDP training without SyncBN, where each GPU's BatchNorm sees only its share. Scoring with chunks
of ``B`` split into micro-batches of ``b`` then gives exactly what ``B / b`` DDP ranks scoring
``b`` samples each would, and differs from one ``B``-sample batch (the running statistics, which
train mode does not read, are irrelevant). DLB's loss averages its CE over current and carried
samples; its micro-batched mean is exact when consecutive steps' batches have the same size.

**SD state.** A step's loss may read and write state: DLB carries the previous batch (inputs of
its second view, labels, detached logits of its first view); PS-KD reads the predictions primed
at ``theta_init``. ``state=(get, set)`` gives access to it. Every micro-batch position ("slot")
of a step has its own state: before micro-batch ``p`` of step ``k`` the state is the one slot
``p`` left after step ``k - 1`` (so DLB's micro-batch ``p`` distils micro-batch ``p`` of the
previous step, as one DLB process per micro-batch would, and exactly the full-batch DLB when
slots line up), and the state each micro-batch saw in the forward pass is restored before its
recomputation in the backward pass: the recomputed step sees the same carry (logits of
``theta_{k-1}``, not of some later parameters) and the same PS-KD prime. The RNG state is
restored too (as ``torch.utils.checkpoint`` does), so dropout draws the same units.

**Ranks.** With ``all_reduce`` (an in-place sum over ranks of one flat tensor), each rank passes
its own share of every step's batch: the step's gradient, its Hessian-vector products and the
outer gradient are summed over ranks with weights over the global sample count, so every rank
follows the same trajectory and ends with the same meta-gradient, equal to one process scoring
the union of the shares (bitwise identical on every rank; equal to one process up to float
rounding). Only ``mode='bounded'`` supports it.
"""
import functools

import torch

from ..utils.errors import UserError

MODES = ('unrolled', 'bounded')


def check_finite(value, what):
    """Raise :class:`UserError` naming ``what`` unless ``value`` is finite; return it."""
    if not torch.isfinite(value).all():
        raise UserError(f'{what} is {value.item() if value.numel() == 1 else "not finite"}; '
                        'scoring diverged (lower inner_lr or the number of inner steps, or '
                        'check the data)')
    return value


def split_rows(inputs, data_samples, size):
    """Cut a single-view batch into consecutive micro-batches of at most ``size`` samples (the
    default ``split``; SD methods provide their own, ``model.sd.split_batch``)."""
    n = len(data_samples)
    if inputs.size(0) != n:
        raise UserError(f'micro_batch: the batch holds {inputs.size(0)} inputs for {n} samples; '
                        'multi-view batches are split by an SDImageClassifier\'s SD method')
    return [(inputs[a:a + size], data_samples[a:a + size]) for a in range(0, n, size)]


def _as_dict(losses):
    return losses if isinstance(losses, dict) else {'loss': losses}


class _Micro:
    """One micro-batch of a step: its data, weight and slot (see the module docstring)."""
    __slots__ = ('inputs', 'data_samples', 'weight', 'slot', 'saved')

    def __init__(self, inputs, data_samples, slot):
        self.inputs, self.data_samples, self.slot = inputs, data_samples, slot
        self.weight, self.saved = None, None


class _Episode:
    """The micro-batches, weights, slot states and RNG states of one meta-gradient."""

    def __init__(self, steps, outer, micro_batch, split, state, all_reduce, device):
        self.state, self.all_reduce, self.device = state, all_reduce, device
        self.steps = [self._micros(chunks, micro_batch, split) for chunks in list(steps) + [outer]]
        self.slots = {}
        self.initial = state[0]() if state is not None else None

    def _micros(self, chunks, micro_batch, split):
        if not chunks:
            raise UserError('every inner step and the outer step need at least one batch')
        micros = []
        for inputs, data_samples in chunks:
            pieces = [(inputs, data_samples)] if micro_batch is None else \
                split(inputs, data_samples, micro_batch)
            micros += [_Micro(x, ds, len(micros) + i) for i, (x, ds) in enumerate(pieces)]
        counts = torch.tensor([float(len(m.data_samples)) for m in micros], dtype=torch.float64,
                              device=self.device)
        total = counts.sum().reshape(1)
        if self.all_reduce is not None:
            self.all_reduce(total)
        for m, c in zip(micros, counts.tolist()):
            m.weight = c / float(total)
        return micros

    def enter(self, micro):
        """Before a micro-batch's first forward: give it its slot's state, remember it."""
        if self.state is not None:
            self.state[1](self.slots.get(micro.slot, self.initial))
        micro.saved = (self.state[0]() if self.state is not None else None, _rng_get())

    def leave(self, micro):
        if self.state is not None:
            self.slots[micro.slot] = self.state[0]()

    def replay(self, micro):
        """Before a recomputation: the state and RNG state the forward pass saw."""
        state, rng = micro.saved
        if self.state is not None:
            self.state[1](state)
        _rng_set(rng)

    def reduce(self, tensors):
        """Sum ``tensors`` (in place) over ranks in one flat all-reduce."""
        if self.all_reduce is None or not tensors:
            return tensors
        flat = torch.cat([t.reshape(-1) for t in tensors])
        self.all_reduce(flat)
        for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
            t.copy_(part.view_as(t))
        return tensors


def _rng_get():
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


def _rng_set(rng):
    torch.set_rng_state(rng[0])
    if rng[1] is not None:
        torch.cuda.set_rng_state_all(rng[1])


def meta_gradients(model, prunable, steps, outer, inner_loss, outer_loss, inner_lr,
                   first_order=False, mode='bounded', micro_batch=None, split=None, state=None,
                   all_reduce=None, name='meta-gradient', momentum=0.0):
    """Meta-gradients ``dL_out/dm`` of one or more outer losses after ``len(steps)`` SGD steps.

    Args:
        model (nn.Module): the model; its trainable parameters (``requires_grad``) are the ones
            the inner steps update, at their current values as ``theta_init``. It is only read.
        prunable (Iterable[str]): names of the masked parameters (a subset of the trainable).
        steps (list[list[tuple]]): one entry per inner step: its chunks, each a preprocessed
            ``(inputs, data_samples)`` batch; the step's loss is the sample-weighted mean over
            its chunks (this rank's share under DDP).
        outer (list[tuple]): the chunks of the outer (scoring) batch.
        inner_loss (Callable): ``inner_loss(step, params, inputs, data_samples) -> Tensor``, the
            scalar loss (a mean over the given samples) of inner step ``step`` (0-based) at
            ``params`` (name -> tensor, for ``torch.func.functional_call``). The step index lets
            a loss change over the steps (e.g. an SD term phased in).
        outer_loss (Callable): ``outer_loss(params, inputs, data_samples) -> Tensor | dict``:
            one scalar, or several (e.g. ``{'loss_cls': ce, 'loss_sd_dlb': sd}``); a
            meta-gradient is returned for each key (a single tensor is the key ``'loss'``).
        inner_lr (float): the inner SGD learning rate.
        first_order (bool): treat the inner gradients as constants. Defaults to False.
        mode (str): ``'bounded'`` (memory-bounded, recomputing) or ``'unrolled'`` (the
            reference). Defaults to ``'bounded'``.
        micro_batch (int, optional): cut every chunk into micro-batches of at most this many
            samples; None keeps chunks whole. Defaults to None.
        split (Callable, optional): ``split(inputs, data_samples, size) -> [(inputs,
            data_samples), ...]``; :func:`split_rows` when None.
        state (tuple[Callable, Callable], optional): ``(get, set)`` of the losses' mutable state
            (the SD method's), handled per micro-batch slot as the module docstring says.
        all_reduce (Callable, optional): ``all_reduce(tensor)`` sums a flat tensor over ranks
            in place; None for one process. ``mode='bounded'`` only.
        name (str): what to call the loss in error messages. Defaults to ``'meta-gradient'``.
        momentum (float): heavy-ball momentum of the inner SGD (PyTorch's convention: the
            buffer starts at the first gradient, ``b = momentum * b + g``, ``theta -= lr * b``);
            ``mode='unrolled'`` only. Defaults to 0 (plain SGD).

    Returns:
        dict[str, dict[str, Tensor]]: outer-loss key -> prunable name -> ``dL_key/dm``
        (signed; detached).
    """
    if mode not in MODES:
        raise UserError(f"meta_mode must be 'unrolled' or 'bounded', got {mode!r}")
    if micro_batch is not None and int(micro_batch) < 1:
        raise UserError(f'micro_batch must be a positive number of samples or None, got '
                        f'{micro_batch!r}')
    if all_reduce is not None and mode != 'bounded':
        raise UserError("scoring on several ranks needs meta_mode='bounded'")
    if momentum and mode != 'unrolled':
        raise UserError("inner momentum needs meta_mode='unrolled'")
    theta_init = {n: p for n, p in model.named_parameters() if p.requires_grad}
    prunable = list(prunable)
    missing = [n for n in prunable if n not in theta_init]
    if missing:
        raise UserError(f'prunable parameters {missing[:3]} are not trainable parameters of '
                        'the model')
    device = next(iter(theta_init.values())).device
    episode = _Episode(steps, outer, None if micro_batch is None else int(micro_batch),
                       split or split_rows, state, all_reduce, device)
    if mode == 'unrolled':
        run = functools.partial(_unrolled, momentum=float(momentum))
    else:
        run = _bounded
    final_rng = None
    try:
        result = run(theta_init, prunable, episode, inner_loss, outer_loss, float(inner_lr),
                     bool(first_order), name)
        final_rng = _rng_get()
    finally:
        if state is not None:
            state[1](episode.initial)
    if final_rng is not None:
        _rng_set(final_rng)
    return result


def _what(name, step, num_steps):
    if step < num_steps:
        return f'{name} loss at inner step {step + 1}/{num_steps}'
    return f'{name} loss at the scoring step (after {num_steps} inner steps)'


def _weighted_losses(episode, micro, fn, params):
    episode.enter(micro)
    losses = _as_dict(fn(params, micro.inputs, micro.data_samples))
    episode.leave(micro)
    return {k: v * micro.weight for k, v in losses.items()}


def _inner(inner_loss, step):
    return lambda params, inputs, data_samples: inner_loss(step, params, inputs, data_samples)


# ---------------------------------------------------------------------- the reference
def _unrolled(theta_init, prunable, episode, inner_loss, outer_loss, lr, first_order, name,
              momentum=0.0):
    """The reference: autograd through every inner step at once (ProsPr's original way), with
    optional heavy-ball momentum."""
    num_steps = len(episode.steps) - 1
    masks = {n: torch.ones_like(theta_init[n], requires_grad=True) for n in prunable}
    theta = {n: p.detach() * masks[n] if n in masks else p.detach().clone().requires_grad_(True)
             for n, p in theta_init.items()}
    buffers = {}
    for k in range(num_steps):
        loss = sum(_weighted_losses(episode, m, _inner(inner_loss, k), theta)['loss']
                   for m in episode.steps[k])
        check_finite(loss.detach(), _what(name, k, num_steps))
        grads = torch.autograd.grad(loss, list(theta.values()), create_graph=not first_order,
                                    allow_unused=True)
        if momentum:
            grads = [g if g is None or n not in buffers else momentum * buffers[n] + g
                     for n, g in zip(theta, grads)]
            buffers.update((n, g) for n, g in zip(theta, grads) if g is not None)
        theta = {n: t if g is None else t - lr * g for (n, t), g in zip(theta.items(), grads)}
    totals = {}
    for m in episode.steps[-1]:
        for key, value in _weighted_losses(episode, m, outer_loss, theta).items():
            totals[key] = totals[key] + value if key in totals else value
    result = {}
    for i, (key, loss) in enumerate(totals.items()):
        check_finite(loss.detach(), _what(name, num_steps, num_steps))
        grads = torch.autograd.grad(loss, list(masks.values()), allow_unused=True,
                                    retain_graph=i < len(totals) - 1)
        result[key] = {n: torch.zeros_like(masks[n]) if g is None else g.detach()
                       for n, g in zip(masks, grads)}
    return result


# ---------------------------------------------------------------------- memory-bounded
def _leaves(theta):
    return {n: t.detach().requires_grad_(True) for n, t in theta.items()}


def _accumulate(acc, grads, own):
    """Add ``grads`` into the list ``acc`` (None entries are still empty: the first gradient
    becomes the buffer, so one micro-batch costs no extra copy of the parameters). Autograd may
    hand the same tensor to two inputs (an addition passes its gradient through), so a buffer
    that will be changed in place is a copy (``own``)."""
    for i, g in enumerate(grads):
        if g is None:
            continue
        if acc[i] is None:
            acc[i] = g.detach().clone() if own else g.detach()
        else:
            acc[i].add_(g.detach())


def _filled(acc, like):
    """``acc`` with zeros for the parameters no loss reached."""
    return [torch.zeros_like(t) if a is None else a for a, t in zip(acc, like)]


def _bounded(theta_init, prunable, episode, inner_loss, outer_loss, lr, first_order, name):
    """Checkpointed reverse mode: trajectory forward, recomputed steps and HVPs backward."""
    num_steps = len(episode.steps) - 1
    # theta_0: the parameters themselves (scoring never changes them in place)
    theta = {n: p.detach() for n, p in theta_init.items()}
    names = list(theta)
    trajectory = []
    # forward: the trajectory, one micro-batch graph at a time
    for k in range(num_steps):
        trajectory.append(theta)
        leaves = _leaves(theta)
        grads = [None] * len(theta)
        loss = None
        for m in episode.steps[k]:
            value = _weighted_losses(episode, m, _inner(inner_loss, k), leaves)['loss']
            _accumulate(grads, torch.autograd.grad(value, list(leaves.values()),
                                                   allow_unused=True),
                        own=len(episode.steps[k]) > 1)
            loss = value.detach().reshape(1) + (0 if loss is None else loss)
        grads = _filled(grads, theta.values())
        episode.reduce(grads + [loss])
        check_finite(loss, _what(name, k, num_steps))
        with torch.no_grad():
            theta = {n: t - lr * g for (n, t), g in zip(theta.items(), grads)}
    # the outer gradients v_M, one per outer loss
    leaves = _leaves(theta)
    adjoints, totals = {}, {}
    for m in episode.steps[-1]:
        losses = _weighted_losses(episode, m, outer_loss, leaves)
        for i, (key, value) in enumerate(losses.items()):
            if key not in adjoints:
                adjoints[key] = [None] * len(theta)
                totals[key] = value.detach().new_zeros(1)
            _accumulate(adjoints[key], torch.autograd.grad(
                value, list(leaves.values()), allow_unused=True,
                retain_graph=i < len(losses) - 1), own=True)
            totals[key] += value.detach()
    keys = list(adjoints)
    adjoints = {key: _filled(adjoints[key], theta.values()) for key in keys}
    episode.reduce([t for key in keys for t in adjoints[key]] + [totals[k] for k in keys])
    for key in keys:
        check_finite(totals[key], _what(name, num_steps, num_steps))
    del leaves, theta
    # backward: v_k = v_{k+1} - lr * H_k v_{k+1}, recomputing step k at theta_k
    for k in reversed(range(num_steps) if not first_order else ()):
        leaves = _leaves(trajectory.pop())
        products = {key: [None] * len(leaves) for key in keys}
        for m in episode.steps[k]:
            episode.replay(m)
            value = m.weight * _as_dict(inner_loss(k, leaves, m.inputs, m.data_samples))['loss']
            grads = torch.autograd.grad(value, list(leaves.values()), create_graph=True,
                                        allow_unused=True)
            used = [(g, i) for i, g in enumerate(grads) if g is not None and g.requires_grad]
            for j, key in enumerate(keys):
                if not used:
                    break
                dot = sum((g * adjoints[key][i]).sum() for g, i in used)
                _accumulate(products[key], torch.autograd.grad(
                    dot, list(leaves.values()), allow_unused=True,
                    retain_graph=j < len(keys) - 1), own=len(episode.steps[k]) > 1)
            del grads, used, value
        products = {key: _filled(products[key], leaves.values()) for key in keys}
        episode.reduce([t for key in keys for t in products[key]])
        for key in keys:
            for v, hv in zip(adjoints[key], products[key]):
                v.sub_(hv, alpha=lr)
        del leaves, products
    index = {n: i for i, n in enumerate(names)}
    return {key: {n: (adjoints[key][index[n]] * theta_init[n].detach()) for n in prunable}
            for key in keys}


__all__ = ['meta_gradients', 'check_finite', 'split_rows', 'MODES']
