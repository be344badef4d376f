"""Each SD demo config trains one epoch through tools/train.py (pruned at init with epsd), logs
its SD term, leaves an epoch_1.pth with pruned entries exactly zero, and tools/test.py on that
checkpoint prints accuracy/top1."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from epsd_mm.pruning import MaskSet

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool(name, *args):
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', name), *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.parametrize('sd', ['dlb', 'cskd', 'pskd'])
def test_demo_config_trains_prunes_and_tests(demo_data, tmp_path, sd):
    config = osp.join(ROOT, 'configs', 'demo', f'epsd_{sd}_demo.py')
    data = [f'train_dataloader.dataset.data_root={demo_data.cls_root}',
            f'val_dataloader.dataset.data_root={demo_data.cls_root}',
            f'test_dataloader.dataset.data_root={demo_data.cls_root}',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            'default_hooks.logger.interval=1']
    work = str(tmp_path / 'work')
    log = _tool('train.py', config, '--work-dir', work, '--cfg-options',
                'train_cfg.max_epochs=1', *data)
    assert f'loss_sd_{sd}' in log
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu')
    masks = MaskSet.from_dict(ckpt['pruning'])
    assert masks.method == 'epsd' and abs(masks.sparsity - 0.9) <= 0.002
    assert masks.zero_violations(ckpt['state_dict']) == 0
    assert 'self_distill' in ckpt
    out = _tool('test.py', config, osp.join(work, 'epoch_1.pth'), '--work-dir',
                str(tmp_path / 'test'), '--cfg-options', *data)
    assert 'accuracy/top1' in out
