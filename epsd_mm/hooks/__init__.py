from .checkpoint_hook import AtomicCheckpointHook, CheckpointFitHook, use_atomic_checkpoints
from .loss_check_hook import FiniteLossHook, use_finite_loss_check
from .pruning_hook import PruningHook
from .sd_hook import SelfDistillHook

__all__ = ['AtomicCheckpointHook', 'CheckpointFitHook', 'FiniteLossHook', 'PruningHook',
           'SelfDistillHook', 'use_atomic_checkpoints', 'use_finite_loss_check']
