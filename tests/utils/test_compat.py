"""The torch>=2.6 shim: a real mmengine checkpoint loads with torch.load's default (safe)
mode once it is installed, and nothing beyond what such a checkpoint needs is allowed."""
import io
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from epsd_mm.utils import compat


class TinyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.fc(inputs).squeeze(1)
        if mode == 'loss':
            return dict(loss=((out - labels) ** 2).mean())
        return out


class TinyData(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((2,), float(i)), labels=torch.tensor(float(i % 2)))


@pytest.fixture(scope='module')
def mmengine_checkpoint(tmp_path_factory):
    """epoch_1.pth of a real mmengine Runner (2 iterations): its message_hub holds
    HistoryBuffers and a numpy scalar ETA."""
    work_dir = str(tmp_path_factory.mktemp('compat_run'))
    runner = Runner(
        model=TinyModel(), work_dir=work_dir, experiment_name='compat_checkpoint',
        train_dataloader=dict(dataset=TinyData(), batch_size=4, collate_fn=dict(
            type='default_collate'), sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        default_scope='mmengine')
    runner.train()
    return f'{work_dir}/epoch_1.pth'


@pytest.fixture
def fresh_safe_globals():
    """Start from torch's own allow-list (as in a process that never imported epsd_mm), and put
    back whatever was allowed before afterwards."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)


def test_checkpoint_needs_the_shim_and_loads_with_it(mmengine_checkpoint, fresh_safe_globals):
    # What it works around: safe loading refuses mmengine's own checkpoint. (When this stops
    # raising with a newer mmengine, the shim can go; see epsd_mm/utils/compat.py.)
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(mmengine_checkpoint)
    added = compat.install()
    assert len(added) == len(compat.mmengine_safe_globals())
    ckpt = torch.load(mmengine_checkpoint)  # torch's default: weights_only=True
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    hub = ckpt['message_hub']
    loss = hub['log_scalars']['train/loss']
    assert isinstance(loss, HistoryBuffer) and len(loss.data[0]) == 2
    assert loss.statistics('mean') == pytest.approx(loss.data[0].mean())
    assert hub['runtime_info']['iter'] == 1
    assert float(hub['runtime_info']['eta']) >= 0.0
    assert set(ckpt['state_dict']) == {'fc.weight', 'fc.bias'}


def test_install_is_idempotent(fresh_safe_globals):
    first = compat.install()
    count = len(torch.serialization.get_safe_globals())
    assert first and compat.install() == []
    assert len(torch.serialization.get_safe_globals()) == count


class NotAllowed:
    def __init__(self):
        self.value = 3


class GetattrGadget:
    """Pickles as getattr(HistoryBuffer, '__init__'): a general getattr would hand out any
    attribute of an allowed object."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def _saved(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def test_other_classes_are_still_refused(fresh_safe_globals):
    compat.install()
    with pytest.raises(pickle.UnpicklingError, match='NotAllowed'):
        torch.load(_saved({'x': NotAllowed()}))
    with pytest.raises(pickle.UnpicklingError, match=r"refuses getattr\(.*'__init__'\)"):
        torch.load(_saved({'x': GetattrGadget()}))
    # numpy arrays and scalars are allowed, as mmengine's message hub needs them
    import numpy as np
    loaded = torch.load(_saved({'a': np.arange(3), 'eta': np.float64(1.5)}))
    assert loaded['a'].tolist() == [0, 1, 2] and loaded['eta'] == 1.5
