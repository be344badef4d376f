from .pruning_hook import PruningHook
from .sd_hook import SelfDistillHook

__all__ = ['PruningHook', 'SelfDistillHook']
