"""``ClassPairBatchSampler``: CS-KD's batches, every sample followed by a same-class partner."""
import math

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.registry import DATA_SAMPLERS
from torch.utils.data import BatchSampler

from ..utils.errors import UserError


@DATA_SAMPLERS.register_module()
class ClassPairBatchSampler(BatchSampler):
    """Batches ``[i_1..i_B, p_1..p_B]`` where ``p_k`` is a random other training sample of the
    class of ``i_k`` (``i_k`` itself when its class has one sample), as CS-KD trains on.

    The primary indices ``i_k`` come from the wrapped sampler (mmengine's ``DefaultSampler``:
    shuffled per epoch and sharded over the ranks, so under DDP each rank gets its own primary
    samples); the partners are drawn from the whole training set. A batch therefore holds
    ``2 * batch_size`` samples. The partners are drawn from a generator seeded with
    ``(seed, epoch, rank)``: the same epoch gives the same batches, a resumed run included.

    In a config (mmengine's Runner passes ``sampler`` and ``batch_size``)::

        train_dataloader = dict(
            batch_size=64,                   # primary samples per batch (x2 with partners)
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_sampler=dict(type='ClassPairBatchSampler'))

    Labels come from ``dataset.get_gt_labels()`` (mmpretrain datasets) or, failing that,
    ``dataset.get_cat_ids(i)``. mmengine calls ``set_epoch`` on ``batch_sampler.sampler`` (the
    wrapped sampler); the epoch is read from there.

    Args:
        sampler (Sampler): the sampler of primary indices; it must have a ``dataset``
            attribute (``DefaultSampler`` has).
        batch_size (int): primary samples per batch.
        drop_last (bool): drop the last incomplete batch. Defaults to False.
        seed (int, optional): seed of the partner draws; None takes the wrapped sampler's
            ``seed`` (the Runner's, identical on every rank) or a seed synchronized across
            ranks. Defaults to None.
    """

    def __init__(self, sampler, batch_size, drop_last=False, seed=None):
        # BatchSampler.__init__ only validates and stores; the attributes it sets are set here.
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise UserError(f'ClassPairBatchSampler: batch_size must be a positive integer, '
                            f'got {batch_size!r}')
        if getattr(sampler, 'dataset', None) is None:
            raise UserError('ClassPairBatchSampler needs a sampler with a `dataset` attribute, '
                            "e.g. sampler=dict(type='DefaultSampler', shuffle=True)")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        if seed is None:
            seed = getattr(sampler, 'seed', None)
        if seed is None:
            seed = sync_random_seed()
        self.seed = int(seed) % 2**32
        self._epoch = 0
        self._groups = None

    def _build_groups(self):
        """Class groups: indices sorted by label, each class's start and size, and every
        index's position within its class."""
        dataset = self.sampler.dataset
        if hasattr(dataset, 'get_gt_labels'):
            labels = np.asarray(dataset.get_gt_labels())
        elif hasattr(dataset, 'get_cat_ids'):
            labels = [dataset.get_cat_ids(i) for i in range(len(dataset))]
            if any(len(c) != 1 for c in labels):
                raise UserError('ClassPairBatchSampler needs single-label data')
            labels = np.asarray([c[0] for c in labels])
        else:
            raise UserError(f'ClassPairBatchSampler needs the labels of the training set: '
                            f'{type(dataset).__name__} has neither get_gt_labels() nor '
                            'get_cat_ids()')
        if labels.ndim != 1 or labels.dtype.kind not in 'iu':
            raise UserError('ClassPairBatchSampler needs one integer label per sample '
                            '(single-label classification)')
        order = np.argsort(labels, kind='stable')
        classes, starts, counts = np.unique(labels[order], return_index=True,
                                            return_counts=True)
        slot = np.searchsorted(classes, labels)
        position = np.empty(len(labels), dtype=np.int64)
        position[order] = np.arange(len(labels)) - np.repeat(starts, counts)
        self._groups = (order, starts[slot], counts[slot], position)

    def _partners(self, batch, rng):
        order, start, count, position = self._groups
        idx = np.asarray(batch, dtype=np.int64)
        n = count[idx]
        # uniform over the n - 1 other members: draw k in [0, n - 1), skip the sample's own slot
        k = np.floor(rng.random(len(idx)) * np.maximum(n - 1, 1)).astype(np.int64)
        k = k + (k >= position[idx])
        partner = order[start[idx] + np.minimum(k, n - 1)]
        return np.where(n > 1, partner, idx).tolist()

    def __iter__(self):
        if self._groups is None:
            self._build_groups()
        epoch = getattr(self.sampler, 'epoch', self._epoch)
        rank, _ = get_dist_info()
        rng = np.random.default_rng([self.seed, int(epoch), rank])
        batch = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield batch + self._partners(batch, rng)
                batch = []
        if batch and not self.drop_last:
            yield batch + self._partners(batch, rng)

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return math.ceil(len(self.sampler) / self.batch_size)

    def set_epoch(self, epoch):
        """Set the epoch here and on the wrapped sampler."""
        self._epoch = int(epoch)
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)
