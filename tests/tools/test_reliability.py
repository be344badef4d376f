"""Reliability through the real tools: a two-process CPU run of the demo config, and a run
killed with SIGKILL mid-epoch that resumes with bit-identical masks."""
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import torch

from epsd_mm.pruning import MaskSet

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo', 'epsd_dlb_demo.py')


def _options(demo_data, epochs):
    return ['--cfg-options', f'train_cfg.max_epochs={epochs}',
            f'train_dataloader.dataset.data_root={demo_data.cls_root}',
            f'val_dataloader.dataset.data_root={demo_data.cls_root}',
            f'test_dataloader.dataset.data_root={demo_data.cls_root}',
            'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=5']


def _ckpt(work, name):
    return torch.load(osp.join(work, name), map_location='cpu')


def test_two_cpu_processes_train_the_demo_config(demo_data, tmp_path):
    work = str(tmp_path / 'dist')
    env = dict(os.environ, PORT=str(29500 + os.getpid() % 1000), OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), DEMO, '2',
                           '--work-dir', work, *_options(demo_data, 1)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = _ckpt(work, 'epoch_1.pth')
    masks = MaskSet.from_dict(ckpt['pruning'])
    assert masks.method == 'epsd' and abs(masks.sparsity - 0.9) <= 0.002
    assert masks.zero_violations(ckpt['state_dict']) == 0
    assert MaskSet.load(osp.join(work, 'masks.pth')).equal(masks)
    # 40 training images over 2 ranks at batch 4: 5 iterations per rank, not 10
    assert ckpt['meta']['iter'] == 5
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])


def test_sigkill_mid_epoch_then_resume_keeps_masks_bit_identical(demo_data, tmp_path):
    work = str(tmp_path / 'kill')
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), DEMO, '--work-dir', work]
    log_path = tmp_path / 'first.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd + _options(demo_data, 3), stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.time() + 400
        # kill it inside epoch 2: after epoch_1.pth exists and epoch 2 has logged an iteration
        while time.time() < deadline and proc.poll() is None:
            if osp.exists(osp.join(work, 'epoch_1.pth')) and \
                    re.search(r'Epoch\(train\) \[2\]\[\s*2/', log_path.read_text()):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.2)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, log_path.read_text()[-3000:]
    assert not osp.exists(osp.join(work, 'epoch_2.pth'))
    first = MaskSet.from_dict(_ckpt(work, 'epoch_1.pth')['pruning'])
    # nothing half-written under a final name: only complete files, no temporaries left behind
    assert not [f for f in os.listdir(work) if f.endswith('.tmp')]

    resumed = subprocess.run(cmd + ['--resume'] + _options(demo_data, 3), capture_output=True,
                             text=True, timeout=600, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout + resumed.stderr
    assert 'masks restored from the resumed checkpoint' in out
    assert 'scoring' not in out.split('masks restored')[0].split('Resumed')[-1]
    final = _ckpt(work, 'epoch_3.pth')
    masks = MaskSet.from_dict(final['pruning'])
    assert masks.checksum() == first.checksum()
    assert masks.zero_violations(final['state_dict']) == 0
    assert final['meta']['epoch'] == 3
    # DLB's carried batch came back from epoch_1.pth, and travels on in the new checkpoints
    assert final['self_distill']['type'] == 'DLB'
