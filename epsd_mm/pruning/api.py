"""Compute masks for a model: the one entry point shared by ``PruningHook`` and
``tools/prune.py``."""
import contextlib
import copy
import time

from mmengine.logging import MMLogger, print_log

from ..registry import CRITERIA, build_checked
from ..utils.errors import UserError, check_sparsity
from .masks import MaskSet
from .selection import check_min_kept, check_reachable, prunable_parameters, select_masks


@contextlib.contextmanager
def preserved_state(model, mode='train'):
    """Run scoring on ``model`` and leave it exactly as found: weights, buffers (BatchNorm
    statistics), dtype, train/eval flags, ``requires_grad`` and ``.grad``.

    Args:
        mode (str): ``'train'`` (BatchNorm uses batch statistics, as in training) or ``'eval'``
            (running statistics) while scoring.
    """
    if mode not in ('train', 'eval'):
        raise UserError(f"score_mode must be 'train' or 'eval', got {mode!r}")
    snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    flags = {m: m.training for m in model.modules()}
    requires = {p: p.requires_grad for p in model.parameters()}
    grads = {p: p.grad for p in model.parameters()}
    model.train(mode == 'train')
    try:
        yield model
    finally:
        dtype = next(iter(dtypes.values()))
        model.to(dtype)
        model.load_state_dict(snapshot)
        for m, flag in flags.items():
            m.training = flag
        for p, req in requires.items():
            p.requires_grad_(req)
            p.grad = grads[p]

def iterate_batches(model, data_loader):
    """Endless iterator of preprocessed ``(inputs, data_samples)`` from ``data_loader``."""
    while True:
        empty = True
        for data in data_loader:
            empty = False
            data = model.data_preprocessor(data, training=True)
            yield data['inputs'], data['data_samples']
        if empty:
            raise UserError('the training data loader yields no batch; check the dataset')


class _Counting:
    """Wrap a batch iterator with an mmengine progress bar, drawn from the first batch on (so
    that log lines written before scoring starts are not glued to it)."""

    def __init__(self, it, total, show):
        self.it, self.bar = it, None
        self.sizes = []  # samples of every batch read
        self.total = total if show else 0

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self.it)
        self.sizes.append(len(item[1]) if item[1] is not None else len(item[0]))
        if self.bar is None and self.total > 0:
            import sys

            from mmengine.utils import ProgressBar

            # the stdout of now: ProgressBar's default is the one of mmengine's import time
            self.bar = ProgressBar(self.total, file=sys.stdout)
        if self.bar is not None:
            self.bar.update()
        return item

    def close(self):
        """End the bar's line: mmengine's ProgressBar leaves the cursor after its last
        update, and the next log line would be glued to it."""
        if self.bar is not None:
            self.bar.file.write('\n')
            self.bar.file.flush()
        self.bar, self.total = None, 0


#: the keys of a ``score_data`` config (PruningHook, tools/prune.py)
SCORE_DATA_KEYS = ('batch_size', 'num_batches_per_step', 'dataloader')


def check_score_data(score_data):
    """Validate a ``score_data`` config; return it as a dict with every key (None = default).

    ``batch_size``: samples per scoring batch (per rank); ``num_batches_per_step``: loader
    batches per inner step (or per SNIP/GraSP batch), gradients accumulated over them;
    ``dataloader``: a dataloader config used instead of ``train_dataloader``.
    """
    score_data = dict(score_data or {})
    unknown = sorted(set(score_data) - set(SCORE_DATA_KEYS))
    if unknown:
        raise UserError(f'unknown score_data keys {unknown}; valid: {", ".join(SCORE_DATA_KEYS)}')
    for key in ('batch_size', 'num_batches_per_step'):
        value = score_data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise UserError(f'score_data.{key} must be a positive integer, got {value!r}')
    loader = score_data.get('dataloader')
    if loader is not None and not (isinstance(loader, dict) and 'dataset' in loader):
        raise UserError('score_data.dataloader must be a dataloader config with a dataset, like '
                        'train_dataloader')
    return {k: score_data.get(k) for k in SCORE_DATA_KEYS}


def score_loader_cfg(score_data, train_loader_cfg):
    """The dataloader config scoring reads, or None when it is the training loader itself.

    Args:
        score_data (dict): a :func:`check_score_data` config.
        train_loader_cfg (dict): the config's ``train_dataloader``.
    """
    score_data = check_score_data(score_data)
    if score_data['dataloader'] is None and score_data['batch_size'] is None:
        return None
    if score_data['dataloader'] is None and not train_loader_cfg:
        raise UserError('score_data.batch_size rebuilds the train_dataloader with another batch '
                        'size, but the config has no train_dataloader; give '
                        'score_data.dataloader')
    cfg = copy.deepcopy(dict(score_data['dataloader'] or train_loader_cfg))
    if score_data['batch_size'] is not None:
        cfg['batch_size'] = score_data['batch_size']
    return cfg


def compute_masks(model, data_loader, criterion, sparsity, scope='global', prunable=None,
                  min_kept_per_layer=0, score_mode='train', show_progress=True, logger=None,
                  batches_per_step=None, distributed=False):
    """Score the prunable weights of ``model`` at initialization and select masks.

    Args:
        model (nn.Module): the (unwrapped) model, at its initial weights.
        data_loader (Iterable, optional): training data; criteria that need none ignore it.
        criterion (str | dict): a registered criterion name or config, e.g. ``'snip'`` or
            ``dict(type='epsd', inner_steps=3)``.
        sparsity (float): fraction of prunable weights to remove, in (0, 1).
        scope (str): ``'global'`` or ``'layer'``. Defaults to ``'global'``.
        prunable (dict, optional): kwargs of :func:`prunable_parameters` (``types``,
            ``include``, ``exclude``). Defaults to None (every Conv2d/Linear weight).
        min_kept_per_layer (int): see :func:`select_masks`. Defaults to 0 (collapse = error).
        score_mode (str): ``'train'`` or ``'eval'`` mode while scoring. Defaults to ``'train'``.
        show_progress (bool): show a progress bar over the batches read. Defaults to True.
        logger: mmengine logger; the current one when None.
        batches_per_step (int, optional): loader batches per inner step (per batch for SNIP
            and GraSP); the criterion's own setting when None. Defaults to None.
        distributed (bool): every rank calls this with its own share of the data and the
            criterion sums over ranks (masks identical by construction); only criteria that
            ``supports_distributed`` (``prospr``/``epsd`` with ``meta_mode='bounded'``).
            Defaults to False (one process scores).

    Returns:
        MaskSet: the masks. ``model`` itself is left exactly as it was.
    """
    sparsity = check_sparsity(sparsity)
    logger = logger or MMLogger.get_current_instance()
    crit = build_checked(CRITERIA, criterion, 'pruning criterion')
    params = prunable_parameters(model, **(prunable or {}))
    # a floor that makes the target unreachable is answered before any scoring work
    min_kept_per_layer = check_min_kept(min_kept_per_layer)
    check_reachable([p.numel() for p in params.values()], sparsity, min_kept_per_layer, scope)
    if batches_per_step is not None:
        crit.batches_per_step = int(batches_per_step)
    if distributed and not crit.supports_distributed:
        raise UserError(f'criterion {crit.name!r} cannot score on every rank; use prospr or '
                        "epsd with meta_mode='bounded'")
    crit.distributed = bool(distributed)
    need = crit.batches_needed
    if need and data_loader is None:
        raise UserError(f'criterion {crit.name!r} needs training data, but no data loader '
                        'was given')
    batches = _Counting(iterate_batches(model, data_loader) if need else iter(()), need,
                        show_progress)
    print_log(f'pruning: scoring {sum(p.numel() for p in params.values())} weights in '
              f'{len(params)} tensors with {crit.name!r} ({need} batches'
              f'{", on every rank" if distributed else ""}), target sparsity {sparsity}, '
              f'scope {scope}', logger=logger)
    start = time.perf_counter()
    try:
        with preserved_state(model, score_mode):
            try:
                scores = crit.score(model, params, batches, sparsity, scope)
            except ValueError as e:
                if 'Expected more than 1 value per channel' not in str(e):
                    raise
                raise UserError(
                    f'pruning: a scoring batch holds a single sample, and BatchNorm in train '
                    f'mode needs at least 2 ({e}); use a training set of 2 or more images and a '
                    "batch size of at least 2, or score_mode='eval'") from None
    finally:
        batches.close()
    masks, info = select_masks(scores, sparsity, scope, min_kept_per_layer)
    result = MaskSet(masks, method=crit.name, target_sparsity=sparsity,
                     extra=dict(scope=scope, rescued=info['rescued'],
                                distributed=bool(distributed), batch_sizes=batches.sizes,
                                seconds=time.perf_counter() - start))
    if info['rescued']:
        print_log(f'pruning: kept {min_kept_per_layer} weights in layers the target would have '
                  f'emptied: {", ".join(info["rescued"])}', logger=logger, level=30)
    print_log(f'pruning: {result} in {result.extra["seconds"]:.2f}s', logger=logger)
    return result

def criterion_names():
    CRITERIA.import_from_location()
    return sorted(CRITERIA.module_dict)

__all__ = ['compute_masks', 'preserved_state', 'iterate_batches', 'criterion_names',
           'check_score_data', 'score_loader_cfg', 'SCORE_DATA_KEYS']
