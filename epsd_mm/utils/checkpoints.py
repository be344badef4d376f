"""Checkpoint files on disk: is one readable, and which one does ``--resume`` take.

mmengine's auto-resume reads the path written in ``WORK_DIR/last_checkpoint`` and loads it; a
checkpoint left empty or truncated by a killed or out-of-space writer then ends the run with an
``EOFError`` traceback, although older complete checkpoints lie beside it. The functions here
let the tools find that out before the Runner is built: :func:`checkpoint_problem` says what is
wrong with a file (cheaply: a torch zip archive is checked by its CRCs, nothing is unpickled),
and :func:`find_resumable` picks the newest readable checkpoint of a work directory, saying
which ones it skipped and why.
"""
import os
import os.path as osp
import re
import zipfile

#: The mmengine checkpoint scheme that loads compact checkpoints (``epsdc://PATH``);
#: ``epsd_mm.analysis.compact`` registers the loader for it.
SCHEME = 'epsdc://'

#: Names of the checkpoints ``CheckpointHook`` writes with its default ``filename_tmpl``.
STEP_CHECKPOINT = re.compile(r'(epoch|iter)_(\d+)\.pth')


def local_checkpoint_path(path):
    """The local file behind ``path`` (a compact ``epsdc://`` path is the file after the
    scheme), or None for a path on another backend (``http://``, ``s3://``, ...)."""
    if path.startswith(SCHEME):
        path = path[len(SCHEME):]
    if '://' in path:
        return None
    return osp.expanduser(path)


def checkpoint_problem(path):
    """Say what makes ``path`` unreadable as a checkpoint, or return None if it is readable.

    ``torch.save`` writes a zip archive; it is readable when its directory is intact and every
    member matches its CRC (a killed or out-of-space write leaves an empty file or one without
    the archive's directory). A file that is not a zip archive is tried with ``torch.load``
    (safe loading), which reads torch's legacy format; random bytes fail there too.

    Args:
        path (str): A local file.

    Returns:
        str | None: The problem, phrased to follow "checkpoint PATH is unreadable: ".
    """
    if not osp.exists(path):
        return 'it does not exist'
    if osp.isdir(path):
        return 'it is a directory, not a file'
    size = osp.getsize(path)
    if size == 0:
        return 'it is empty (0 bytes)'
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            return None if bad is None else f'it is damaged (member {bad} fails its CRC check)'
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError) as e:
        return f'it is damaged ({e})'
    import torch
    try:
        torch.load(path, map_location='cpu', weights_only=True)
    except Exception:  # noqa: BLE001  anything torch raises on foreign bytes
        return _truncated(size)
    return None


def describe_error(e):
    """An exception as message text, with its type when its message is empty (``EOFError()``
    would otherwise end a sentence in a colon)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _truncated(size):
    return (f'it is not a complete torch checkpoint ({size} bytes: truncated by an interrupted '
            'write, damaged, or not a checkpoint at all)')


def find_resumable(work_dir):
    """The checkpoint that ``--resume`` without a path should take in ``work_dir``.

    That is the one named by ``WORK_DIR/last_checkpoint`` if it is readable; otherwise the
    newest readable ``epoch_N.pth`` / ``iter_N.pth`` (by modification time, then N) in
    ``work_dir`` and in the directory ``last_checkpoint`` points into. ``best_*`` checkpoints
    are never taken: they hold no optimizer or scheduler state.

    Args:
        work_dir (str): The run's work directory.

    Returns:
        tuple[str | None, list[tuple[str, str]], bool]: The checkpoint (None when there is
        none to take), the ``(path, problem)`` of every newer one that was skipped, and
        whether ``last_checkpoint`` exists.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(record):
        with open(record) as f:
            named = f.read().strip() or None
    dirs = [work_dir] + ([osp.dirname(named)] if named and osp.dirname(named) else [])
    found = {}
    for d in dirs:
        if not osp.isdir(d):
            continue
        for name in os.listdir(d):
            match = STEP_CHECKPOINT.fullmatch(name)
            path = osp.join(d, name)
            if match and osp.isfile(path):
                found[osp.realpath(path)] = (os.stat(path).st_mtime, int(match.group(2)), path)
    candidates = [entry[2] for entry in sorted(found.values(), reverse=True)]
    if named is not None:
        candidates = [named] + [c for c in candidates
                                if osp.realpath(c) != osp.realpath(named)]
    skipped = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped, named is not None
        skipped.append((path, problem))
    return None, skipped, named is not None


def state_dict_mismatch(model_state, checkpoint_state):
    """Compare a model's ``state_dict`` with a checkpoint's, as mmengine loads it (a leading
    ``module.`` of the checkpoint's keys removed).

    Args:
        model_state (Mapping[str, Tensor]): The model's ``state_dict()``.
        checkpoint_state (Mapping[str, Tensor]): The checkpoint's ``state_dict``.

    Returns:
        tuple[list[str], list[str], list[str]]: The model's keys the checkpoint lacks, the
        checkpoint's keys the model lacks, and ``'key: checkpoint AxB, model CxD'`` for keys
        of both with different shapes.
    """
    state = {re.sub(r'^module\.', '', k): v for k, v in checkpoint_state.items()}
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]

    def shape(t):
        return 'x'.join(map(str, getattr(t, 'shape', ()))) or 'scalar'

    wrong = [f'{k}: checkpoint {shape(state[k])}, model {shape(v)}'
             for k, v in model_state.items()
             if k in state and hasattr(v, 'shape') and hasattr(state[k], 'shape')
             and tuple(v.shape) != tuple(state[k].shape)]
    return missing, unexpected, wrong
