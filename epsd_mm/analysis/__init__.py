"""Analysis and export of pruned models: FLOPs and parameters dense and effective
(:mod:`.flops`), compact checkpoints and the ``epsdc://`` checkpoint scheme (:mod:`.compact`).

Importing this package registers the ``epsdc://`` scheme with mmengine's ``CheckpointLoader``.
"""
from . import compact, flops  # noqa: F401  (compact registers the epsdc:// scheme)
from .compact import SCHEME, export_compact, masks_from_checkpoint, restore_compact
from .flops import analyze_config, count_complexity, format_complexity

__all__ = [
    'SCHEME', 'export_compact', 'restore_compact', 'masks_from_checkpoint', 'analyze_config',
    'count_complexity', 'format_complexity'
]
