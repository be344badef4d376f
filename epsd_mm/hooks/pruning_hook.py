"""The Runner glue of pruning at initialization: create or restore masks, keep them, save them."""
import os.path as osp

from mmengine.dist import get_rank, get_world_size, master_only
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.registry import HOOKS

from ..pruning.api import check_score_data, compute_masks, score_loader_cfg
from ..pruning.masks import CHECKPOINT_KEY, MaskSet
from ..pruning.report import format_table, write_reports
from ..pruning.selection import check_min_kept, prunable_parameters
from ..registry import CRITERIA, build_checked
from ..utils.errors import UserError, check_sparsity


@HOOKS.register_module()
class PruningHook(Hook):
    """Prune at initialization and keep the network sparse for the whole run.

    In ``before_train`` (after the Runner has initialized weights and loaded or resumed a
    checkpoint) the masks are, in this order of precedence: restored from the resumed
    checkpoint's ``pruning`` entry (never recomputed); loaded from ``mask_file``; or computed with
    ``criterion`` at ``sparsity`` on the training data (on rank 0, then broadcast). They are then
    checked to be identical on every rank, applied, logged as a per-layer table and written as
    ``masks.pth``, ``sparsity.json`` and ``sparsity.png`` into ``out_dir``. During training,
    hooks on the optimizer zero the gradients of pruned entries before every step and re-mask
    the weights after it (:meth:`MaskSet.enforce`), so they stay exactly zero through SGD
    momentum, weight decay and Adam. Every checkpoint carries the masks under the top-level key
    ``pruning``; its ``state_dict`` keeps the model's own key names.

    Args:
        criterion (str | dict): pruning criterion, a name (``'epsd'``, ``'snip'``, ...) or a
            config such as ``dict(type='epsd', inner_steps=3, inner_lr=0.1)``.
            Defaults to ``'epsd'``.
        sparsity (float, optional): fraction of prunable weights to remove, in (0, 1). Required
            unless ``mask_file`` is given. Defaults to None.
        scope (str): ``'global'`` (one threshold) or ``'layer'`` (same sparsity per tensor).
            Defaults to ``'global'``.
        prunable (dict, optional): which weights are prunable: ``types`` (default
            ``('Conv2d', 'Linear')``), ``include`` / ``exclude`` (regexes on parameter names).
            Defaults to None.
        min_kept_per_layer (int): 0 raises an error when a layer would be emptied; k > 0 keeps
            k weights in such layers instead (reported). Defaults to 0.
        score_mode (str): ``'train'`` or ``'eval'`` mode of the model while scoring (BatchNorm
            batch vs running statistics). The model is restored exactly afterwards.
            Defaults to ``'train'``.
        mask_file (str, optional): a ``masks.pth`` from ``tools/prune.py`` or any checkpoint
            with a ``pruning`` entry; used instead of scoring. Defaults to None.
        strict (bool): with ``mask_file``, every mask must name a parameter of this model.
            ``False`` is the transfer ("keep-masks") mode: masks of parameters the model lacks
            (e.g. a classifier's ``head.fc.weight`` in a detector) are ignored and reported; a
            mask whose parameter exists with another shape is still an error.
            Defaults to True.
        out_dir (str, optional): where reports go; the Runner's ``work_dir`` when None.
            Defaults to None.
        show_progress (bool): progress bar while scoring. Defaults to True.
        score_data (dict, optional): the scoring data, independent of training's:
            ``batch_size`` (samples per scoring batch and rank, e.g. 256 while training takes
            32 per GPU), ``num_batches_per_step`` (loader batches per inner step, gradients
            accumulated), ``dataloader`` (a dataloader config used instead of
            ``train_dataloader``; ``batch_size`` still overrides its own). Defaults to None:
            the training dataloader itself, one batch per step.

    Under DDP, criteria that can (``prospr``/``epsd`` with ``meta_mode='bounded'``) score on
    every rank: each rank reads its share of every scoring batch (its sampler's shard) and the
    gradients are summed over ranks, so the masks are identical by construction (still
    verified). Other criteria score on rank 0 and broadcast.
    """

    priority = 'VERY_HIGH'

    def __init__(self, criterion='epsd', sparsity=None, scope='global', prunable=None,
                 min_kept_per_layer=0, score_mode='train', mask_file=None, strict=True,
                 out_dir=None, show_progress=True, score_data=None):
        if mask_file is None:
            sparsity = check_sparsity(sparsity)
        elif sparsity is not None:
            sparsity = check_sparsity(sparsity)
        if mask_file is None:
            # an unknown criterion or bad option is found now, not after the Runner is built
            build_checked(CRITERIA, criterion, 'pruning criterion')
        if scope not in ('global', 'layer'):
            raise UserError(f"unknown pruning scope {scope!r}; valid: 'global', 'layer'")
        min_kept_per_layer = check_min_kept(min_kept_per_layer)
        self.criterion = criterion
        self.sparsity = sparsity
        self.scope = scope
        self.prunable = prunable
        self.min_kept_per_layer = min_kept_per_layer
        self.score_mode = score_mode
        self.mask_file = mask_file
        self.strict = strict
        self.out_dir = out_dir
        self.show_progress = show_progress
        self.score_data = check_score_data(score_data)
        self.masks = None
        self.source = None

    @staticmethod
    def _model(runner):
        """The network the masks name, below any model wrapper (DDP...) and test-time
        augmentation model (``BaseTTAModel``: mmdet's ``DetTTAModel`` under ``--tta``), which
        hold it as ``module``: the unwrapping mmengine's checkpoint loading does too."""
        model = runner.model
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        return model

    # ------------------------------------------------------------------ creation
    def after_load_checkpoint(self, runner, checkpoint):
        if CHECKPOINT_KEY not in checkpoint:
            return
        # checked in before_train, which knows whether this is a resume or a load_from
        self.masks = MaskSet.from_dict(checkpoint[CHECKPOINT_KEY], source='the checkpoint')
        self.source = 'checkpoint'

    def _load_file(self, model, logger):
        masks = MaskSet.load(self.mask_file)
        if self.strict:
            masks.check_fits(model, f' (mask file {self.mask_file})')
            return masks
        applied, ignored = masks.split_for(model)
        if not len(applied):
            raise UserError(f'none of the {len(masks)} masks in {self.mask_file} names a '
                            f'parameter of this model (e.g. {masks.names()[0]}); was the '
                            'checkpoint made for another architecture?')
        print_log(f'pruning: applying {len(applied)} masks from {self.mask_file}; ignoring '
                  f'{len(ignored)} of modules this model does not have: '
                  f'{", ".join(ignored) if ignored else "none"}', logger=logger)
        return applied

    def _masks_of_loaded(self, runner, model):
        """Decide about masks that came with a loaded checkpoint, or their absence."""
        resumed = runner.iter > 0  # only a resume restores the iteration count
        source = getattr(runner, '_load_from', None) or 'the loaded checkpoint'
        if self.masks is None:
            if resumed and self.mask_file is None:
                raise UserError(
                    f'--resume: {source} holds no pruning masks (it was saved by a run without '
                    'PruningHook); scoring now would prune the trained weights, not the '
                    'initialization. Resume from a checkpoint of the pruned run, or give the '
                    "PruningHook that run's masks.pth as mask_file")
            return
        if not resumed and self.mask_file is not None:
            print_log(f'pruning: ignoring the masks of load_from {source}: mask_file is set',
                      logger=runner.logger)
            self.masks = None
            return
        if resumed or self.strict:
            self.masks.check_fits(model, ' (the checkpoint was saved by another model)')
        if resumed:
            print_log(f'pruning: masks restored from the resumed checkpoint: {self.masks}',
                      logger=runner.logger)
            return
        # load_from, not a resume: the masks obey mask_file's rules (checked above if strict)
        if not self.strict:
            self.masks = self.masks.split_for(model)[0]
        prunable = prunable_parameters(model, **(self.prunable or {}))
        dense = [n for n in prunable if n not in self.masks]
        print_log(f'pruning: masks taken from load_from {source}: {self.masks}; prunable '
                  f'weights without a mask there stay dense: {", ".join(dense) or "none"}',
                  logger=runner.logger)
        self.source = f'load_from {source}'

    def before_train(self, runner):
        model = self._model(runner)
        self._masks_of_loaded(runner, model)
        if self.masks is None and self.mask_file is not None:
            self.masks, self.source = self._load_file(model, runner.logger), self.mask_file
        elif self.masks is None:
            every_rank = get_world_size() > 1 and build_checked(
                CRITERIA, self.criterion, 'pruning criterion').supports_distributed
            masks = None
            if every_rank or get_rank() == 0:
                masks = compute_masks(
                    model, self._score_loader(runner), self.criterion, self.sparsity,
                    scope=self.scope, prunable=self.prunable,
                    min_kept_per_layer=self.min_kept_per_layer, score_mode=self.score_mode,
                    show_progress=self.show_progress, logger=runner.logger,
                    batches_per_step=self.score_data['num_batches_per_step'],
                    distributed=every_rank)
            self.masks = masks if every_rank else (masks or MaskSet({})).broadcast()
            self.source = 'computed'
        self.masks.verify_across_ranks()
        self.masks.apply_(model)
        self.masks.enforce(model, self._optimizers(runner))
        self._report(runner)

    def _score_loader(self, runner):
        """The training dataloader, or the one ``score_data`` asks for."""
        cfg = score_loader_cfg(self.score_data, runner.cfg.get('train_dataloader') or {})
        if cfg is None:
            return runner.train_dataloader
        return runner.build_dataloader(cfg, seed=runner.seed)

    @master_only
    def _report(self, runner):
        out_dir = self.out_dir or runner.work_dir
        print_log(f'pruning: per-layer masks ({self.source})\n{format_table(self.masks)}',
                  logger=runner.logger)
        self.masks.save(osp.join(out_dir, 'masks.pth'))
        cfg_file = runner.cfg.filename
        config = osp.basename(cfg_file) if cfg_file else runner.experiment_name
        how = {'computed': f'scored at init with {self.masks.method}',
               'checkpoint': 'from the resumed checkpoint'}.get(
                   self.source, f'from {osp.basename(str(self.source))}')
        write_reports(self.masks, out_dir,
                      title=f'{type(self._model(runner)).__name__} ({config}), {how}')

    # ------------------------------------------------------------------ enforcement
    @staticmethod
    def _optimizers(runner):
        """The torch optimizers behind the Runner's optimizer wrapper(s)."""
        from mmengine.optim import OptimWrapperDict
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if isinstance(wrapper, OptimWrapperDict) else [wrapper]
        return [w.optimizer for w in wrappers]

    def after_train(self, runner):
        if self.masks is not None:
            self.masks.release()

    def before_save_checkpoint(self, runner, checkpoint):
        if self.masks is not None:
            checkpoint[CHECKPOINT_KEY] = self.masks.to_dict()
