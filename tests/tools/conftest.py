"""Fixtures of the tool tests."""
import os.path as osp

import pytest

from .helpers import DEMO, data_options, run_tool


@pytest.fixture(scope='session')
def trained(demo_data, tmp_path_factory):
    """One epoch of the demo EPSD + DLB config through tools/train.py: its epoch_1.pth."""
    work = str(tmp_path_factory.mktemp('trained'))
    proc = run_tool('train', DEMO, '--work-dir', work,
                    *data_options(demo_data.cls_root, 'train_cfg.max_epochs=1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return osp.join(work, 'epoch_1.pth')
