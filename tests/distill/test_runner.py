"""Each SD method trains through a real mmengine Runner on tiny class folders; DLB's previous
batch is the previous iteration's, across the epoch boundary too."""
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

import epsd_mm.hooks.sd_hook  # noqa: F401  (registers SelfDistillHook)

from .helpers import classifier_cfg, make_class_folders, runner_cfg


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_class_folders(str(tmp_path_factory.mktemp('sd_cls')), counts=(4, 4, 4))


METHODS = {
    'cskd': dict(sd=dict(type='CSKD'), pair_sampler=True),
    'pskd': dict(sd=dict(type='PSKD'), val=True),
    'dlb': dict(sd=dict(type='DLB'), two_views=True),
}


@pytest.mark.parametrize('name', sorted(METHODS))
def test_trains_logs_sd_term_and_saves_plain_checkpoint(name, data_root, tmp_path):
    kwargs = METHODS[name]
    runner = Runner(**runner_cfg(str(tmp_path), data_root, **kwargs))
    runner.train()
    hub = runner.message_hub
    assert hub.get_scalar('train/loss_cls').current() > 0
    sd_loss = hub.get_scalar(f'train/loss_sd_{name}')
    assert sd_loss.current() > 0 and len(sd_loss.data[0]) == 6  # 2 epochs x 3 iterations
    ckpt = torch.load(osp.join(str(tmp_path), 'epoch_2.pth'), map_location='cpu',
                      weights_only=False)
    assert ckpt['self_distill']['type'] == name.upper()
    plain = MODELS.build(classifier_cfg(None))
    plain.load_state_dict(ckpt['state_dict'], strict=True)
    if kwargs.get('val'):
        assert 0.0 <= hub.get_scalar('val/accuracy/top1').current() <= 100.0


class CarryRecorder(Hook):
    """Records DLB's carry before and after every iteration, and the batch it trained on."""

    def __init__(self):
        self.before, self.after = [], []

    @staticmethod
    def _copy(carry):
        return None if carry is None else {k: v.clone() for k, v in carry.items()}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.before.append(self._copy(runner.model.sd.carry))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = runner.model
        data = model.data_preprocessor(data_batch, True)
        b = len(data['data_samples'])
        self.after.append(dict(
            epoch=runner.epoch, view2=data['inputs'][b:].clone(),
            labels=torch.cat([ds.gt_label for ds in data['data_samples']]),
            carry=self._copy(model.sd.carry), loss_sd=outputs['loss_sd_dlb'].item()))


def test_dlb_previous_batch_is_the_previous_iterations_across_epochs(data_root, tmp_path):
    recorder = CarryRecorder()
    runner = Runner(**runner_cfg(str(tmp_path), data_root, sd=dict(type='DLB'), two_views=True,
                                 hooks=[recorder]))
    runner.train()
    epochs = [a['epoch'] for a in recorder.after]
    assert epochs == [0, 0, 0, 1, 1, 1]
    assert recorder.before[0] is None and recorder.after[0]['loss_sd'] == 0.0
    for k, after in enumerate(recorder.after):
        # the carry is this iteration's second view and labels ...
        assert torch.equal(after['carry']['inputs'], after['view2'])
        assert torch.equal(after['carry']['labels'], after['labels'])
        if k + 1 < len(recorder.after):
            # ... and the next iteration (k = 2 -> 3 crosses the epoch boundary) starts with it
            nxt = recorder.before[k + 1]
            assert all(torch.equal(nxt[key], after['carry'][key]) for key in nxt)
            assert recorder.after[k + 1]['loss_sd'] > 0
