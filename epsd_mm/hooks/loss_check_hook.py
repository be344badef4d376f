"""Stop training at the first non-finite loss, with one line naming the iteration."""
import math

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..utils.errors import UserError


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`~epsd_mm.utils.errors.UserError` when the training loss is NaN or infinite.

    mmengine's Runner trains on through a NaN loss (``loss: nan`` in the log) and keeps saving
    checkpoints of the diverged weights; mmdet's ``CheckInvalidLossHook`` catches it with an
    ``AssertionError`` traceback every ``interval`` iterations. This hook checks the loss of
    every ``interval``-th iteration in ``after_train_iter``, before the checkpoint hook (which
    runs last) can save, and stops with a message naming the iteration, the epoch and the
    loss terms that are not finite. ``tools/train.py`` adds it to every config.

    Args:
        interval (int): Check every ``interval`` iterations. Defaults to 1 (a ``.item()``
            per iteration, negligible next to a training step).
    """

    priority = 'VERY_HIGH'

    def __init__(self, interval=1):
        self.interval = interval

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not outputs or 'loss' not in outputs or not self.every_n_train_iters(
                runner, self.interval):
            return
        if math.isfinite(float(outputs['loss'])):
            return
        terms = ', '.join(f'{k}={float(v):g}' for k, v in outputs.items()
                          if k.startswith('loss') and not math.isfinite(float(v)))
        raise UserError(
            f'the training loss is not finite at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}): {terms}; training stopped before saving a checkpoint of it. '
            'Lower the learning rate, or check the data (e.g. boxes outside their image)')


def use_finite_loss_check(cfg):
    """Add :class:`FiniteLossHook` to ``cfg.custom_hooks`` unless the config has one."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(isinstance(h, dict) and h.get('type') in ('FiniteLossHook', FiniteLossHook)
               for h in hooks):
        hooks.append(dict(type='FiniteLossHook'))
    cfg['custom_hooks'] = hooks
