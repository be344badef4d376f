"""SelfDistillHook: the epoch and dataset size for the SD method, and an exact resume of PS-KD's
memory and DLB's carry through checkpoints of a real Runner."""
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from epsd_mm.hooks.sd_hook import SelfDistillHook
from epsd_mm.utils.compat import install as allow_mmengine_checkpoints
from epsd_mm.utils.errors import UserError

from ..distill.helpers import make_class_folders, runner_cfg

# No random augmentation: a resumed run then computes exactly what an uninterrupted one does.
EXACT = dict(augment=False)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    allow_mmengine_checkpoints()  # torch >= 2.6 needs it to resume mmengine checkpoints
    return make_class_folders(str(tmp_path_factory.mktemp('sd_hook_cls')), counts=(4, 4, 4))


class StopAfterFirstEpoch(Hook):
    """Ends the run after its first epoch, as a killed run would (the schedule still says 2)."""

    def after_train_epoch(self, runner):
        runner.train_loop.stop_training = True


def _train(work_dir, data_root, max_epochs, resume=False, stop=False, **kwargs):
    hooks = [StopAfterFirstEpoch()] if stop else []
    cfg = runner_cfg(str(work_dir), data_root, max_epochs=max_epochs, hooks=hooks, **kwargs)
    if resume:
        cfg.update(resume=True, load_from=osp.join(str(work_dir), 'epoch_1.pth'))
    runner = Runner(**cfg)
    runner.train()
    return runner


@pytest.mark.parametrize('method', ['PSKD', 'DLB'])
def test_resume_continues_exactly(method, data_root, tmp_path):
    kwargs = dict(sd=dict(type=method), two_views=method == 'DLB', **EXACT)
    straight = _train(tmp_path / 'straight', data_root, 2, **kwargs)
    _train(tmp_path / 'split', data_root, 2, stop=True, **kwargs)
    assert not osp.exists(tmp_path / 'split' / 'epoch_2.pth')
    saved = torch.load(tmp_path / 'split' / 'epoch_1.pth', map_location='cpu')['self_distill']
    assert saved['type'] == method and saved['world_size'] == 1
    resumed = _train(tmp_path / 'split', data_root, 2, resume=True, **kwargs)

    a, b = straight.model, resumed.model
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    sa, sb = a.sd.state_dict(), b.sd.state_dict()
    if method == 'PSKD':
        assert sa['memory'].shape == (12, 3) and bool(sa['seen'].all())
        assert torch.equal(sa['memory'], sb['memory']) and torch.equal(sa['seen'], sb['seen'])
        assert b.sd.num_samples == 12 and (b.sd.epoch, b.sd.max_epochs) == (1, 2)
        assert b.sd.alpha_t == pytest.approx(0.8)
    else:
        assert all(torch.equal(sa['carry'][k], sb['carry'][k]) for k in sa['carry'])


def test_load_from_without_resume_starts_fresh(data_root, tmp_path):
    kwargs = dict(sd=dict(type='PSKD'), **EXACT)
    _train(tmp_path, data_root, 1, **kwargs)
    cfg = runner_cfg(str(tmp_path / 'ft'), data_root, max_epochs=1, **kwargs)
    cfg.update(load_from=osp.join(str(tmp_path), 'epoch_1.pth'))
    runner = Runner(**cfg)
    runner.load_or_resume()
    assert runner.model.sd.memory is None


def test_plain_model_is_a_noop_with_a_warning(data_root, tmp_path):
    runner = Runner(**runner_cfg(str(tmp_path), data_root, sd=None, max_epochs=1))
    hook = SelfDistillHook()
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint == {} and hook._warned  # warned once, nothing written


def test_cskd_without_pair_sampler_is_refused_before_training(data_root, tmp_path):
    runner = Runner(**runner_cfg(str(tmp_path), data_root, sd=dict(type='CSKD'), max_epochs=1))
    with pytest.raises(UserError, match='ClassPairBatchSampler'):
        runner.train()
