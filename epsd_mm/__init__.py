"""epsd_mm: Early Pruning with Self-Distillation for mmengine, mmpretrain and mmdet.

Importing the package registers its components (criteria, SD methods and models, hooks,
samplers, datasets, the compact-checkpoint loader) and installs the narrow checkpoint-loading
shim of ``utils.compat``, so a config needs only
``custom_imports=dict(imports=['epsd_mm'], allow_failed_imports=False)``.
"""
from .utils import compat

compat.install()  # before anything loads a checkpoint: see utils/compat.py for what and why

# registration (import order matters only in that every module imports what it registers into)
from . import analysis, datasets, distill, hooks, pruning  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['__version__']
