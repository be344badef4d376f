"""mmengine's ``CheckpointHook`` with writes that a kill or a full disk cannot half-do."""
import errno
import os
import os.path as osp
import re

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from ..utils.checkpoints import state_dict_mismatch
from ..utils.errors import UserError
from ..utils.io import atomic_write_text

#: Temporary files this hook writes a checkpoint into before renaming it: ``.NAME.tmp``.
TMP_CHECKPOINT = re.compile(r'\.(.+\.pth)\.tmp')

#: ``errno`` values that mean the disk (or the process's file-size limit) is full.
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def fsync_path(path):
    """``fsync`` a file or a directory (so that a rename inside it is on disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _DeferredRemovals:
    """A file backend that records ``remove`` / ``rmtree`` instead of doing them."""

    def __init__(self, backend):
        self.backend = backend
        self.paths = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def remove(self, path):
        self.paths.append(path)

    def rmtree(self, path):
        self.paths.append(path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's :class:`~mmengine.hooks.CheckpointHook`, with every write atomic.

    What it works around: mmengine 0.10.7 writes ``epoch_N.pth`` in place, deletes the oldest
    checkpoint (``max_keep_ckpts``) and the previous best one (``save_best``) *before* the new
    one is written, and writes ``last_checkpoint`` in place too. A kill or a full disk during
    a write then leaves a partial file under the final name, named by ``last_checkpoint``, with
    the complete older checkpoint already deleted: nothing can resume.

    Here, for a local ``out_dir``:

    - every checkpoint is written to ``.NAME.tmp`` in its own directory, ``fsync``-ed, renamed
      onto ``NAME`` and the directory ``fsync``-ed, so ``NAME`` is either absent, its previous
      complete content, or the new complete content;
    - ``last_checkpoint`` is written (atomically) only once that checkpoint is in place;
    - the checkpoint that ``max_keep_ckpts`` rotates out, and the previous best checkpoint, are
      removed only after the new one is in place (a kill in between leaves one extra file,
      never one fewer);
    - a full disk (``ENOSPC``, ``EDQUOT``, or ``EFBIG`` from a file-size limit) removes the
      temporary file and raises :class:`~epsd_mm.utils.errors.UserError` naming the checkpoint;
    - ``before_train`` removes the ``.NAME.pth.tmp`` files an interrupted write left behind.

    On any other file backend (``backend_args``, ``out_dir`` on a remote store) it behaves as
    mmengine's hook. Arguments are those of
    :class:`~mmengine.hooks.CheckpointHook`. ``tools/train.py`` puts this hook in place of
    ``CheckpointHook`` in every config (:func:`use_atomic_checkpoints`).
    """

    def before_train(self, runner):
        super().before_train(runner)
        self._raw_save = None
        self._atomic = isinstance(self.file_backend, LocalBackend)
        if self._atomic and is_main_process() and osp.isdir(self.out_dir):
            for name in sorted(os.listdir(self.out_dir)):
                if TMP_CHECKPOINT.fullmatch(name):
                    os.remove(osp.join(self.out_dir, name))
                    print_log(f'removed {name} from {self.out_dir}: a temporary checkpoint '
                              'left by an interrupted write', logger='current')

    # ------------------------------------------------------------------ writing
    def _write(self, save, filename, **kwargs):
        """Write checkpoint ``filename`` into ``out_dir`` with the Runner's ``save`` through a
        temporary file, then rename it into place."""
        tmp_name = f'.{filename}.tmp'
        tmp = osp.join(self.out_dir, tmp_name)
        path = osp.join(self.out_dir, filename)
        try:
            save(self.out_dir, tmp_name, self.file_client_args, backend_args=self.backend_args,
                 **kwargs)
            if is_main_process():  # Runner.save_checkpoint writes on the main process only
                fsync_path(tmp)
                os.replace(tmp, path)
                fsync_path(self.out_dir)
        except OSError as e:
            if is_main_process() and osp.exists(tmp):
                os.remove(tmp)
            if e.errno in FULL_DISK:
                raise UserError(
                    f'could not write checkpoint {path}: {e.strerror}; nothing was written '
                    f'under that name and the earlier checkpoints are intact: free space in '
                    f'{self.out_dir} (or give --work-dir on another disk), then continue with '
                    '--resume') from None
            raise

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._atomic:
            return super()._save_checkpoint_with_step(runner, step, meta)
        rotated_out = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            # the saved message hub must already list the ids kept after this save
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                rotated_out.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        self._write(self._raw_save or runner.save_checkpoint, filename,
                    save_optimizer=self.save_optimizer,
                    save_param_scheduler=self.save_param_scheduler, meta=meta,
                    by_epoch=self.by_epoch, **self.args)
        if not is_main_process():
            return
        self._write_record(runner)
        for old in rotated_out:
            old_path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if old_path != self.last_ckpt and osp.isfile(old_path):
                os.remove(old_path)

    def _write_record(self, runner):
        record = osp.join(runner.work_dir, 'last_checkpoint')
        try:
            atomic_write_text(self.last_ckpt, record)
        except OSError as e:
            if e.errno in FULL_DISK:
                raise UserError(f'could not write {record}: {e.strerror}; free space in '
                                f'{runner.work_dir}, then continue with --resume') from None
            raise

    def _save_best_checkpoint(self, runner, metrics):
        if not self._atomic or not self.save_best:
            return super()._save_best_checkpoint(runner, metrics)
        # mmengine's logic, with the Runner's writes made atomic and the removal of the
        # previous best checkpoint held back until the new one (and the epoch checkpoint that
        # records it) are in place.
        backend, deferred = self.file_backend, _DeferredRemovals(self.file_backend)
        raw = self._raw_save = runner.save_checkpoint

        def atomic_save(out_dir, filename, file_client_args=None, backend_args=None,
                        **kwargs):
            self._write(raw, filename, **kwargs)

        runner.save_checkpoint = atomic_save
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            del runner.save_checkpoint  # the instance attribute: the class's method is back
            self.file_backend, self._raw_save = backend, None
        if not is_main_process():
            return
        current = {self.last_ckpt, getattr(self, 'best_ckpt_path', None),
                   *getattr(self, 'best_ckpt_path_dict', {}).values()}
        for path in deferred.paths:
            if path not in current and osp.isfile(path):
                os.remove(path)


def use_atomic_checkpoints(cfg):
    """Make ``cfg`` use :class:`AtomicCheckpointHook` where it would use mmengine's hook.

    ``default_hooks.checkpoint`` of type ``CheckpointHook`` (or without a type), and a
    config without that entry (the Runner then adds ``CheckpointHook(interval=1)``), get
    ``AtomicCheckpointHook`` with the same arguments. ``checkpoint=None`` (no checkpoints) and
    other hook types are left alone.

    Args:
        cfg (mmengine.Config): The loaded config; changed in place.

    Returns:
        bool: Whether the config now uses the atomic hook.
    """
    from mmengine.config import ConfigDict

    hooks = cfg.get('default_hooks')
    if hooks is None:
        hooks = cfg['default_hooks'] = ConfigDict()
    if 'checkpoint' not in hooks:
        hooks['checkpoint'] = ConfigDict(type='AtomicCheckpointHook', interval=1)
        return True
    hook = hooks['checkpoint']
    if hook is None:
        return False
    kind = hook.get('type', 'CheckpointHook')
    if kind in ('CheckpointHook', 'mmengine.CheckpointHook', CheckpointHook):
        hook['type'] = 'AtomicCheckpointHook'
    return hook['type'] in ('AtomicCheckpointHook', AtomicCheckpointHook)


def _examples(keys, limit=3):
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys)} in all)' if len(keys) > limit else '')


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuse to load a checkpoint whose ``state_dict`` does not fit the model.

    mmengine loads weights with ``strict=False``: a checkpoint of another model (a detector's
    into a classifier) loads what matches, warns about the rest in the log, and the run goes on
    with randomly initialized layers, e.g. a test that reports a number for an untrained head.
    In ``after_load_checkpoint`` (before the weights reach the model) this hook raises
    :class:`~epsd_mm.utils.errors.UserError` naming the model's weights the checkpoint lacks,
    the checkpoint's entries the model lacks, and shape mismatches. ``tools/test.py`` adds it
    unless ``--partial`` is given.

    Args:
        hint (str): How to load anyway, appended to the message. Defaults to
            ``'pass --partial to load only the entries that fit'``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, hint='pass --partial to load only the entries that fit'):
        self.hint = hint

    def after_load_checkpoint(self, runner, checkpoint):
        from mmengine.model import BaseTTAModel, is_model_wrapper
        model = runner.model
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        state = checkpoint.get('state_dict', checkpoint)
        missing, unexpected, wrong = state_dict_mismatch(model.state_dict(), state)
        if not (missing or unexpected or wrong):
            return
        parts = []
        if missing:
            parts.append(f'{len(missing)} weights of the model are not in it '
                         f'({_examples(missing)})')
        if unexpected:
            parts.append(f'{len(unexpected)} of its entries are not in the model '
                         f'({_examples(unexpected)})')
        if wrong:
            parts.append(f'{len(wrong)} have another shape ({_examples(wrong, 2)})')
        source = getattr(runner, '_load_from', None) or 'the checkpoint'
        raise UserError(f'checkpoint {source} does not fit the model of this config: '
                        f'{"; ".join(parts)}. Was it saved by another model? Use the config '
                        f'it was trained with, or {self.hint}')
