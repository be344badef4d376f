"""The accuracy-against-sparsity benchmark on scikit-learn's digits (``make bench``)."""
from .configs import CRITERIA, SD_METHODS, BenchSetting, runner_cfg
from .digits import prepare_digits
from .probes import IterTimeProbe, MemoryProbe, PeakMemory

__all__ = ['BenchSetting', 'CRITERIA', 'SD_METHODS', 'IterTimeProbe', 'MemoryProbe',
           'PeakMemory', 'prepare_digits', 'runner_cfg']
