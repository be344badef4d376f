"""The Runner glue of self-distillation: the epoch and dataset size for the SD method, and its
state (PS-KD's memory, DLB's carried batch) into and out of checkpoints."""
import logging

from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..distill.classifier import SDImageClassifier
from ..distill.methods import CSKD
from ..distill.samplers import ClassPairBatchSampler
from ..utils.errors import UserError

#: Top-level checkpoint key of the SD method's state.
CHECKPOINT_KEY = 'self_distill'


@HOOKS.register_module()
class SelfDistillHook(Hook):
    """Keep an ``SDImageClassifier``'s self-distillation method in step with the Runner.

    - ``before_train``: ``sd.set_num_samples(len(train dataset))`` (PS-KD sizes its memory with
      it); for CS-KD, checks that the train dataloader uses ``ClassPairBatchSampler``.
    - ``before_train_epoch``: ``sd.set_epoch(runner.epoch, runner.max_epochs)`` (0-based epoch;
      PS-KD's alpha_t follows it).
    - ``before_save_checkpoint``: the method's state under the top-level key ``self_distill``:
      ``dict(type=<method class name>, world_size=<processes>, state=sd.state_dict())``.
      Checkpoints are written by rank 0, so they hold rank 0's state: PS-KD's memory is the same
      on every rank, DLB's carry is rank 0's.
    - ``after_load_checkpoint``: on a resume (as mmengine's ``EMAHook``, not on a plain
      ``load_from``), restores the state, and logs it. A DLB carry is restored only in a
      single-process run: with several processes each rank had its own, so every rank restarts
      it (logged). A checkpoint without the entry, or with another method's, starts fresh (logged).

    With a model that is not an ``SDImageClassifier`` the hook does nothing (with a warning).
    Model wrappers (DDP) are unwrapped.
    """

    priority = 'NORMAL'

    def __init__(self):
        self._warned = False

    def _sd(self, runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        if not isinstance(model, SDImageClassifier):
            if not self._warned:
                print_log(f'SelfDistillHook: the model is a {type(model).__name__}, not an '
                          'SDImageClassifier; the hook does nothing', logger='current',
                          level=logging.WARNING)
                self._warned = True
            return None
        return model.sd

    def before_train(self, runner):
        sd = self._sd(runner)
        if sd is None:
            return
        dataloader = runner.train_loop.dataloader
        sd.set_num_samples(len(dataloader.dataset))
        if isinstance(sd, CSKD) and not isinstance(
                getattr(dataloader, 'batch_sampler', None), ClassPairBatchSampler):
            raise UserError('CS-KD trains on same-class pairs: set '
                            "train_dataloader.batch_sampler=dict(type='ClassPairBatchSampler')")
        if sd.uses_epochs and runner.max_epochs <= 1 and runner.max_iters > len(dataloader):
            print_log(f'SelfDistillHook: {type(sd).__name__} follows epochs, but the train loop '
                      'is iteration-based: its schedule stays at the first epoch value',
                      logger='current', level=logging.WARNING)

    def before_train_epoch(self, runner):
        sd = self._sd(runner)
        if sd is not None:
            sd.set_epoch(runner.epoch, runner.max_epochs)

    def before_save_checkpoint(self, runner, checkpoint):
        sd = self._sd(runner)
        if sd is None:
            return
        checkpoint[CHECKPOINT_KEY] = dict(type=type(sd).__name__,
                                          world_size=get_dist_info()[1],
                                          state=sd.state_dict())

    def after_load_checkpoint(self, runner, checkpoint):
        sd = self._sd(runner)
        if sd is None or not runner._resume:
            return
        name = type(sd).__name__
        entry = checkpoint.get(CHECKPOINT_KEY)
        if entry is None:
            print_log(f'SelfDistillHook: the checkpoint has no `{CHECKPOINT_KEY}` entry; '
                      f'{name} starts with an empty state', logger='current',
                      level=logging.WARNING)
            return
        if entry.get('type') != name:
            print_log(f'SelfDistillHook: the checkpoint holds {entry.get("type")} state, the '
                      f'model trains with {name}; {name} starts with an empty state',
                      logger='current', level=logging.WARNING)
            return
        world_size = get_dist_info()[1]
        if sd.per_rank_state and world_size > 1:
            sd.load_state_dict({})
            print_log(f'SelfDistillHook: {name} state is per rank and checkpoints hold rank 0\'s '
                      f'only; with {world_size} processes every rank restarts it (the first '
                      'iteration after resuming trains on CE alone)', logger='current',
                      level=logging.WARNING)
            return
        sd.load_state_dict(entry['state'])
        print_log(f'SelfDistillHook: restored the {name} state from the checkpoint',
                  logger='current')
