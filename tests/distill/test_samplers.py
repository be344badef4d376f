"""ClassPairBatchSampler: same-class partners, determinism per epoch, disjoint ranks."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from mmengine.dataset import DefaultSampler
from mmengine.registry import DATA_SAMPLERS
from mmpretrain.datasets import CustomDataset

from epsd_mm.distill import ClassPairBatchSampler

from .helpers import make_class_folders

COUNTS = (5, 1, 4, 2)  # class 1 has a single sample


def _dataset(root):
    return CustomDataset(data_root=root)


def _check_pairs(batches, labels, batch_size):
    primaries = []
    for batch in batches:
        b = len(batch) // 2
        assert len(batch) == 2 * b and b <= batch_size
        first, second = batch[:b], batch[b:]
        primaries += first
        for i, p in zip(first, second):
            assert labels[i] == labels[p]
            if np.sum(labels == labels[i]) > 1:
                assert p != i
            else:
                assert p == i
    return primaries


def test_pairs_are_same_class_and_deterministic_per_epoch(tmp_path):
    ds = _dataset(make_class_folders(str(tmp_path), COUNTS))
    labels = ds.get_gt_labels()
    sampler = DefaultSampler(ds, shuffle=True, seed=3)
    bs = DATA_SAMPLERS.build(dict(type='ClassPairBatchSampler'),
                             default_args=dict(sampler=sampler, batch_size=5))
    assert isinstance(bs, ClassPairBatchSampler) and bs.seed == 3
    epoch0 = list(bs)
    assert len(epoch0) == len(bs) == 3 and [len(b) for b in epoch0] == [10, 10, 4]
    assert sorted(_check_pairs(epoch0, labels, 5)) == list(range(len(ds)))
    assert list(bs) == epoch0  # same epoch, same batches
    sampler.set_epoch(1)  # what mmengine does (on batch_sampler.sampler)
    epoch1 = list(bs)
    assert epoch1 != epoch0
    _check_pairs(epoch1, labels, 5)
    bs.set_epoch(0)
    assert list(bs) == epoch0 and sampler.epoch == 0
    dropped = ClassPairBatchSampler(sampler, 5, drop_last=True)
    assert len(dropped) == 2 and [len(b) for b in dropped] == [10, 10]


def _rank_main(rank, root, init_file, out):
    torch.set_num_threads(1)  # a forked child must not enter its parent's OpenMP pool
    torch_dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                                  world_size=2)
    try:
        ds = _dataset(root)
        sampler = DefaultSampler(ds, shuffle=True, seed=0)
        batches = list(ClassPairBatchSampler(sampler, batch_size=2))
        with open(osp.join(out, f'rank{rank}.json'), 'w') as f:
            json.dump(batches, f)
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_two_ranks_get_disjoint_primaries_with_same_class_pairs(tmp_path):
    root = make_class_folders(str(tmp_path / 'data'), COUNTS)  # 12 samples: 6 per rank
    # fork: the children inherit the imported modules (spawn would re-import mmpretrain)
    mp.start_processes(_rank_main, args=(root, str(tmp_path / 'init'), str(tmp_path)),
                       nprocs=2, start_method='fork')
    labels = _dataset(root).get_gt_labels()
    per_rank = [_check_pairs(json.loads((tmp_path / f'rank{r}.json').read_text()), labels, 2)
                for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1]) == 6
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == list(range(12))
