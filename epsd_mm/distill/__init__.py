"""Self-distillation: the losses, CS-KD / PS-KD / DLB, the SD classifier, CS-KD's pair sampler
and DLB's multi-view collate. Importing this package registers all of them, and the SD checks
of the tools' config loading (:mod:`.config_checks`)."""
from . import config_checks  # noqa: F401  (registers check_sd_config)
from .classifier import SDImageClassifier
from .losses import KDLoss, SoftTargetCrossEntropy, kd_loss, soft_target_ce
from .methods import CSKD, DLB, PSKD, BaseSDMethod, split_views
from .samplers import ClassPairBatchSampler
from .transforms import multiview_collate

__all__ = [
    'BaseSDMethod', 'CSKD', 'ClassPairBatchSampler', 'DLB', 'KDLoss', 'PSKD',
    'SDImageClassifier', 'SoftTargetCrossEntropy', 'kd_loss', 'multiview_collate',
    'soft_target_ce', 'split_views'
]
