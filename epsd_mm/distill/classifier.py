"""``SDImageClassifier``: an mmpretrain ``ImageClassifier`` trained with a self-distillation method.

It is the one source of the SD loss (DESIGN principle 2): training calls ``loss()``, and the
pruning criteria call the same ``model(inputs, data_samples, mode='loss')`` through
``torch.func.functional_call``. Its ``state_dict`` has exactly the keys of a plain
``ImageClassifier`` with the same backbone, neck and head, so checkpoints load into unmodified
mmpretrain (and, for the backbone, mmdet) models.
"""
import contextlib

from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS

from ..registry import SD_METHODS, build_checked
from .methods import forward_logits, gt_labels, split_views


@MODELS.register_module()
class SDImageClassifier(ImageClassifier):
    """An ``ImageClassifier`` whose training loss is a self-distillation method's.

    - ``mode='loss'``: ``self.sd.loss(self, inputs, data_samples)``, a dict with the CE term
      ``loss_cls`` and the SD term ``loss_sd_<name>`` (logged separately by mmengine); under
      :meth:`sd_disabled` only ``loss_cls``.
    - ``mode='tensor'`` / ``mode='predict'``: the plain classifier on a single view (the first
      view of a multi-view batch), so validation and testing, ``accuracy/top1`` and
      ``save_best`` are exactly mmpretrain's.

    The method (``self.sd``) is a plain object, not a sub-module: its state (PS-KD's memory,
    DLB's carry) stays out of ``state_dict()`` and travels under the checkpoint key
    ``self_distill`` (:class:`~epsd_mm.hooks.SelfDistillHook`).

    Args:
        sd (dict | str): the SD method, built from ``epsd_mm.registry.SD_METHODS``, e.g.
            ``dict(type='DLB', tau=3.0, loss_weight=1.0)``; an unknown type lists the valid
            names. Required.
        **kwargs: the arguments of ``mmpretrain.models.ImageClassifier`` (``backbone``,
            ``neck=None``, ``head=None``, ``pretrained=None``, ``train_cfg=None``,
            ``data_preprocessor=None``, ``init_cfg=None``).
    """

    def __init__(self, sd, **kwargs):
        super().__init__(**kwargs)
        if self.head is None:
            raise ValueError('SDImageClassifier needs a classification head (model.head)')
        # A plain attribute (not an nn.Module): never part of state_dict(), parameters() or
        # the modules that mmengine wraps, casts or moves between devices.
        self.sd = build_checked(SD_METHODS, sd, 'self-distillation method')
        # A plain flag, read at call time, so it also holds inside torch.func.functional_call.
        self._sd_off = False

    @contextlib.contextmanager
    def sd_disabled(self):
        """Within this context ``mode='loss'`` returns the task CE alone (``loss_cls``)."""
        previous = self._sd_off
        self._sd_off = True
        try:
            yield self
        finally:
            self._sd_off = previous

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode in ('tensor', 'predict'):
            # a multi-view batch is predicted on its first view
            inputs = split_views(inputs, data_samples)[0]
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs, data_samples):
        """The SD training loss of a batch (the task CE alone under :meth:`sd_disabled`)."""
        if self._sd_off:
            return self.sd.ce_loss(self, inputs, data_samples)
        return self.sd.loss(self, inputs, data_samples)

    def task_logits(self, inputs, data_samples):
        """Logits and labels of the part of the batch the task CE is computed on.

        CS-KD: the first half of the paired batch; DLB: the current batch's first view; PS-KD:
        the whole batch.

        Returns:
            tuple[Tensor, Tensor]: ``(logits (B, C), labels (B,))``.
        """
        x, samples = self.sd.task_batch(inputs, data_samples)
        logits = forward_logits(self, x)
        return logits, gt_labels(samples, logits.device)
