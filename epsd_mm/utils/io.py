"""Atomic file writes: a killed process never leaves a half-written file under the final name."""
import contextlib
import hashlib
import json
import os
import os.path as osp
import tempfile

import torch

from .errors import UserError


@contextlib.contextmanager
def _temporary_beside(path):
    """Yield a new temporary file in ``path``'s directory (created if needed), with the
    permissions a plain ``open()`` would give; it is removed on exit unless it was renamed."""
    path = osp.abspath(path)
    os.makedirs(osp.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp',
                               dir=osp.dirname(path))
    os.close(fd)
    # mkstemp creates 0600; give the final file the permissions a plain open() would
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def _fsync(path):
    with open(path, 'rb') as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The rename is atomic on POSIX file systems. On an exception the temporary file is removed
    and ``path`` is left as it was (absent, or its previous complete content).
    """
    with _temporary_beside(path) as tmp:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, osp.abspath(path))


def atomic_torch_save(obj, path):
    """``torch.save(obj, path)`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_hashed_torch_save(obj, stem, check=None):
    """``torch.save(obj)`` as ``<stem>-<first 8 hex digits of the file's sha256>.pth``, the
    naming of OpenMMLab's published checkpoints, atomically: the file is complete (and passed
    ``check``) before it gets its final name.

    Args:
        obj: What to save.
        stem (str): The path without the hash and the ``.pth`` ending.
        check (callable, optional): Called with the temporary file's path before the rename;
            an exception it raises leaves nothing behind. Defaults to None.

    Returns:
        tuple[str, str]: The final path and the file's full sha256 (hex).
    """
    with _temporary_beside(stem) as tmp:
        torch.save(obj, tmp)
        if check is not None:
            check(tmp)
        sha = hashlib.sha256()
        with open(tmp, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                sha.update(block)
        digest = sha.hexdigest()
        final = f'{stem}-{digest[:8]}.pth'
        _fsync(tmp)
        os.replace(tmp, final)
    return final, digest


def atomic_json_dump(obj, path, **kwargs):
    """``json.dump(obj)`` into ``path`` through :func:`atomic_path` (indent 2 by default)."""
    kwargs.setdefault('indent', 2)
    with atomic_path(path) as tmp:
        with open(tmp, 'w') as f:
            json.dump(obj, f, **kwargs)
            f.write('\n')


def atomic_write_text(text, path):
    """Write ``text`` into ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        with open(tmp, 'w') as f:
            f.write(text)


def check_output_path(out, source, what='output'):
    """Raise :class:`~epsd_mm.utils.errors.UserError` if ``out`` is a directory or the file
    ``source`` itself (the same path, a link to it, or a hard link), which writing ``out``
    would replace.

    Args:
        out (str): The file a tool is about to write.
        source (str): The file it reads.
        what (str): How the message names ``out``. Defaults to ``'output'``.
    """
    if osp.isdir(out):
        raise UserError(f'the {what} {out} is a directory; give a file path inside it, e.g. '
                        f'{osp.join(out, osp.basename(source))}')
    same = osp.realpath(out) == osp.realpath(source) or (
        osp.exists(out) and osp.exists(source) and osp.samefile(out, source))
    if same:
        raise UserError(f'the {what} {out} is the input checkpoint {source}, which it would '
                        'replace; choose another path')
