from .api import compute_masks, preserved_state
from .masks import CHECKPOINT_KEY, MaskSet
from .report import format_table, report_dict, write_reports
from .scorers import (
                      EPSD,
                      SNIP,
                      BaseCriterion,
                      GraSP,
                      MagnitudeCriterion,
                      ProsPr,
                      RandomCriterion,
                      SynFlow,
)
from .selection import prunable_parameters, select_masks

__all__ = [
    'MaskSet', 'CHECKPOINT_KEY', 'compute_masks', 'preserved_state', 'prunable_parameters',
    'select_masks', 'format_table', 'report_dict', 'write_reports', 'BaseCriterion',
    'RandomCriterion', 'MagnitudeCriterion', 'SNIP', 'GraSP', 'SynFlow', 'ProsPr', 'EPSD'
]
