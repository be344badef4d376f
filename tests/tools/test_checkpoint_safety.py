"""Checkpoints survive kills and full disks (tools/train.py with AtomicCheckpointHook).

A real training process is SIGKILLed while it writes a checkpoint (``kill_at_write.py``: at
the first bytes of the temporary file, at the latest before its rename), with
``max_keep_ckpts=1`` and during the rewrite that follows ``save_best``; the newest complete
checkpoint is then still in place and named by ``last_checkpoint``, and ``--resume`` continues
from it. A disk that fills up during a checkpoint write ends the run with one line.
"""
import os
import os.path as osp
import resource
import shutil
import subprocess
import sys

import pytest
import torch

from epsd_mm.utils.checkpoints import checkpoint_problem

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo', 'epsd_dlb_demo.py')
TRAIN = osp.join(ROOT, 'tools', 'train.py')
KILLER = osp.join(ROOT, 'tests', 'tools', 'kill_at_write.py')


def _options(demo_data, epochs, *extra):
    # the demo config's own checkpoint settings (save_best='accuracy/top1') unless overridden
    return ['--cfg-options', f'train_cfg.max_epochs={epochs}',
            f'train_dataloader.dataset.data_root={demo_data.cls_root}',
            f'val_dataloader.dataset.data_root={demo_data.cls_root}',
            'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            'custom_hooks.0.criterion.inner_steps=1', *extra]


def _train(args, prefix=(), **kwargs):
    return subprocess.run([*prefix, sys.executable, *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, **kwargs)


def _killed_at(work, name, nth, args, via='audit'):
    """Train, SIGKILLed during the ``nth`` write of checkpoint ``name`` into ``work``: by
    ``kill_at_write.py`` (``via='audit'``), or by strace's fault injection at the first
    ``write`` system call into the temporary file (``via='strace'``, the issue's reproduction).
    """
    tmp = osp.join(work, f'.{name}.tmp')
    if via == 'strace':
        proc = _train([TRAIN, DEMO, '--work-dir', work, *args],
                      prefix=('strace', '-f', '-o', os.devnull, '-e', 'trace=write', '-e',
                              'inject=write:signal=KILL:when=1', '-P', tmp))
    else:
        proc = _train([KILLER, tmp, str(nth), TRAIN, DEMO, '--work-dir', work, *args])
    assert proc.returncode in (-9, 137), proc.stderr[-3000:]
    return tmp


def _epoch(path):
    assert checkpoint_problem(path) is None
    return torch.load(path, map_location='cpu')['meta']['epoch']


def _recorded(work):
    with open(osp.join(work, 'last_checkpoint')) as f:
        return f.read()


@pytest.mark.parametrize('via', [
    'audit', pytest.param('strace', marks=pytest.mark.skipif(
        shutil.which('strace') is None, reason='strace is not installed'))])
def test_kill_during_a_rotating_write_keeps_the_previous_checkpoint(demo_data, tmp_path, via):
    # max_keep_ckpts=1, as the demo detector: mmengine deleted epoch_1.pth before writing
    # epoch_2.pth, so a kill there lost the whole run
    work = str(tmp_path / 'w')
    keep_one = ('default_hooks.checkpoint.max_keep_ckpts=1',
                'default_hooks.checkpoint.save_best=None')
    tmp = _killed_at(work, 'epoch_2.pth', 1, _options(demo_data, 2, *keep_one), via)
    assert osp.exists(tmp) and not osp.exists(osp.join(work, 'epoch_2.pth'))
    if via == 'strace':
        assert osp.getsize(tmp) == 0  # killed as its first write began
    assert _epoch(osp.join(work, 'epoch_1.pth')) == 1
    assert _recorded(work) == osp.join(work, 'epoch_1.pth')

    resumed = _train([TRAIN, DEMO, '--work-dir', work, '--resume',
                      *_options(demo_data, 2, *keep_one)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout + resumed.stderr
    assert f'removed .epoch_2.pth.tmp from {work}: a temporary checkpoint left by an ' \
           'interrupted write' in out
    assert 'resumed epoch: 1' in out
    assert _epoch(osp.join(work, 'epoch_2.pth')) == 2
    assert not osp.exists(osp.join(work, 'epoch_1.pth'))  # rotated out, after epoch_2 was in
    assert _recorded(work) == osp.join(work, 'epoch_2.pth')
    assert not [f for f in os.listdir(work) if f.endswith('.tmp')]


def test_kill_during_the_rewrite_after_save_best_then_resume_skips_a_damaged_latest(
        demo_data, tmp_path):
    work = str(tmp_path / 'w')
    best = osp.join(work, 'best_accuracy_top1_epoch_1.pth')
    # write 1 of epoch_1.pth: after the epoch; write 2: after validation found a best
    _killed_at(work, 'epoch_1.pth', 2, _options(demo_data, 1))
    assert _epoch(osp.join(work, 'epoch_1.pth')) == 1
    assert checkpoint_problem(best) is None
    assert _recorded(work) == osp.join(work, 'epoch_1.pth')

    # what a writer that is not atomic leaves: a newer, truncated checkpoint that
    # last_checkpoint names
    damaged = osp.join(work, 'epoch_2.pth')
    data = open(osp.join(work, 'epoch_1.pth'), 'rb').read()
    open(damaged, 'wb').write(data[:len(data) // 3])
    open(osp.join(work, 'last_checkpoint'), 'w').write(damaged)
    resumed = _train([TRAIN, DEMO, '--work-dir', work, '--resume',
                      *_options(demo_data, 2)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.splitlines()[:2] == [
        f'--resume: skipping {damaged}: it is not a complete torch checkpoint '
        f'({len(data) // 3} bytes: truncated by an interrupted write, damaged, or not a '
        'checkpoint at all)',
        f'--resume: resuming from {osp.join(work, "epoch_1.pth")}, the newest readable '
        'checkpoint']
    assert 'resumed epoch: 1' in resumed.stdout + resumed.stderr
    assert _epoch(damaged) == 2  # replaced, atomically, by the resumed run's epoch 2
    assert _recorded(work) == damaged


def _unshare_works():
    if shutil.which('unshare') is None:
        return False
    probe = subprocess.run(['unshare', '-rm', 'sh', '-c',
                            'mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || '
                            'mount -t tmpfs -o size=1m tmpfs /tmp'], capture_output=True)
    return probe.returncode == 0


def _fsize_limit(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_during_a_checkpoint_write_is_one_line(demo_data, tmp_path):
    """A 3 MiB tmpfs (its own mount namespace, when the kernel lets ``unshare`` make one)
    fills up during the first 6.6 MB checkpoint: ENOSPC. Elsewhere a 3 MiB file-size limit
    (RLIMIT_FSIZE) stops the same write with EFBIG."""
    work = str(tmp_path / 'w')
    os.makedirs(work)
    listing = str(tmp_path / 'listing.txt')
    args = [TRAIN, DEMO, '--work-dir', work, *_options(demo_data, 1)]
    if _unshare_works():
        quoted = ' '.join(f"'{a}'" for a in [sys.executable, *args])
        script = (f"mount -t tmpfs -o size=3m tmpfs '{work}' && {quoted}; rc=$?; "
                  f"ls -A '{work}' > '{listing}'; exit $rc")
        proc = subprocess.run(['unshare', '-rm', 'sh', '-c', script], capture_output=True,
                              text=True, timeout=600, cwd=ROOT)
        reason = 'No space left on device'
    else:
        proc = _train(args, preexec_fn=_fsize_limit(3 * 2**20))
        with open(listing, 'w') as f:
            f.write('\n'.join(os.listdir(work)))
        reason = 'File too large'
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: could not write checkpoint {work}/epoch_1.pth: {reason}; nothing was written '
        f'under that name and the earlier checkpoints are intact: free space in {work} (or '
        'give --work-dir on another disk), then continue with --resume')
    left = open(listing).read().split()
    assert 'masks.pth' in left
    assert not [f for f in left if f.endswith('.pth') and f != 'masks.pth']
    assert not [f for f in left if f.endswith('.tmp')]
