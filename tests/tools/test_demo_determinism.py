"""The demo is deterministic for a fixed seed on one machine: the DLB demo classifier, pruned
at init with epsd and trained through the real Runner with its own data loading (2 workers,
random crops and flips), gives the same masks and bit-identical weights twice."""
import torch
from mmengine.runner import Runner

from tests.tools.test_publish import demo_cls_cfg


def _train(demo_data, work_dir):
    runner = Runner.from_cfg(demo_cls_cfg(demo_data, work_dir, max_iters=4))
    runner.train()
    return torch.load(f'{work_dir}/iter_4.pth', map_location='cpu')


def test_same_seed_same_masks_and_weights(demo_data, tmp_path):
    a = _train(demo_data, str(tmp_path / 'a'))
    b = _train(demo_data, str(tmp_path / 'b'))
    assert a['meta']['seed'] == b['meta']['seed'] == 0
    assert list(a['pruning']['masks']) == list(b['pruning']['masks'])
    assert all(torch.equal(a['pruning']['masks'][n], b['pruning']['masks'][n])
               for n in a['pruning']['masks'])
    assert list(a['state_dict']) == list(b['state_dict'])
    differ = [k for k in a['state_dict'] if not torch.equal(a['state_dict'][k],
                                                             b['state_dict'][k])]
    assert differ == []
    # after 4 SGD steps (the comparison is not between two initial states)
    assert a['meta']['iter'] == b['meta']['iter'] == 4
    assert torch.equal(a['self_distill']['state']['carry']['inputs'],
                       b['self_distill']['state']['carry']['inputs'])
