"""epsd_mm: Early Pruning with Self-Distillation for mmengine, mmpretrain and mmdet.

Importing the package registers its components (criteria, SD methods and models, hooks,
samplers, datasets) and installs the narrow checkpoint-loading shim of ``utils.compat``, so a
config needs only ``custom_imports=dict(imports=['epsd_mm'], allow_failed_imports=False)``.
"""
from . import hooks, pruning  # noqa: F401  (registration)
from .version import __version__

__all__ = ['__version__']
