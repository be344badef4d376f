"""Let torch >= 2.6 load mmengine 0.10.7's own checkpoints, and nothing more.

What it works around: torch 2.6 made ``weights_only=True`` the default of ``torch.load``, and
mmengine 0.10.7 calls ``torch.load`` without the argument when it resumes. Its checkpoints hold,
besides tensors, the Runner's ``message_hub``: :class:`~mmengine.logging.HistoryBuffer` objects
(numpy arrays inside, plus the buffer's statistics methods, pickled as
``getattr(HistoryBuffer, 'mean')``) and numpy scalars such as the ETA. So ``--resume`` fails with
``_pickle.UnpicklingError: Weights only load failed``.

The fix: :func:`install` allow-lists, with ``torch.serialization.add_safe_globals``, exactly the
globals such a checkpoint needs (found by saving a real Runner checkpoint and reading the
unpickler's errors), and ``getattr`` only in a form that resolves statistics methods of
``HistoryBuffer``. Safe loading stays on for everything else: any other class in a checkpoint is
still refused. Nothing here sets ``weights_only=False``.

When it can go: once a released mmengine (> 0.10.7) loads its checkpoints itself without relying
on torch's old default (its main branch already does), and requirements pin that release.
"""
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

# The statistics methods HistoryBuffer registers by default (``_set_default_statistics``).
_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_method(obj, name):
    """Stand-in for ``getattr`` while unpickling: only ``getattr(HistoryBuffer, <statistic>)``.

    ``HistoryBuffer.__getstate__`` stores its ``_statistics_methods`` dict, whose values pickle
    as ``builtins.getattr(HistoryBuffer, 'min')``. A general ``getattr`` would let a checkpoint
    reach any attribute of any allowed object, so every other use is refused.
    """
    allowed = set(_DEFAULT_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if obj is not HistoryBuffer or name not in allowed:
        raise pickle.UnpicklingError(
            f'epsd_mm.utils.compat refuses getattr({obj!r}, {name!r}) in a checkpoint: only '
            f'HistoryBuffer statistics methods ({", ".join(sorted(allowed))}) are allowed')
    return getattr(HistoryBuffer, name)


def mmengine_safe_globals():
    """The ``add_safe_globals`` entries an mmengine 0.10.7 checkpoint needs.

    Each entry is ``(object, 'module.name')``, the name under which the pickle refers to it;
    the numpy functions are also listed under their numpy 1.x path (``numpy.core``) so that
    checkpoints written with numpy 1 load too.

    Returns:
        list[tuple[object, str]]: The entries.
    """
    multiarray = np._core.multiarray
    entries = [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (_history_buffer_method, 'builtins.getattr'),
        # HistoryBuffer keeps float64 values and int64 counts as arrays.
        (multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
        (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
        (type(np.dtype(np.float64)), 'numpy.dtypes.Float64DType'),
        (type(np.dtype(np.int64)), 'numpy.dtypes.Int64DType'),
        # runtime_info holds numpy scalars (the ETA is a np.float64).
        (multiarray.scalar, 'numpy._core.multiarray.scalar'),
        (multiarray.scalar, 'numpy.core.multiarray.scalar'),
    ]
    return entries


def install():
    """Allow-list :func:`mmengine_safe_globals` in ``torch.load``'s safe unpickler.

    Idempotent: entries already allowed (for instance after an earlier call) are not added
    again. A no-op with a torch that has no ``add_safe_globals`` (< 2.4, which also does not
    default to ``weights_only=True``).

    Returns:
        list[tuple[object, str]]: The entries that this call added.
    """
    serialization = torch.serialization
    if not hasattr(serialization, 'add_safe_globals'):
        return []
    present = set(serialization.get_safe_globals())
    missing = [entry for entry in mmengine_safe_globals() if entry not in present]
    if missing:
        serialization.add_safe_globals(missing)
    return missing
