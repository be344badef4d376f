import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from epsd_mm.pruning import MaskSet
from epsd_mm.utils.errors import UserError

from ..pruning.helpers import runner_cfg, write_class_folders


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return write_class_folders(str(tmp_path_factory.mktemp('cls')))


def _hook(runner):
    return next(h for h in runner.hooks if type(h).__name__ == 'PruningHook')


def _run(cfg):
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return runner


def test_train_keeps_masks_saves_them_and_resume_restores_without_rescoring(data_root,
                                                                               tmp_path):
    work = str(tmp_path / 'run')
    hook = dict(type='PruningHook', criterion='snip', sparsity=0.8, min_kept_per_layer=4)
    runner = _run(runner_cfg(data_root, work, hook, max_epochs=1))
    masks = _hook(runner).masks
    assert _hook(runner).source == 'computed'
    for f in ('masks.pth', 'sparsity.json', 'sparsity.png'):
        assert osp.isfile(osp.join(work, f)), f
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu')
    # plain key names, pruned entries exactly zero, masks beside the state dict
    assert set(ckpt['state_dict']) == set(runner.model.state_dict())
    saved = MaskSet.from_dict(ckpt['pruning'])
    assert saved.equal(masks) and saved.zero_violations(ckpt['state_dict']) == 0
    assert ckpt['pruning']['method'] == 'snip' and ckpt['pruning']['target_sparsity'] == 0.8
    assert abs(ckpt['pruning']['sparsity'] - 0.8) < 2e-3

    # resume to a second epoch with another criterion configured: nothing is recomputed
    hook2 = dict(type='PruningHook', criterion='magnitude', sparsity=0.5)
    runner2 = _run(runner_cfg(data_root, work, hook2, max_epochs=2, resume=True,
                              load_from=osp.join(work, 'epoch_1.pth')))
    assert _hook(runner2).source == 'checkpoint'
    ckpt2 = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu')
    restored = MaskSet.from_dict(ckpt2['pruning'])
    assert restored.checksum() == masks.checksum()
    assert restored.zero_violations(ckpt2['state_dict']) == 0
    # and the kept weights did keep training
    name = masks.names()[3]
    assert not torch.equal(ckpt['state_dict'][name], ckpt2['state_dict'][name])


def test_mask_file_is_used_instead_of_scoring(data_root, tmp_path):
    first = _run(runner_cfg(data_root, str(tmp_path / 'a'),
                            dict(type='PruningHook', criterion='random', sparsity=0.7)))
    file = str(tmp_path / 'a' / 'masks.pth')
    runner = _run(runner_cfg(data_root, str(tmp_path / 'b'),
                             dict(type='PruningHook', mask_file=file)))
    assert _hook(runner).masks.equal(_hook(first).masks)
    assert _hook(runner).masks.zero_violations(runner.model) == 0


def test_mask_file_for_another_model_fails_before_training(data_root, tmp_path):
    torch.save({'masks': {'backbone.conv1.weight': torch.ones(16, 3, 3, 3, dtype=torch.bool)}},
               str(tmp_path / 'other.pth'))
    cfg = runner_cfg(data_root, str(tmp_path / 'c'),
                     dict(type='PruningHook', mask_file=str(tmp_path / 'other.pth')))
    with pytest.raises(UserError, match='mask 16x3x3x3 but parameter 8x3x3x3'):
        _run(cfg)


@pytest.mark.parametrize('sparsity', [0, 1, 1.5, None])
def test_hook_rejects_bad_sparsity(sparsity):
    from epsd_mm.hooks import PruningHook
    with pytest.raises(UserError, match='sparsity'):
        PruningHook(criterion='snip', sparsity=sparsity)


def test_scoring_reads_its_own_batch_size_while_training_reads_another(data_root, tmp_path):
    """score_data: 2-sample scoring batches, 2 per inner step; training keeps its 4."""
    hook = dict(type='PruningHook', criterion=dict(type='prospr', inner_steps=1),
                sparsity=0.8, min_kept_per_layer=4,
                score_data=dict(batch_size=2, num_batches_per_step=2))
    sizes = []

    class Record(Hook):
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            sizes.append(len(data_batch['data_samples']))

    runner = Runner.from_cfg(Config(runner_cfg(data_root, str(tmp_path / 'own'), hook)))
    runner.register_hook(Record())
    runner.train()
    masks = _hook(runner).masks
    # (1 inner step + the scoring step) x 2 batches of 2 samples
    assert masks.extra['batch_sizes'] == [2, 2, 2, 2]
    assert sizes == [4, 4, 4, 4, 4, 4]  # 24 training images, batch 4
    assert abs(masks.sparsity - 0.8) < 2e-3


@pytest.mark.parametrize('score_data, message', [
    (dict(batch_size=0), 'score_data.batch_size must be a positive integer'),
    (dict(batches=2), r"unknown score_data keys \['batches'\]"),
    (dict(dataloader=dict(batch_size=2)), 'score_data.dataloader must be a dataloader config'),
])
def test_hook_rejects_bad_score_data(score_data, message):
    from epsd_mm.hooks import PruningHook
    with pytest.raises(UserError, match=message):
        PruningHook(criterion='snip', sparsity=0.5, score_data=score_data)
