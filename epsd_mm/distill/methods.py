"""The self-distillation (SD) methods: CS-KD, PS-KD and DLB.

Each method is a plain Python object, built from ``SD_METHODS`` by :class:`SDImageClassifier`
(``model.sd``), that computes the SD training loss of a batch from the model's own forward pieces
(``model.extract_feat`` and ``model.head``). It is deliberately *not* an ``nn.Module``: its state
(PS-KD's per-sample memory, DLB's carried batch) must never enter the model's ``state_dict``, so
that a checkpoint loads into an unmodified mmpretrain ``ImageClassifier``. That state travels in
checkpoints beside the weights, under the top-level key ``self_distill``
(:class:`~epsd_mm.hooks.SelfDistillHook`).

Interface (docs/architecture.md, "The SD model interface"):

- ``loss(model, inputs, data_samples) -> dict(loss_cls=..., loss_sd_<name>=...)``: the SD training
  loss. Every forward goes through ``model``, so the loss works inside
  ``torch.func.functional_call(model, params, (inputs, data_samples), {'mode': 'loss'})`` with the
  substituted parameters, DLB's re-forward of the previous batch included. With
  ``loss_weight == 0`` it returns exactly :meth:`BaseSDMethod.ce_loss`, the same as the model
  returns under ``model.sd_disabled()``, and leaves the method's state untouched.
- ``ce_loss(model, inputs, data_samples) -> dict(loss_cls=...)``: the task cross-entropy alone, on
  :meth:`task_batch`'s part of the batch, with the head's own loss module (so a configured
  ``LabelSmoothLoss`` or ``loss_weight`` applies).
- ``scoring()``: a context for a pruning "scoring episode": the state is set aside, a scratch
  state starts empty, ``scoring_mode`` is True (no cross-rank communication, no per-dataset
  memory), and the state is restored on exit, exception or not.
- ``prime(model, inputs, data_samples)``: called under ``torch.no_grad`` at theta_init for every
  scoring batch before the inner steps (PS-KD records its "previous" predictions).
- ``set_epoch(epoch, max_epochs)``, ``set_num_samples(n)``, ``state_dict()``,
  ``load_state_dict(d)`` (CPU tensors, exact restore).

Only detached tensors are ever stored in the state.
"""
import contextlib
import math

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_dist_info

from ..registry import SD_METHODS
from ..utils.errors import UserError
from .losses import kd_loss, soft_target_ce

_TWO_VIEW_HINT = (
    "wrap the train pipeline's augmentations in dict(type='MultiView', num_views=2, "
    "transforms=[[...]]) before PackInputs, and set "
    "train_dataloader.collate_fn=dict(type='multiview_collate')")


# ---------------------------------------------------------------------------- batch helpers
def split_views(inputs, data_samples):
    """Split a batch into its views.

    A multi-view batch (``MultiView`` + ``multiview_collate``) stacks the views along the batch
    dimension, view-major: ``inputs`` holds ``V * B`` rows for ``B`` data samples, rows
    ``[v * B, (v + 1) * B)`` being view ``v``. A single-view batch is one view.

    Args:
        inputs (Tensor): ``(V * B, C, H, W)`` preprocessed inputs.
        data_samples (list[DataSample] | None): the ``B`` data samples; ``None`` means one view.

    Returns:
        list[Tensor]: the ``V`` views, each ``(B, C, H, W)``.
    """
    if data_samples is None:
        return [inputs]
    n, rows = len(data_samples), inputs.size(0)
    if rows == n:
        return [inputs]
    if n == 0 or rows % n != 0:
        raise UserError(
            f'the batch holds {rows} inputs for {n} data samples; a multi-view batch must hold '
            f'a whole number of views per sample (to feed two views, {_TWO_VIEW_HINT})')
    return list(inputs.split(n))


def take_samples(inputs, data_samples, index):
    """The sub-batch of the samples at ``index`` (a sequence of sample positions), every view
    of them, in the layout of :func:`split_views` (view-major)."""
    index = list(index)
    rows = torch.as_tensor(index, dtype=torch.long, device=inputs.device)
    views = split_views(inputs, data_samples)
    return (torch.cat([v.index_select(0, rows) for v in views]),
            [data_samples[i] for i in index])


def gt_labels(data_samples, device=None):
    """The integer labels of ``data_samples`` as a ``(B,)`` long tensor on ``device``."""
    if not data_samples or 'gt_label' not in data_samples[0]:
        raise UserError('self-distillation needs a `gt_label` in every data sample (a labelled '
                        'training set packed by PackInputs)')
    if 'gt_score' in data_samples[0]:
        # Mixup/CutMix replace the hard label by a score; the SD targets are built on hard
        # labels, so silently ignoring the mixed score would train on the wrong target.
        raise UserError('self-distillation methods train on hard labels: remove batch '
                        'augmentations (model.train_cfg.augments, e.g. Mixup/CutMix) from the '
                        'config of an SDImageClassifier')
    labels = torch.cat([ds.gt_label.reshape(-1) for ds in data_samples])
    if labels.numel() != len(data_samples):
        raise UserError('self-distillation needs exactly one label per sample (single-label '
                        'classification); got multi-label data samples')
    return labels.to(device=device, dtype=torch.long)


def forward_logits(model, inputs):
    """Logits of ``inputs`` from the model's own pieces (``extract_feat`` then ``head``), so that
    parameters substituted by ``functional_call`` are the ones used."""
    return model.head(model.extract_feat(inputs))


def task_cross_entropy(model, logits, labels):
    """The task CE with the head's configured loss module (label smoothing, ``loss_weight``
    and the like apply), averaged over the batch as ``ClsHead`` averages it."""
    loss_module = getattr(getattr(model, 'head', None), 'loss_module', None)
    if loss_module is None:
        return F.cross_entropy(logits, labels)
    return loss_module(logits, labels, avg_factor=logits.size(0))


# ---------------------------------------------------------------------------- base
class BaseSDMethod:
    """Base of the self-distillation methods (plain objects, not ``nn.Module``).

    Args:
        loss_weight (float): weight of the SD term (CS-KD's lambda, DLB's alpha, a multiplier of
            PS-KD's alpha_t). At 0 :meth:`loss` is exactly :meth:`ce_loss`. Defaults to 1.0.
    """

    #: suffix of the SD loss key: ``loss_sd_<name>``
    name = ''
    #: True when the state differs between ranks under DDP (DLB's carry) instead of being kept
    #: identical on every rank (PS-KD's memory); the checkpoint holds rank 0's state only
    per_rank_state = False
    #: True when the method follows the epoch counter (PS-KD's alpha_t)
    uses_epochs = False
    #: augmented views of every training sample the method uses (DLB: 2); more views in a batch
    #: are loaded and preprocessed for nothing
    num_views = 1

    def __init__(self, loss_weight=1.0):
        loss_weight = float(loss_weight)
        if not math.isfinite(loss_weight) or loss_weight < 0:
            raise UserError(f'{type(self).__name__}: loss_weight must be a finite number >= 0, '
                            f'got {loss_weight}')
        self.loss_weight = loss_weight
        self.scoring_mode = False
        self.epoch = 0
        self.max_epochs = 1
        self.num_samples = None

    @property
    def loss_key(self):
        return f'loss_sd_{self.name}'

    # -- losses
    def loss(self, model, inputs, data_samples):
        """The SD training loss: ``dict(loss_cls=..., loss_sd_<name>=...)``."""
        if self.loss_weight == 0:
            return self.ce_loss(model, inputs, data_samples)
        return self.sd_loss(model, inputs, data_samples)

    def ce_loss(self, model, inputs, data_samples):
        """The task cross-entropy alone, ``dict(loss_cls=...)``, on :meth:`task_batch`'s part."""
        x, samples = self.task_batch(inputs, data_samples)
        logits = forward_logits(model, x)
        labels = gt_labels(samples, logits.device)
        return dict(loss_cls=task_cross_entropy(model, logits, labels))

    def sd_loss(self, model, inputs, data_samples):
        raise NotImplementedError

    def task_batch(self, inputs, data_samples):
        """The part of a batch the task CE is computed on: ``(inputs, data_samples)``.

        The whole batch here (the first view of a multi-view batch).
        """
        return split_views(inputs, data_samples)[0], data_samples

    def split_batch(self, inputs, data_samples, size):
        """The batch cut into micro-batches of at most ``size`` samples, in order, each in this
        method's batch layout (both views of every sample), for the memory-bounded
        meta-gradient (:mod:`epsd_mm.pruning.metagrad`)."""
        n = len(data_samples)
        return [take_samples(inputs, data_samples, range(a, min(n, a + size)))
                for a in range(0, n, size)]

    # -- life cycle
    def prime(self, model, inputs, data_samples):
        """Record teacher signal at theta_init before a scoring episode's inner steps (no-op)."""

    def set_epoch(self, epoch, max_epochs):
        """Tell the method the 0-based ``epoch`` of ``max_epochs``."""
        epoch, max_epochs = int(epoch), int(max_epochs)
        if max_epochs < 1 or not 0 <= epoch:
            raise ValueError(f'set_epoch: need 0 <= epoch and max_epochs >= 1, got epoch={epoch}, '
                             f'max_epochs={max_epochs}')
        self.epoch, self.max_epochs = epoch, max_epochs

    def set_num_samples(self, num_samples):
        """Tell the method the size of the training set."""
        self.num_samples = int(num_samples)

    @contextlib.contextmanager
    def scoring(self):
        """A pruning scoring episode: empty scratch state, ``scoring_mode`` True; the state is
        restored on exit, even on an exception."""
        saved, saved_mode = self._get_state(), self.scoring_mode
        self._set_state(self._empty_state())
        self.scoring_mode = True
        try:
            yield self
        finally:
            self._set_state(saved)
            self.scoring_mode = saved_mode

    # -- state (overridden by the stateful methods)
    def _get_state(self):
        return {}

    def _set_state(self, state):
        pass

    def _empty_state(self):
        return {}

    def state_dict(self):
        """The method's state, tensors on CPU."""
        return {}

    def load_state_dict(self, state_dict):
        """Restore :meth:`state_dict` exactly."""

    def __repr__(self):
        return f'{type(self).__name__}(loss_weight={self.loss_weight})'


# ---------------------------------------------------------------------------- CS-KD
@SD_METHODS.register_module(name=['CSKD', 'cskd'])
class CSKD(BaseSDMethod):
    """Class-wise self-knowledge distillation (Yun et al., CVPR 2020).

    ``loss_cls = CE(f(x), y)`` and ``loss_sd_cskd = loss_weight * kd_loss(f(x), f(x'), tau)``,
    where ``x'`` is another training sample of the class of ``x`` and ``f(x')`` is computed under
    ``torch.no_grad`` (two forwards, as the official code does). The batch is
    ``[x_1..x_B, x'_1..x'_B]`` from :class:`ClassPairBatchSampler`; the CE term is on the first
    half.

    Args:
        tau (float): the temperature. Defaults to 4.0.
        loss_weight (float): lambda, the weight of the SD term (3 on CUB in the paper).
            Defaults to 1.0.
    """
    name = 'cskd'

    def __init__(self, tau=4.0, loss_weight=1.0):
        super().__init__(loss_weight=loss_weight)
        if not float(tau) > 0:
            raise UserError(f'CSKD: tau must be > 0, got {tau}')
        self.tau = float(tau)

    def _halves(self, inputs, data_samples):
        x = split_views(inputs, data_samples)[0]
        n = len(data_samples)
        labels = gt_labels(data_samples)
        if n % 2 or not torch.equal(labels[:n // 2], labels[n // 2:]):
            raise UserError(
                'CS-KD needs every batch to be B samples followed by a same-class partner of '
                'each; set train_dataloader.batch_sampler=dict(type="ClassPairBatchSampler") '
                '(with the usual sampler=dict(type="DefaultSampler", shuffle=True))')
        h = n // 2
        return (x[:h], data_samples[:h]), (x[h:], data_samples[h:])

    def task_batch(self, inputs, data_samples):
        """The first half of the paired batch."""
        return self._halves(inputs, data_samples)[0]

    def split_batch(self, inputs, data_samples, size):
        """Micro-batches that keep every sample with its partner: at most ``size // 2`` pairs
        each (at least one), laid out as B samples followed by their B partners."""
        self._halves(inputs, data_samples)  # checks the pairing
        h, pairs = len(data_samples) // 2, max(1, size // 2)
        return [take_samples(inputs, data_samples,
                             [*range(a, min(h, a + pairs)), *range(h + a, h + min(h, a + pairs))])
                for a in range(0, h, pairs)]

    def sd_loss(self, model, inputs, data_samples):
        (x, samples), (x_pair, _) = self._halves(inputs, data_samples)
        logits = forward_logits(model, x)
        labels = gt_labels(samples, logits.device)
        with torch.no_grad():
            teacher = forward_logits(model, x_pair)
        return {
            'loss_cls': task_cross_entropy(model, logits, labels),
            self.loss_key: self.loss_weight * kd_loss(logits, teacher, self.tau),
        }

    def __repr__(self):
        return f'CSKD(tau={self.tau}, loss_weight={self.loss_weight})'


# ---------------------------------------------------------------------------- PS-KD
_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16,
           'float64': torch.float64}


@SD_METHODS.register_module(name=['PSKD', 'pskd'])
class PSKD(BaseSDMethod):
    """Progressive self-knowledge distillation (Kim et al., ICCV 2021).

    The target of a sample is ``(1 - alpha_t) * onehot(y) + alpha_t * p_prev``, ``p_prev`` being
    the model's softmax prediction for that sample the last time it was trained on (the previous
    epoch), one-hot for a sample never seen yet. ``alpha_t = loss_weight * alpha_T *
    (epoch + 1) / max_epochs`` with the 0-based epoch of :meth:`set_epoch`, the official code's
    schedule. The soft-target CE is returned in two parts whose sum is exactly it (when the head's
    loss is the plain CE): ``loss_cls = (1 - alpha_t) * CE(logits, y)`` (the head's loss module)
    and ``loss_sd_pskd = alpha_t * soft_target_ce(logits, p_prev)``.

    The memory holds one ``num_classes`` row per training sample, keyed by the dataset index
    ``data_sample.sample_idx`` (mmengine's datasets set it, ``PackInputs`` packs it by default),
    allocated on CPU at the first training batch from :meth:`set_num_samples`
    (:class:`SelfDistillHook` calls it). After each batch ``softmax(logits)`` is written for its
    samples; under DDP every rank's ``(index, prediction)`` pairs are all-gathered, so the memory
    is identical on every rank (and rank 0's checkpoint restores every rank exactly).

    In a pruning scoring episode (:meth:`scoring`) the memory is neither read nor written:
    ``p_prev`` is the prediction at theta_init recorded by :meth:`prime` (one-hot for samples not
    primed) and ``alpha = loss_weight * score_alpha``.

    Args:
        alpha_T (float): the final alpha, in [0, 1]. Defaults to 0.8.
        loss_weight (float): multiplier of alpha_t (0 gives CE alone). Defaults to 1.0.
        memory_dtype (str): dtype of the memory, ``'float32'`` or ``'float16'`` (halves its size,
            e.g. 2.6 GB instead of 5.1 GB on ImageNet-1k). Defaults to ``'float32'``.
        score_alpha (float, optional): alpha during pruning scoring; None uses ``alpha_T``.
            Defaults to None.
    """
    name = 'pskd'
    uses_epochs = True

    def __init__(self, alpha_T=0.8, loss_weight=1.0, memory_dtype='float32', score_alpha=None):
        super().__init__(loss_weight=loss_weight)
        self.alpha_T = float(alpha_T)
        self.score_alpha = self.alpha_T if score_alpha is None else float(score_alpha)
        for what, a in (('alpha_T', self.alpha_T), ('score_alpha', self.score_alpha)):
            if not 0 <= a * self.loss_weight <= 1:
                raise UserError(f'PSKD: loss_weight * {what} must lie in [0, 1] (the weight of '
                                f'the past predictions in the target), got '
                                f'{self.loss_weight} * {a}')
        if memory_dtype not in _DTYPES:
            raise UserError(f'PSKD: memory_dtype must be one of {", ".join(_DTYPES)}, '
                            f'got {memory_dtype!r}')
        self.memory_dtype = memory_dtype
        self.memory = None  # (N, C) past predictions, CPU
        self.seen = None  # (N,) bool: whether the row holds a prediction yet
        self._scratch = {}  # scoring episode: sample_idx -> prediction at theta_init

    @property
    def alpha_t(self):
        """The weight of the past predictions in the current epoch's target."""
        return self.loss_weight * self.alpha_T * (self.epoch + 1) / self.max_epochs

    # -- helpers
    @staticmethod
    def _indices(data_samples):
        try:
            idx = [int(ds.sample_idx) for ds in data_samples]
        except (AttributeError, KeyError):
            raise UserError(
                'PS-KD needs `sample_idx` in every data sample: keep the default meta_keys of '
                'PackInputs in the train pipeline (they include sample_idx)') from None
        return torch.tensor(idx, dtype=torch.long)

    def _ensure_memory(self, num_classes):
        if self.memory is None:
            if self.num_samples is None:
                raise UserError(
                    'PS-KD keeps a prediction per training sample and needs the size of the '
                    "training set: add dict(type='SelfDistillHook') to custom_hooks")
            self.memory = torch.zeros(self.num_samples, num_classes,
                                      dtype=_DTYPES[self.memory_dtype])
            self.seen = torch.zeros(self.num_samples, dtype=torch.bool)
        elif self.memory.size(1) != num_classes:
            raise UserError(f'PS-KD memory has {self.memory.size(1)} classes, the model predicts '
                            f'{num_classes}')

    def _check_range(self, idx):
        n = self.memory.size(0)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise UserError(
                f'PS-KD got sample_idx {int(idx.max())} outside the training set of {n} samples; '
                'sample_idx must index the training dataset itself (dataset wrappers such as '
                'ConcatDataset, whose sample_idx restarts in every part, are not supported)')

    def _previous(self, idx, onehot):
        """``p_prev`` rows for ``idx`` (one-hot where there is none)."""
        if self.scoring_mode:
            rows = [self._scratch.get(i) for i in idx.tolist()]
            return torch.stack([onehot[k] if r is None else r.to(onehot)
                                for k, r in enumerate(rows)])
        self._ensure_memory(onehot.size(1))
        self._check_range(idx)
        mem = self.memory[idx].to(device=onehot.device, dtype=onehot.dtype)
        seen = self.seen[idx].to(onehot.device)
        return torch.where(seen[:, None], mem, onehot)

    @staticmethod
    def _gather(idx, probs):
        """All ranks' ``(idx, probs)``; per-rank batch sizes may differ (pad + count)."""
        _, world_size = get_dist_info()
        if world_size == 1:
            return idx, probs
        device = probs.device
        idx = idx.to(device)
        sizes = [int(s) for s in all_gather(torch.tensor([idx.numel()], device=device))]
        most = max(sizes)
        pad_idx = idx.new_zeros(most)
        pad_idx[:idx.numel()] = idx
        pad_probs = probs.new_zeros(most, probs.size(1))
        pad_probs[:probs.size(0)] = probs
        all_idx = all_gather(pad_idx)
        all_probs = all_gather(pad_probs)
        return (torch.cat([i[:s] for i, s in zip(all_idx, sizes)]),
                torch.cat([p[:s] for p, s in zip(all_probs, sizes)]))

    def _record(self, idx, probs):
        idx, probs = self._gather(idx, probs)
        idx = idx.cpu()
        # Later rows win for repeated indices (DefaultSampler's round-up padding), in the same
        # order on every rank, so the memory stays identical across ranks.
        self.memory[idx] = probs.cpu().to(self.memory.dtype)
        self.seen[idx] = True

    # -- losses
    def sd_loss(self, model, inputs, data_samples):
        x, samples = self.task_batch(inputs, data_samples)
        logits = forward_logits(model, x)
        labels = gt_labels(samples, logits.device)
        idx = self._indices(samples)
        onehot = F.one_hot(labels, logits.size(1)).to(logits.dtype)
        alpha = self.loss_weight * self.score_alpha if self.scoring_mode else self.alpha_t
        previous = self._previous(idx, onehot)
        losses = {
            'loss_cls': (1 - alpha) * task_cross_entropy(model, logits, labels),
            self.loss_key: alpha * soft_target_ce(logits, previous),
        }
        if not self.scoring_mode:
            self._record(idx, F.softmax(logits.detach().float(), dim=1))
        return losses

    def prime(self, model, inputs, data_samples):
        """Record the predictions at theta_init of a scoring batch as its ``p_prev``."""
        if not self.scoring_mode:
            raise RuntimeError('PSKD.prime() belongs inside a `with sd.scoring():` episode')
        x, samples = self.task_batch(inputs, data_samples)
        with torch.no_grad():
            probs = F.softmax(forward_logits(model, x).detach().float(), dim=1)
        for i, p in zip(self._indices(samples).tolist(), probs):
            self._scratch[i] = p

    # -- state
    def _get_state(self):
        return dict(memory=self.memory, seen=self.seen, scratch=self._scratch)

    def _set_state(self, state):
        self.memory, self.seen, self._scratch = state['memory'], state['seen'], state['scratch']

    def _empty_state(self):
        return dict(memory=None, seen=None, scratch={})

    def set_num_samples(self, num_samples):
        num_samples = int(num_samples)
        if self.memory is not None and self.memory.size(0) != num_samples:
            raise UserError(f'PS-KD memory holds {self.memory.size(0)} samples but the training '
                            f'set has {num_samples} (a checkpoint of another data set?)')
        super().set_num_samples(num_samples)

    def state_dict(self):
        """``memory`` (N, C), ``seen`` (N,) (None before the first batch), ``epoch`` and
        ``max_epochs``."""
        return dict(
            memory=None if self.memory is None else self.memory.detach().cpu().clone(),
            seen=None if self.seen is None else self.seen.detach().cpu().clone(),
            epoch=self.epoch, max_epochs=self.max_epochs)

    def load_state_dict(self, state_dict):
        memory, seen = state_dict.get('memory'), state_dict.get('seen')
        if (memory is None) != (seen is None):
            raise UserError('PS-KD state needs both `memory` and `seen`')
        if memory is not None:
            if self.num_samples is not None and memory.size(0) != self.num_samples:
                raise UserError(f'the checkpoint\'s PS-KD memory holds {memory.size(0)} samples '
                                f'but the training set has {self.num_samples}')
            memory = memory.detach().cpu().to(_DTYPES[self.memory_dtype]).clone()
            seen = seen.detach().cpu().to(torch.bool).clone()
        self.memory, self.seen = memory, seen
        self.set_epoch(state_dict.get('epoch', self.epoch),
                       state_dict.get('max_epochs', self.max_epochs))

    def __repr__(self):
        return (f'PSKD(alpha_T={self.alpha_T}, loss_weight={self.loss_weight}, '
                f'memory_dtype={self.memory_dtype!r}, score_alpha={self.score_alpha})')


# ---------------------------------------------------------------------------- DLB
@SD_METHODS.register_module(name=['DLB', 'dlb'])
class DLB(BaseSDMethod):
    """Self-distillation from the last mini-batch (Shen et al., CVPR 2022).

    Every sample comes in two augmented views (``MultiView`` with ``num_views=2`` in the train
    pipeline, ``multiview_collate`` as the train ``collate_fn``). Each iteration forwards the
    current batch's first view, and re-forwards the previous batch's second view (a second
    forward, as the official code does), then

    - ``loss_cls``: the CE over both, ``[current view 1; previous view 2]`` with
      ``[current labels; previous labels]`` (the first iteration: the current batch only);
    - ``loss_sd_dlb = loss_weight * kd_loss(f(previous view 2), carried logits, tau)``, the
      carried logits being those of the previous batch's first view at the previous iteration
      (detached); 0 in the first iteration.

    The carry (previous view 2 inputs, labels, view 1 logits; detached) then becomes the current
    batch. It persists across epoch boundaries, as in the official code. With ``loss_weight == 0``
    or under ``model.sd_disabled()`` the loss is the CE of the current view 1 alone and the carry
    is neither used nor updated.

    The carry is part of :meth:`state_dict`, so a resumed single-process run continues exactly;
    it costs one preprocessed batch in every checkpoint, ``B * 3 * H * W * 4`` bytes (1.5 MB for
    CIFAR at B=128, 154 MB for ImageNet at B=256 and 224 px). Under DDP each rank has its own
    carry and the checkpoint (written by rank 0) holds rank 0's only: a run resumed on several
    processes restarts the carry on every rank (:class:`SelfDistillHook` logs it), so the first
    iteration after resuming is CE only.

    Args:
        tau (float): the temperature. Defaults to 3.0.
        loss_weight (float): alpha, the weight of the SD term. Defaults to 1.0.
    """
    name = 'dlb'
    num_views = 2
    per_rank_state = True

    def __init__(self, tau=3.0, loss_weight=1.0):
        super().__init__(loss_weight=loss_weight)
        if not float(tau) > 0:
            raise UserError(f'DLB: tau must be > 0, got {tau}')
        self.tau = float(tau)
        self.carry = None  # dict(inputs, labels, logits) of the previous batch, detached

    def _views(self, inputs, data_samples):
        views = split_views(inputs, data_samples)
        if len(views) < 2:
            raise UserError(f'DLB needs two augmented views of every training sample: '
                            f'{_TWO_VIEW_HINT}')
        return views

    def task_batch(self, inputs, data_samples):
        """The current batch's first view."""
        return self._views(inputs, data_samples)[0], data_samples

    def sd_loss(self, model, inputs, data_samples):
        views = self._views(inputs, data_samples)
        logits = forward_logits(model, views[0])
        labels = gt_labels(data_samples, logits.device)
        carry = self.carry
        if carry is None:
            losses = {'loss_cls': task_cross_entropy(model, logits, labels),
                      self.loss_key: logits.new_zeros(())}
        else:
            prev_inputs = carry['inputs'].to(views[1].device)
            prev_labels = carry['labels'].to(labels.device)
            prev_teacher = carry['logits'].to(logits.device)
            prev_logits = forward_logits(model, prev_inputs)
            losses = {
                'loss_cls': task_cross_entropy(model, torch.cat([logits, prev_logits]),
                                               torch.cat([labels, prev_labels])),
                self.loss_key: self.loss_weight * kd_loss(prev_logits, prev_teacher, self.tau),
            }
        self.carry = dict(inputs=views[1].detach(), labels=labels.detach(),
                          logits=logits.detach())
        return losses

    # -- state
    def _get_state(self):
        return dict(carry=self.carry)

    def _set_state(self, state):
        self.carry = state['carry']

    def _empty_state(self):
        return dict(carry=None)

    def state_dict(self):
        """``carry``: ``dict(inputs, labels, logits)`` on CPU, or None before the first batch."""
        if self.carry is None:
            return dict(carry=None)
        return dict(carry={k: v.detach().cpu().clone() for k, v in self.carry.items()})

    def load_state_dict(self, state_dict):
        carry = state_dict.get('carry')
        if carry is not None:
            missing = {'inputs', 'labels', 'logits'} - set(carry)
            if missing:
                raise UserError(f'DLB state lacks {sorted(missing)}')
            carry = {k: carry[k].detach().cpu().clone() for k in ('inputs', 'labels', 'logits')}
        self.carry = carry

    def reset(self):
        """Drop the carry: the next batch trains on CE alone."""
        self.carry = None

    def __repr__(self):
        return f'DLB(tau={self.tau}, loss_weight={self.loss_weight})'
