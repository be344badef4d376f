"""What the benchmark measures inside a Runner: iteration times and peak memory.

- Iteration time (:class:`IterTimeProbe`): wall time from ``before_train_iter`` to the end of
  every other hook's ``after_train_iter``: ``model.train_step`` (data preprocessor, forward, SD
  loss, backward, optimizer step, with the masking hooks ``PruningHook`` puts on the optimizer)
  and every hook's ``after_train_iter`` (the probe has the lowest priority). Loading and
  collating the batch is not.
  A second series, ``full``, adds the data loading (from the previous iteration's end to this
  iteration's end, mmengine's ``IterTimerHook`` convention). A third,
  ``step_cpu``, is the process's CPU time over the step interval: with one thread and no
  data-loading workers it equals the wall time on an idle machine, and it stays put when other
  processes take the cores (wall time then includes the time the run waited for a core).
- Peak memory (:class:`MemoryProbe`): on CUDA, ``torch.cuda.max_memory_allocated`` minus the
  allocation when the model is built. On CPU, the growth of the process's peak resident set
  size (``VmHWM`` in ``/proc/self/status``) over the resident size when the model is built; at
  the start of every phase, garbage is collected, freed heap pages are returned to the OS (glibc
  ``malloc_trim``) and the peak is reset by writing ``5`` to ``/proc/self/clear_refs`` (Linux
  >= 4.0). It is resident memory of the whole process (allocator caches and buffers of the
  phase included), which is what a user running out of RAM sees; ``tools/benchmark/run.py``
  measures every run in a freshly forked process so that no earlier run's memory is in it.
"""
import ctypes
import ctypes.util
import gc
import time

import torch
from mmengine.hooks import Hook

_KB = 1024


def _load_libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:
        return None


_LIBC = _load_libc()


def release_free_memory():
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so
    that the resident set at the start of a phase holds only live memory."""
    gc.collect()
    trim = getattr(_LIBC, 'malloc_trim', None)
    if trim is not None:
        trim(0)


def _status_kb(key):
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak memory of a phase: ``start()``, work, ``stop() -> bytes or None``.

    Args:
        device (str): ``'cuda'`` (``torch.cuda.max_memory_allocated``) or ``'cpu'`` (growth of
            the peak RSS, see the module docstring).
    """

    def __init__(self, device='cpu'):
        self.device = device
        self.base = None

    @property
    def what(self):
        if self.device == 'cuda':
            return 'torch.cuda.max_memory_allocated growth over the phase'
        return ('growth of the process peak RSS (VmHWM, reset via /proc/self/clear_refs after '
                'gc and malloc_trim) over its RSS when the model is built, before scoring')

    def start(self):
        """Set the baseline to the current allocation and start watching the peak."""
        self.base = None
        if self.device == 'cuda':
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
        else:
            release_free_memory()
            self.base = _status_kb('VmRSS')
        if not self.restart_peak():
            self.base = None

    def restart_peak(self):
        """Watch a new peak against the same baseline (a phase that follows another)."""
        if self.device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return True
        release_free_memory()
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
        except OSError:
            return False
        return True

    def stop(self):
        """Peak growth over the baseline since the last (re)start, in bytes (None when the
        peak cannot be read here)."""
        if self.base is None:
            return None
        if self.device == 'cuda':
            torch.cuda.synchronize()
            return int(torch.cuda.max_memory_allocated() - self.base)
        peak = _status_kb('VmHWM')
        return None if peak is None else max(peak - self.base, 0) * _KB


class IterTimeProbe(Hook):
    """Record the time of every training iteration (see the module docstring).

    Args:
        sync (bool): synchronize CUDA before reading the clock. Defaults to
            ``torch.cuda.is_available()``.
    """

    priority = 'LOWEST'

    def __init__(self, sync=None):
        self.sync = torch.cuda.is_available() if sync is None else sync
        self.step = []  # model step + hooks after it, per iteration (s)
        self.full = []  # the same plus loading the batch (s)
        self.step_cpu = []  # CPU time of the process over the step interval (s)
        self._t0 = self._t_end = self._c0 = None

    def _now(self):
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def before_train_epoch(self, runner):
        self._t_end = self._now()

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._t0 = self._now()
        self._c0 = time.process_time()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        t = self._now()
        self.step_cpu.append(time.process_time() - self._c0)
        self.step.append(t - self._t0)
        if self._t_end is not None:
            self.full.append(t - self._t_end)
        self._t_end = t


class MemoryProbe(Hook):
    """Peak memory of pruning-at-initialization scoring and of training.

    With the highest priority, the probe takes its baseline before every other hook's
    ``before_train``, when the model is built and initialized and nothing else has run.
    ``scoring`` is the peak growth over that baseline until the first epoch begins, after every
    ``before_train``: ``PruningHook``'s scoring and selection, and its mask reports (a few MB).
    ``training`` is the peak growth over the *same* baseline from there to ``after_train``
    (freed memory is handed back first, so the scoring peak does not carry over), so dense and
    pruned runs are measured alike.

    Args:
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to ``'cpu'``.
    """

    priority = 'HIGHEST'

    def __init__(self, device='cpu'):
        self.meter = PeakMemory(device)
        self.scoring = None
        self.training = None
        self._in_scoring = False

    def before_train(self, runner):
        self.meter.start()
        self._in_scoring = True

    def before_train_epoch(self, runner):
        if self._in_scoring:
            self.scoring = self.meter.stop()
            self._in_scoring = False
            self.meter.restart_peak()

    def after_train(self, runner):
        self.training = self.meter.stop()


class MaskingABProbe(Hook):
    """Time the masked model against itself unmasked, in alternating blocks of iterations.

    ``PruningHook`` keeps pruned weights at zero with the ``MaskSet``'s two hooks on the
    optimizer (``MaskSet.enforce``): that is all the per-iteration work masking adds. After
    ``warmup`` iterations this probe removes those hooks (``MaskSet.release``) and registers them
    again (after re-applying the masks) every ``block`` iterations. The switch happens in
    ``before_train_iter`` ahead of :class:`IterTimeProbe`'s clock (this probe has a higher
    priority), so it is never timed. Off-iterations are the dense model's iterations (the
    compute of a masked model is dense) on the same model, SD state and batch stream,
    interleaved with the on-iterations: the ratio of their times is the masking overhead without
    the run-to-run noise of comparing separate runs. Pruned entries drift from zero during an
    off block and are zeroed again when it ends: only the timing of such a run means anything.

    The masks' two optimizer hooks are also timed directly: in on-blocks they are bracketed by
    timestamp hooks registered just before and just after them (``hook_seconds``, per
    iteration), a measurement of the masking work itself that the noise of whole iterations
    does not reach.

    Args:
        block (int): iterations per block. Defaults to 4.
        warmup (int): iterations before the first switch, left out. Defaults to 5.
    """

    priority = 'LOW'

    def __init__(self, block=4, warmup=5):
        self.block = int(block)
        self.warmup = int(warmup)
        self.on = []  # per iteration: whether masking was on
        self.hook_seconds = []  # per on-iteration after the warm-up: time in the mask hooks
        self._masks = None
        self._state = True
        self._stamps = {}
        self._brackets = []
        self._sync = torch.cuda.is_available()

    def before_train(self, runner):
        hook = next(h for h in runner.hooks if type(h).__name__ == 'PruningHook')
        self._masks = hook.masks
        # re-register the masks' hooks between timestamp hooks (same masks, same work)
        self._set(runner, False)
        self._set(runner, True)

    def _stamp(self, key):
        def record(opt, args, kwargs):
            if self._sync:
                torch.cuda.synchronize()
            self._stamps[key] = time.perf_counter()
        return record

    @staticmethod
    def _optimizers(runner):
        from mmengine.optim import OptimWrapperDict
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if isinstance(wrapper, OptimWrapperDict) else [wrapper]
        return [w.optimizer for w in wrappers]

    def _set(self, runner, on):
        if on == self._state:
            return
        if on:
            model = runner.model.module if hasattr(runner.model, 'module') else runner.model
            opts = self._optimizers(runner)
            # pre-step hooks run in registration order: a, masks, b; post-step: c, masks, d
            for opt in opts:
                self._brackets += [opt.register_step_pre_hook(self._stamp('a')),
                                   opt.register_step_post_hook(self._stamp('c'))]
            self._masks.apply_(model)
            self._masks.enforce(model, opts)
            for opt in opts:
                self._brackets += [opt.register_step_pre_hook(self._stamp('b')),
                                   opt.register_step_post_hook(self._stamp('d'))]
        else:
            self._masks.release()
            for handle in self._brackets:
                handle.remove()
            self._brackets = []
        self._state = on

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        k = len(self.on)
        on = k < self.warmup or ((k - self.warmup) // self.block) % 2 == 0
        self._set(runner, on)
        self.on.append(on)
        self._stamps = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        st = self._stamps
        if len(self.on) > self.warmup and self.on[-1] and len(st) == 4:
            self.hook_seconds.append((st['b'] - st['a']) + (st['d'] - st['c']))

    def after_train(self, runner):
        # PruningHook (higher priority) has released the masks' hooks already
        if not self._state:  # ended in an off block: pruned entries are zero again
            model = runner.model.module if hasattr(runner.model, 'module') else runner.model
            self._masks.apply_(model)
        for handle in self._brackets:
            handle.remove()
        self._brackets = []

    def split(self, series):
        """``(on, off)`` values of a per-iteration series after the warm-up."""
        pairs = list(zip(self.on, series))[self.warmup:]
        return [v for on, v in pairs if on], [v for on, v in pairs if not on]
