"""Pruning-at-initialization criteria, one small registered class each.

Every criterion implements ``score(model, params, batches, sparsity, scope) -> {name: score}``
with *higher = keep*. ``params`` are the prunable weights (name -> ``nn.Parameter``) and
``batches`` is an iterator of preprocessed ``(inputs, data_samples)``. The caller
(:func:`epsd_mm.pruning.api.compute_masks`) restores the model's weights, buffers and modes after
scoring, so criteria may change them freely.

Losses come from the model (DESIGN principle 2): the task loss is the model's own ``loss`` with
self-distillation switched off, the SD loss is the model's own ``loss``. No criterion
re-implements an SD method.
"""
import contextlib
import copy
import functools
import itertools

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..registry import CRITERIA
from ..utils.errors import UserError
from .metagrad import MODES, meta_gradients
from .metagrad import check_finite as _check_finite
from .selection import BUDGETS, masks_as_scores, select_masks


# ---------------------------------------------------------------------- loss access
def sum_losses(losses):
    """Total of a loss dict the way mmengine's ``parse_losses`` adds it (keys with 'loss')."""
    total = 0.
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        if isinstance(value, (list, tuple)):
            value = sum(v.mean() for v in value)
        total = total + value.mean()
    return total


def _sd_switch(model, sd):
    """Context in which ``model(..., mode='loss')`` is the SD loss (``sd=True``) or the task
    loss alone. Plain classifiers have only a task loss."""
    if sd:
        if not hasattr(model, 'sd'):
            raise UserError(
                f'the epsd criterion scores with the model\'s self-distillation loss, but '
                f'{type(model).__name__} has none; use model=dict(type="SDImageClassifier", '
                'sd=dict(type="DLB"|"CSKD"|"PSKD"), ...)')
        return contextlib.nullcontext()
    if hasattr(model, 'sd_disabled'):
        return model.sd_disabled()
    return contextlib.nullcontext()


def _scoring_episode(model):
    """The SD method's scratch state for a scoring episode (nothing for plain models)."""
    sd = getattr(model, 'sd', None)
    return sd.scoring() if sd is not None else contextlib.nullcontext()


def model_loss(model, inputs, data_samples, sd=False, params=None):
    """The model's total training loss on a batch, optionally with substituted ``params``."""
    with _sd_switch(model, sd):
        if params is None:
            losses = model(inputs, data_samples, mode='loss')
        else:
            losses = functional_call(model, params, (inputs, data_samples), {'mode': 'loss'})
    return sum_losses(losses)


def logits_and_labels(model, inputs, data_samples):
    """Logits and integer labels of the task (CE) part of a batch."""
    if hasattr(model, 'task_logits'):
        return model.task_logits(inputs, data_samples)
    logits = model(inputs, data_samples, mode='tensor')
    labels = torch.cat([ds.gt_label for ds in data_samples]).to(logits.device)
    return logits, labels


# ---------------------------------------------------------------------- criteria
class BaseCriterion:
    """Base of the criteria.

    Args:
        num_batches (int): mini-batches of training data the criterion reads. Defaults to 1.
        batches_per_step (int): loader batches that make one of those mini-batches (or one
            inner step's batch), gradients summed over them; the hook's
            ``score_data.num_batches_per_step`` sets it. Defaults to 1.
    """
    #: registry name; also written into masks and reports
    name = ''
    #: whether the criterion reads training data
    needs_data = True

    def __init__(self, num_batches=1, batches_per_step=1):
        if int(num_batches) < 1:
            raise UserError(f'num_batches must be >= 1, got {num_batches}')
        if int(batches_per_step) < 1:
            raise UserError(f'batches_per_step must be >= 1, got {batches_per_step}')
        self.num_batches = int(num_batches)
        self.batches_per_step = int(batches_per_step)
        #: set by :func:`~epsd_mm.pruning.api.compute_masks`: every rank scores its share and
        #: the criterion sums over ranks (only where :attr:`supports_distributed`)
        self.distributed = False

    @property
    def batches_needed(self):
        return self.num_batches * self.batches_per_step if self.needs_data else 0

    @property
    def supports_distributed(self):
        """Whether the criterion can score on every rank under DDP (see ``distributed``)."""
        return False

    def score(self, model, params, batches, sparsity, scope):
        raise NotImplementedError


@CRITERIA.register_module(name='random')
class RandomCriterion(BaseCriterion):
    """Uniform random scores: global selection then prunes uniformly at random.

    Args:
        seed (int, optional): seed of a private generator; None draws from torch's global
            generator (seeded by the Runner's ``randomness``). Defaults to None.
    """
    name = 'random'
    needs_data = False

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def score(self, model, params, batches, sparsity, scope):
        gen = None
        if self.seed is not None:
            gen = torch.Generator().manual_seed(int(self.seed))
        return {n: torch.rand(p.shape, generator=gen) for n, p in params.items()}


@CRITERIA.register_module(name='magnitude')
class MagnitudeCriterion(BaseCriterion):
    """|w| at initialization."""
    name = 'magnitude'
    needs_data = False

    def score(self, model, params, batches, sparsity, scope):
        return {n: p.detach().abs() for n, p in params.items()}


@CRITERIA.register_module(name='snip')
class SNIP(BaseCriterion):
    """SNIP (Lee et al., ICLR 2019): |dL/dm| = |g * w| of the task loss at initialization,
    gradients summed over ``num_batches`` mini-batches (normalization is omitted: it does not
    change a ranking)."""
    name = 'snip'

    def score(self, model, params, batches, sparsity, scope):
        weights = list(params.values())
        grads = [torch.zeros_like(w) for w in weights]
        for step in range(self.batches_needed):
            inputs, data_samples = next(batches)
            loss = _check_finite(model_loss(model, inputs, data_samples),
                                 f'snip loss on batch {step + 1}')
            for acc, g in zip(grads, torch.autograd.grad(loss, weights, allow_unused=True)):
                if g is not None:
                    acc += g
        return {n: (g * w.detach()).abs() for (n, w), g in zip(params.items(), grads)}


@CRITERIA.register_module(name='grasp')
class GraSP(BaseCriterion):
    """GraSP (Wang et al., ICLR 2020): S = -w * Hg with the task CE on logits / ``temperature``.

    GraSP removes the entries with the *highest* S, so the keep-score is ``-S = w * Hg``. The
    gradient g and the Hessian-gradient product both use the same ``num_batches`` batches
    (the original draws 10 samples per class; here batches come from the training loader).

    Args:
        temperature (float): logit temperature. Defaults to 200 (the paper's value).
    """
    name = 'grasp'

    def __init__(self, temperature=200.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def _loss(self, model, batch):
        logits, labels = logits_and_labels(model, *batch)
        return F.cross_entropy(logits / self.temperature, labels)

    def score(self, model, params, batches, sparsity, scope):
        weights = list(params.values())
        data = [next(batches) for _ in range(self.batches_needed)]
        g = [torch.zeros_like(w) for w in weights]
        for batch in data:
            grads = torch.autograd.grad(self._loss(model, batch), weights, allow_unused=True)
            for acc, gi in zip(g, grads):
                if gi is not None:
                    acc += gi
        hg = [torch.zeros_like(w) for w in weights]
        for step, batch in enumerate(data):
            grads = torch.autograd.grad(self._loss(model, batch), weights, create_graph=True,
                                        allow_unused=True)
            z = sum((gi * gd).sum() for gi, gd in zip(grads, g) if gi is not None)
            _check_finite(z.detach(), f'grasp gradient product on batch {step + 1}')
            for acc, h in zip(hg, torch.autograd.grad(z, weights, allow_unused=True)):
                if h is not None:
                    acc += h
        return {n: w.detach() * h for (n, w), h in zip(params.items(), hg)}


@CRITERIA.register_module(name='synflow')
class SynFlow(BaseCriterion):
    """SynFlow (Tanaka et al., NeurIPS 2020): data-free, iterative.

    Weights become |w| (in float64, which deep networks need to avoid overflow), BatchNorm runs
    in eval mode, and the score of R = sum(f(1)) on an all-ones input is |w * dR/dw|. Over
    ``rounds`` rounds the density follows the exponential schedule
    ``(1 - sparsity) ** (k / rounds)``, masking between rounds.

    Args:
        rounds (int): pruning rounds. Defaults to 100 (the paper's value).
        input_shape (tuple, optional): (C, H, W) of the all-ones input; taken from one training
            batch when None. Defaults to None.
    """
    name = 'synflow'

    def __init__(self, rounds=100, input_shape=None, **kwargs):
        super().__init__(**kwargs)
        if int(rounds) < 1:
            raise UserError(f'synflow rounds must be >= 1, got {rounds}')
        self.rounds = int(rounds)
        self.input_shape = tuple(input_shape) if input_shape else None

    @property
    def batches_needed(self):
        return 0 if self.input_shape else 1

    def score(self, model, params, batches, sparsity, scope):
        shape = self.input_shape
        if shape is None:
            inputs, _ = next(batches)
            first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
            shape = tuple(first.shape[-3:])
        model.double().eval()
        with torch.no_grad():
            for p in model.parameters():
                p.abs_()
        device = next(model.parameters()).device
        ones = torch.ones((1, ) + shape, dtype=torch.float64, device=device)
        init = {n: p.detach().clone() for n, p in params.items()}
        masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}
        scores = None
        for k in range(1, self.rounds + 1):
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(init[n] * masks[n])
            out = model(ones, mode='tensor')
            r = out.sum() if torch.is_tensor(out) else sum(o.sum() for o in out)
            _check_finite(r.detach(), f'synflow R in round {k}')
            grads = torch.autograd.grad(r, list(params.values()))
            scores = {n: (g * p.detach()).abs().float()
                      for (n, p), g in zip(params.items(), grads)}
            density = (1.0 - sparsity) ** (k / self.rounds)
            if k < self.rounds:
                masks, _ = select_masks(scores, 1.0 - density, scope, min_kept_per_layer=1)
        return scores


#: schedules of the SD term's weight over the inner steps (:func:`sd_step_weights`)
SD_SCHEDULES = ('constant', 'linear')


def sd_step_weights(inner_steps, schedule='constant'):
    """The weight of the SD term (``loss_sd_*``) at each inner step; the scoring step has 1.

    ``'constant'``: 1 at every step (the model's own SD loss, unchanged). ``'linear'``: the SD
    term is phased in, ``(t - 1) / M`` at inner step ``t`` of ``M``: the first step is CE only
    and the weight grows towards the scoring step's 1, so the self-teacher speaks once the
    trajectory has made it informative.

    Returns:
        list[float]: ``M`` weights.
    """
    if schedule not in SD_SCHEDULES:
        raise UserError(f'unknown sd_schedule {schedule!r}; valid: '
                        f'{", ".join(map(repr, SD_SCHEDULES))}')
    if schedule == 'constant':
        return [1.0] * inner_steps
    return [t / inner_steps for t in range(inner_steps)]


def loss_terms(model, inputs, data_samples, sd=False, params=None):
    """The model's training loss on a batch split into its task and SD terms.

    Returns:
        dict: ``ce`` (every ``loss*`` key but ``loss_sd_*``: the task CE, DLB's CE on the
        previous batch included) and ``sd`` (the ``loss_sd_*`` keys; 0 without SD).
    """
    with _sd_switch(model, sd):
        if params is None:
            losses = model(inputs, data_samples, mode='loss')
        else:
            losses = functional_call(model, params, (inputs, data_samples), {'mode': 'loss'})
    sd_keys = {k: v for k, v in losses.items() if k.startswith('loss_sd')}
    ce_keys = {k: v for k, v in losses.items() if k not in sd_keys}
    return dict(ce=sum_losses(ce_keys), sd=sum_losses(sd_keys))


#: layer budgets taken from another criterion's allocation in the same network (ProsPr's
#: ``layer_budget``), beside the shape-only :data:`~.selection.BUDGETS`
MODEL_BUDGETS = ('synflow', )


@CRITERIA.register_module(name='prospr')
class ProsPr(BaseCriterion):
    """ProsPr (Alizadeh et al., ICLR 2022): the meta-gradient of the loss after a few training
    steps with respect to a mask.

    Masks ``m = 1`` multiply the prunable weights, ``theta_0 = theta_init * m``; ``inner_steps``
    SGD steps (``theta_{k+1} = theta_k - inner_lr * dL/dtheta_k``, on every trainable parameter,
    BatchNorm's affine ones included) follow; the score is ``|dL(theta_M)/dm|`` on the scoring
    batch. With ``inner_steps=0`` this is SNIP on one batch. The meta-gradient is computed by
    :func:`epsd_mm.pruning.metagrad.meta_gradients` (its docstring has the math, the memory
    bound, micro-batches, the SD state and the ranks).

    Each step reads ``batches_per_step`` loader batches (``score_data.num_batches_per_step``
    of the hook), its loss the mean over all of them.

    The defaults follow the ProsPr paper and its library function ``prune()``: a fresh batch for
    every step and plain SGD. The reference command line instead reuses one batch for every
    step (``--new-data-in-inner`` is off there) and its example uses momentum 0.9 at lr 0.5;
    ``new_data_in_inner=False, inner_momentum=0.9, inner_lr=0.5, meta_mode='unrolled'``
    reproduces that (the reference detaches the first momentum buffer; here it stays in the
    graph of the full meta-gradient). Fresh batches stay the default because a scored trajectory
    over several batches is the one training follows, and DLB's teacher (the previous batch) is
    a different batch only then.

    Args:
        inner_steps (int): M, the number of inner SGD steps. Defaults to 3.
        inner_lr (float): their learning rate. Defaults to 0.1.
        first_order (bool): drop second-order terms (the inner gradients are treated as
            constants), much cheaper in memory. Defaults to False (full meta-gradient).
        meta_mode (str): ``'bounded'``: keep only the parameter trajectory and recompute each
            step's graph backwards (peak memory about one training iteration's, whatever M);
            ``'unrolled'``: the reference, autograd through all steps at once (memory grows with
            M). The same scores up to float rounding. Only ``'bounded'`` scores on every rank
            under DDP. Defaults to ``'bounded'``.
        micro_batch (int, optional): cut every batch into micro-batches of at most this many
            samples, gradients accumulated (BatchNorm in train mode then normalizes per
            micro-batch, as DDP without SyncBN does). None keeps batches whole.
            Defaults to None.
        new_data_in_inner (bool): a fresh training batch for every inner step and the scoring
            step; False reuses one batch for all of them (the reference CLI's default).
            Defaults to True.
        inner_momentum (float): heavy-ball momentum of the inner SGD, in [0, 1) (PyTorch's
            convention: the buffer starts at the first gradient). Needs
            ``meta_mode='unrolled'``. Defaults to 0 (plain SGD).
        rounds (int): iterative scoring: prune in ``rounds`` rounds, the density following
            SynFlow's exponential schedule ``(1 - sparsity) ** (r / rounds)``; each round
            rescores the surviving network ``theta_init * mask`` (same batches, fresh SD state)
            and pruned weights never come back. Costs ``rounds`` times one scoring.
            Defaults to 1 (one-shot).
        layer_budget (str, optional): allot the kept weights per layer (``'erk'`` or
            ``'fanin'``, see :func:`~epsd_mm.pruning.selection.select_masks`, or
            ``'synflow'``: as many per layer as SynFlow (its defaults, 100 rounds, data-free)
            keeps at the same sparsity in the same initial network) and rank by score
            inside each layer; the returned scores encode that choice
            (:func:`~epsd_mm.pruning.selection.masks_as_scores`), so the caller's global
            selection reproduces it. Needs ``scope='global'``. Defaults to None (global top-k).
        budget_share (float): ``'fanin'``'s share of the budget spent on floors.
            Defaults to 0.5.
    """
    name = 'prospr'
    #: whether the inner and outer losses are the model's self-distillation loss
    use_sd = False

    def __init__(self, inner_steps=3, inner_lr=0.1, first_order=False, meta_mode='bounded',
                 micro_batch=None, new_data_in_inner=True, inner_momentum=0.0, rounds=1,
                 layer_budget=None, budget_share=0.5, **kwargs):
        kwargs.setdefault('num_batches', 1)
        super().__init__(**kwargs)
        if int(inner_steps) < 0:
            raise UserError(f'inner_steps must be >= 0, got {inner_steps}')
        if meta_mode not in MODES:
            raise UserError(f"meta_mode must be 'unrolled' or 'bounded', got {meta_mode!r}")
        if micro_batch is not None and int(micro_batch) < 1:
            raise UserError(f'micro_batch must be a positive number of samples or None, got '
                            f'{micro_batch!r}')
        if not 0.0 <= float(inner_momentum) < 1.0:
            raise UserError(f'inner_momentum must lie in [0, 1), got {inner_momentum}')
        if float(inner_momentum) and meta_mode != 'unrolled':
            raise UserError(f"inner_momentum={inner_momentum} needs meta_mode='unrolled' (the "
                            'memory-bounded meta-gradient differentiates plain SGD steps)')
        if int(rounds) < 1:
            raise UserError(f'rounds must be >= 1, got {rounds}')
        if layer_budget is not None and layer_budget not in BUDGETS + MODEL_BUDGETS:
            raise UserError(f'unknown layer_budget {layer_budget!r}; valid: None, '
                            f'{", ".join(map(repr, BUDGETS + MODEL_BUDGETS))}')
        self.inner_steps = int(inner_steps)
        self.inner_lr = float(inner_lr)
        self.first_order = bool(first_order)
        self.meta_mode = meta_mode
        self.micro_batch = None if micro_batch is None else int(micro_batch)
        self.new_data_in_inner = bool(new_data_in_inner)
        self.inner_momentum = float(inner_momentum)
        self.rounds = int(rounds)
        self.layer_budget = layer_budget
        self.budget_share = float(budget_share)

    @property
    def batches_needed(self):
        steps = self.inner_steps + 1 if self.new_data_in_inner else 1
        return steps * self.batches_per_step

    @property
    def supports_distributed(self):
        return self.meta_mode == 'bounded'

    # -- the pieces a variant changes
    def step_weights(self):
        """The SD term's weight at each inner step (1: the model's own loss)."""
        return [1.0] * self.inner_steps

    def inner_loss(self, model, step, params, inputs, data_samples):
        """The loss of inner step ``step`` (0-based) on a batch at ``params``."""
        weight = self.step_weights()[step]
        if weight == 1.0:
            return model_loss(model, inputs, data_samples, sd=self.use_sd, params=params)
        terms = loss_terms(model, inputs, data_samples, sd=self.use_sd, params=params)
        return terms['ce'] + weight * terms['sd']

    def outer_loss(self, model, params, inputs, data_samples):
        """The scoring loss(es) at theta_M: a scalar or a dict of scalars, one meta-gradient
        each."""
        return model_loss(model, inputs, data_samples, sd=self.use_sd, params=params)

    def combine(self, meta_grads):
        """Scores from the meta-gradient(s) of :meth:`outer_loss`: ``|dL/dm|``."""
        (grads, ) = meta_grads.values()
        return {n: g.abs() for n, g in grads.items()}

    def check_model(self, model):
        """Fail early, with advice, on a model the criterion cannot score."""
        _sd_switch(model, self.use_sd)

    # -- scoring
    def _score_once(self, model, params, steps, keep=None):
        sd = getattr(model, 'sd', None)
        with _scoring_episode(model):
            if self.use_sd:
                with torch.no_grad():
                    for chunk in itertools.chain(*steps):
                        model.sd.prime(model, *chunk)
            grads = meta_gradients(
                model, params, steps[:-1], steps[-1],
                inner_loss=functools.partial(self.inner_loss, model),
                outer_loss=functools.partial(self.outer_loss, model),
                inner_lr=self.inner_lr, first_order=self.first_order, mode=self.meta_mode,
                micro_batch=self.micro_batch, momentum=self.inner_momentum,
                split=getattr(sd, 'split_batch', None),
                state=None if sd is None else (sd._get_state, sd._set_state),
                all_reduce=_sum_over_ranks if self.distributed else None, name=self.name)
        scores = self.combine(grads)
        if keep is not None:  # pruned weights never come back
            scores = {n: torch.where(keep[n], s, torch.full_like(s, -1.0))
                      for n, s in scores.items()}
        return scores

    def _select(self, scores, sparsity, allot=None):
        if allot is not None:  # another criterion's per-layer counts (MODEL_BUDGETS)
            layers = dict(counts=allot(sparsity))
        else:
            layers = dict(budget=self.layer_budget, budget_share=self.budget_share)
        masks, _ = select_masks(scores, sparsity, 'global', min_kept_per_layer=1, **layers)
        return masks

    def _synflow_allotment(self, model, params, steps):
        """``sparsity -> per-tensor counts`` of SynFlow in the initial network (a copy per
        sparsity, since SynFlow rewrites the weights to ``|w|`` in float64)."""
        initial = copy.deepcopy(model)  # before any round masks the weights
        cache = {}

        def allot(sparsity):
            if sparsity not in cache:
                clone = copy.deepcopy(initial)
                named = dict(clone.named_parameters())
                # SynFlow reads its input shape from the first scoring batch
                scores = SynFlow().score(clone, {n: named[n] for n in params}, iter(steps[0]),
                                         sparsity, 'global')
                masks, _ = select_masks(scores, sparsity, 'global', min_kept_per_layer=1)
                cache[sparsity] = [int(masks[n].sum()) for n in params]
            return cache[sparsity]
        return allot

    def score(self, model, params, batches, sparsity, scope):
        self.check_model(model)
        if self.layer_budget is not None and scope != 'global':
            raise UserError(f'{self.name}: layer_budget={self.layer_budget!r} allots a global '
                            f"budget across layers; it needs scope='global', got {scope!r}")
        per = self.batches_per_step
        steps = [[next(batches) for _ in range(per)]
                 for _ in range(self.batches_needed // per)]
        if not self.new_data_in_inner:
            steps = steps * (self.inner_steps + 1)
        allot = self._synflow_allotment(model, params, steps) \
            if self.layer_budget in MODEL_BUDGETS else None
        keep = None
        init = {n: p.detach().clone() for n, p in params.items()} if self.rounds > 1 else None
        for r in range(1, self.rounds + 1):
            if keep is not None:
                with torch.no_grad():
                    for n, p in params.items():
                        p.copy_(init[n] * keep[n])
            scores = self._score_once(model, params, steps, keep)
            if r < self.rounds:
                keep = self._select(scores, 1.0 - (1.0 - sparsity) ** (r / self.rounds), allot)
        if self.layer_budget is None:
            return scores
        return masks_as_scores(self._select(scores, sparsity, allot), scores)


def _sum_over_ranks(tensor):
    from mmengine import dist
    dist.all_reduce(tensor, op='sum')


@CRITERIA.register_module(name='epsd')
class EPSD(ProsPr):
    """EPSD (Chen et al., AAAI 2024): ProsPr's meta-gradient with the self-distillation loss.

    Every inner step and the scoring step minimize the model's own SD training loss (CE plus
    the SD term of the configured CS-KD, PS-KD or DLB, with that method's teacher signal), so
    the mask keeps the weights that matter to *distillation*, not to CE alone. The model must be
    an ``SDImageClassifier``; its SD method supplies the loss (DESIGN principle 2).

    Choices the paper leaves open, made here (all configurable):

    - inner steps ``inner_steps=3`` with plain SGD ``inner_lr=0.1``, the full meta-gradient
      (``first_order=False``), one fresh training mini-batch per step: ProsPr's defaults.
    - the inner steps minimize the SD loss too (not CE), so the scored trajectory is the one
      training will follow.
    - the teacher signal at initialization: CS-KD's pair is in every batch; DLB's previous batch
      is the previous inner step's batch (the first step has none: CE only); PS-KD's "previous
      epoch" predictions are those of theta_init on the scoring batches (``sd.prime``), with
      ``alpha = loss_weight * score_alpha`` (PS-KD's ``score_alpha``, ``alpha_T`` by default),
      which must be below 1: at 1 the target is the network's own prediction, whose gradient
      is 0 at theta_init, and every score is noise.
    - SD state used for scoring is scratch: the run's PS-KD memory and DLB carry are untouched.
    - global top-k over all prunable weights (``scope``), no layer may be emptied
      (``min_kept_per_layer``), BatchNorm in train mode while scoring (``score_mode``).

    With the SD method's ``loss_weight`` at 0 the scores equal :class:`ProsPr`'s exactly.

    Options that make the SD term count (defaults: off, the faithful reconstruction above),
    besides ProsPr's ``rounds`` and ``layer_budget``:

    Args:
        sd_balance (float, optional): term-balanced scores. None (default): ``|dL/dm|`` of the
            total loss ``L = CE + SD``. A weight ``b`` in [0, 1]: the meta-gradients of the CE
            term and of the SD term of the scoring loss are taken separately, and the score is
            ``(1 - b) * |g_CE| / sum|g_CE| + b * |g_SD| / sum|g_SD|`` (sums over all prunable
            weights), so the SD term's ranking is heard whatever its scale. Costs one more
            backward pass through the graph.
        sd_schedule (str): the SD term's weight over the inner steps (:func:`sd_step_weights`):
            ``'constant'`` (default, the SD loss unchanged) or ``'linear'`` (phased in from 0
            at the first step to 1 at the scoring step).
        **kwargs: :class:`ProsPr`'s arguments (``inner_steps``, ``inner_lr``, ``first_order``,
            ``new_data_in_inner``, ``inner_momentum``, ``rounds``, ``layer_budget``,
            ``budget_share``).
    """
    name = 'epsd'
    use_sd = True

    def __init__(self, sd_balance=None, sd_schedule='constant', **kwargs):
        super().__init__(**kwargs)
        if sd_balance is not None and not 0.0 <= float(sd_balance) <= 1.0:
            raise UserError(f'sd_balance must be None or lie in [0, 1], got {sd_balance}')
        sd_step_weights(0, sd_schedule)  # validates the name
        self.sd_balance = None if sd_balance is None else float(sd_balance)
        self.sd_schedule = sd_schedule

    def check_model(self, model):
        super().check_model(model)
        sd = model.sd
        alpha = getattr(sd, 'score_alpha', None)
        if alpha is not None and sd.loss_weight * alpha >= 1.0:
            raise UserError(
                f'{self.name}: PS-KD scores with alpha = loss_weight * score_alpha = '
                f'{sd.loss_weight} * {alpha} = 1, so the target is the network\'s own prediction '
                'at initialization and every score is ~0 (noise); set sd.score_alpha below '
                f'1 / loss_weight (e.g. score_alpha=0.8)')

    def step_weights(self):
        return sd_step_weights(self.inner_steps, self.sd_schedule)

    def outer_loss(self, model, params, inputs, data_samples):
        if self.sd_balance is None:
            return super().outer_loss(model, params, inputs, data_samples)
        terms = loss_terms(model, inputs, data_samples, sd=True, params=params)
        if not (torch.is_tensor(terms['sd']) and terms['sd'].requires_grad):
            raise UserError(
                f'{self.name}: sd_balance needs an SD term at the scoring step, but it is a '
                'constant there (DLB has no previous batch with inner_steps=0; a loss_weight '
                'of 0?): use inner_steps >= 1 or sd_balance=None')
        return dict(ce=terms['ce'], sd=terms['sd'])

    def combine(self, meta_grads):
        if self.sd_balance is None:
            return super().combine(meta_grads)
        parts = {}
        for key in ('ce', 'sd'):
            g = [x.abs() for x in meta_grads[key].values()]
            total = sum(float(x.sum()) for x in g)
            if total == 0:
                raise UserError(f'{self.name}: the meta-gradient of the {key.upper()} term is 0 '
                                'for every weight, so it cannot be normalized; use '
                                'sd_balance=None')
            parts[key] = [x / total for x in g]
        b = self.sd_balance
        names = list(meta_grads['ce'])
        return {n: (1 - b) * c + b * s for n, c, s in zip(names, parts['ce'], parts['sd'])}


@CRITERIA.register_module(name='epsd_plus')
class EPSDPlus(EPSD):
    """EPSD with the options chosen on the Fashion-MNIST validation split (README, "EPSD
    options on Fashion-MNIST"): the faithful EPSD meta-gradient, ranked inside each layer under
    an ERK layer budget, in 5 rounds of iterative scoring.

    Settings: ``layer_budget='erk'``, ``rounds=5`` and otherwise :class:`EPSD`'s defaults
    (``inner_steps=3``, ``inner_lr=0.1``, full meta-gradient, fresh batches, plain SGD,
    ``sd_balance=None``, ``sd_schedule='constant'``). Scoring costs 5 times one EPSD scoring.
    Every argument of :class:`EPSD` can still be set; only the defaults of ``layer_budget``
    and ``rounds`` differ.

    Measured (README, 2026-12-01, 3 seeds): it removes the layer collapse of global meta-gradient
    scores at 0.99-0.995, but the allocation does the work (``prospr`` under ERK does as well,
    and ERK without the rounds is level over 3 seeds), and it stays below SynFlow at 0.99 and
    0.995 with DLB.
    """
    name = 'epsd_plus'

    def __init__(self, layer_budget='erk', rounds=5, **kwargs):
        super().__init__(layer_budget=layer_budget, rounds=rounds, **kwargs)
