"""Run the benchmark: every training run in its own forked process, a few at a time.

Each run is one real mmengine ``Runner`` (built from :func:`~.configs.runner_cfg`) that trains,
prunes through ``PruningHook`` when asked, and tests with mmpretrain's ``Accuracy``. Runs are
executed in processes *forked* from the orchestrating process, which has already imported
torch, mmengine, mmpretrain and epsd_mm: a run starts in milliseconds (no interpreter start-up,
no imports), every run starts from the same clean state (no logger, visualizer or allocator
state left by the previous run), and each run's peak memory is its own process's. ``jobs`` runs
execute at once, each with one intra-op thread: at this network's size one thread per run on
each core is faster than two threads on one run, and it does not collapse when other processes
share the cores (two OpenMP threads spin-waiting for a descheduled partner made one iteration
60 times slower on a loaded 2-core machine).

A run writes its result as JSON (atomically) and its log into ``<out>/logs``; the orchestrator
prints one line per finished run and stops at the first failure, with the log's tail.
"""
import hashlib
import json
import multiprocessing
import os
import os.path as osp
import re
import shutil
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait

from mmengine.logging import print_log

from ..utils.errors import UserError
from ..utils.io import atomic_json_dump
from .configs import BenchSetting, runner_cfg
from .probes import IterTimeProbe, MaskingABProbe, MemoryProbe


@dataclass(frozen=True)
class RunSpec:
    """One training run.

    Args:
        method (str): ``'dense'`` or a pruning criterion.
        sd (str): the SD method (``'dlb'``, ``'cskd'``, ``'pskd'``) or ``'none'``.
        sparsity (float): the pruning target; 0 for dense runs.
        seed (int): the Runner's seed.
        epochs (int): training epochs.
        phase (str): ``'sweep'`` (accuracy) or ``'cost'`` (timing, memory). Defaults to
            ``'sweep'``.
        index (int): position in its phase (cost runs of the same method are repeated).
            Defaults to 0.
        ab_block (int): for a pruned cost run, switch masking off and on every ``ab_block``
            iterations to time masked against unmasked iterations (:class:`MaskingABProbe`);
            0 never switches. Defaults to 0.
        iters (int): train for this many iterations instead of ``epochs`` epochs (the cost
            runs of a large data set), keeping the full run's learning-rate schedule; 0 trains
            ``epochs`` epochs. Defaults to 0.
    """
    method: str
    sd: str
    sparsity: float
    seed: int
    epochs: int
    phase: str = 'sweep'
    index: int = 0
    ab_block: int = 0
    iters: int = 0

    @property
    def key(self):
        """A file-name-safe unique name of the run.

        Accuracy runs are named by what they are (method, SD, sparsity, seed), not by their
        position in a plan, so a later sweep with more methods finds and reuses them; a method
        spec with options (``epsd:inner_lr=0.01``) adds a digest of its exact text, so two specs
        never share a name. Cost runs keep their position (dense ones repeat).
        """
        sparsity = f'{self.sparsity:g}'.replace('.', 'p')
        method = re.sub(r'[^A-Za-z0-9]+', '_', self.method).strip('_')
        if method != self.method:
            method += '-' + hashlib.sha1(self.method.encode()).hexdigest()[:8]
        where = self.phase if self.phase == 'sweep' else f'{self.phase}{self.index:03d}'
        return f'{where}-{method}-{self.sd}-s{sparsity}-seed{self.seed}'

    @property
    def label(self):
        sd = 'no SD' if self.sd == 'none' else self.sd.upper()
        what = 'dense' if self.method == 'dense' else f'{self.method} @ {self.sparsity:g}'
        return f'{what} + {sd}, seed {self.seed}'


#: what ``order='targets'`` runs first: the configurations the issue's targets compare
TARGET_METHODS = ('dense', 'snip', 'prospr', 'epsd')
TARGET_SPARSITIES = (0.0, 0.98, 0.99)


def _tier(spec, first_sd):
    """0: dense and the first SD method's snip/prospr/epsd at 0.98 and 0.99; 1: the same for
    the other SD methods; 2: everything else."""
    if spec.method.split(':')[0] not in TARGET_METHODS or \
            not any(abs(spec.sparsity - s) < 1e-9 for s in TARGET_SPARSITIES):
        return 2
    return 0 if spec.sd in ('none', first_sd) else 1


def plan_sweep(grid, seeds, epochs, dense=True, order='seed'):
    """The accuracy runs: per seed, dense without SD and dense with each SD method of ``grid``
    (unless ``dense=False``), then every (SD method, sparsity, method) of ``grid``.

    Args:
        grid (list[tuple[str, list[str], list[float]]]): ``(sd, methods, sparsities)`` per SD
            method.
        seeds (list[int]): the seeds.
        epochs (int): training epochs.
        dense (bool): include the dense runs. Defaults to True.
        order (str): ``'seed'``: seed-major, so a sweep cut short holds every configuration
            for its first seeds; ``'targets'``: the configurations the targets compare first
            (dense and snip/prospr/epsd at 0.98 and 0.99, the first SD method before the
            others), each tier seed-major, so a sweep cut short holds those for every seed.
            Defaults to ``'seed'``.
    """
    if order not in ('seed', 'targets'):
        raise UserError(f"order must be 'seed' or 'targets', got {order!r}")
    specs = []
    for seed in seeds:
        if dense:
            specs.append(RunSpec('dense', 'none', 0.0, seed, epochs))
            specs += [RunSpec('dense', sd, 0.0, seed, epochs) for sd, _, _ in grid]
        for sd, methods, sparsities in grid:
            for sparsity in sparsities:
                for method in methods:
                    specs.append(RunSpec(method, sd, float(sparsity), seed, epochs))
    if order == 'targets':
        first = grid[0][0]
        specs = [s for _, s in sorted(enumerate(specs),
                                      key=lambda x: (_tier(x[1], first), x[0]))]
    return [RunSpec(**dict(asdict(s), index=i)) for i, s in enumerate(specs)]


def plan_cost(methods, sparsity, sd, epochs, seed=0, ab_block=4, iters=0):
    """The cost runs, one at a time: dense SD runs interleaved with one pruned run per method
    (``D m1 m2 D m3 m4 D ...``), so that a slow drift of the machine's speed reaches dense and
    masked runs alike; every pruned run also times its own iterations with masking switched off
    and on in blocks of ``ab_block`` (:class:`MaskingABProbe`)."""
    specs = [RunSpec('dense', sd, 0.0, seed, epochs, 'cost', iters=iters)]
    for i in range(0, len(methods), 2):
        for method in methods[i:i + 2]:
            specs.append(RunSpec(method, sd, float(sparsity), seed, epochs, 'cost',
                                 ab_block=ab_block, iters=iters))
        specs.append(RunSpec('dense', sd, 0.0, seed, epochs, 'cost', iters=iters))
    return [RunSpec(**dict(asdict(s), index=i)) for i, s in enumerate(specs)]


# ---------------------------------------------------------------------- one run (in the child)
def _mean(values):
    return statistics.fmean(values) if values else None


def _median(values):
    return statistics.median(values) if values else None


def weights_digest(model):
    """SHA-1 of every parameter and buffer after training: equal digests, bit-equal models."""
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to('cpu').contiguous().numpy().tobytes())
    return h.hexdigest()


def _utc_now():
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def run_one(spec, setting, data, work_dir, warmup=5, keep_times=False):
    """Train, prune (when ``spec.method`` is a criterion) and test one model in this process.

    Returns:
        dict: ``method, sd, sparsity, seed, top1`` and the measurements: ``prune_seconds``
        (``MaskSet.extra['seconds']``), ``measured_sparsity``, ``rescued`` (layers kept alive by
        ``min_kept_per_layer``), ``zero_violations`` (pruned weights not exactly 0 after
        training: must be 0), ``iter_step_seconds`` / ``iter_full_seconds`` (means after
        ``warmup`` iterations), ``memory_scoring_bytes`` / ``memory_training_bytes``,
        ``train_seconds``, ``test_seconds``, ``cpu_seconds``.
    """
    import torch
    from mmengine.runner import Runner

    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    timer, memory = IterTimeProbe(), MemoryProbe(device)
    pruned = spec.method != 'dense'
    probes = [timer, memory]
    ab = None
    if pruned and spec.ab_block > 0:
        ab = MaskingABProbe(block=spec.ab_block, warmup=warmup)
        probes.append(ab)
    cfg = runner_cfg(setting, data, work_dir, spec.seed,
                     sd=None if spec.sd == 'none' else spec.sd,
                     criterion=spec.method if pruned else None,
                     sparsity=spec.sparsity if pruned else None, epochs=spec.epochs,
                     max_iters=spec.iters or None, name=spec.key, extra_hooks=probes)
    cpu0, t0 = time.process_time(), time.perf_counter()
    runner = Runner(**cfg)
    runner.train()
    t1 = time.perf_counter()
    # a cost run measures time and memory only: its accuracy after a few iterations means
    # nothing, and testing it would only lengthen the serial cost phase
    metrics = runner.test() if spec.phase != 'cost' else {'accuracy/top1': None}
    t2 = time.perf_counter()
    hook = next((h for h in runner.hooks if type(h).__name__ == 'PruningHook'), None)
    masks = hook.masks if hook is not None else None
    step, full, cpu = timer.step[warmup:], timer.full[warmup:], timer.step_cpu[warmup:]
    ab_result = {}
    if ab is not None:
        # the run's own numbers are its masked iterations; the off ones are its A/B partner
        (step, step_off), (cpu, cpu_off) = ab.split(timer.step), ab.split(timer.step_cpu)
        full = ab.split(timer.full)[0]
        ab_result = dict(ab_block=spec.ab_block, ab_on_iterations=len(step),
                         ab_off_iterations=len(step_off),
                         ab_on_seconds=_mean(step), ab_off_seconds=_mean(step_off),
                         ab_on_cpu_seconds=_mean(cpu), ab_off_cpu_seconds=_mean(cpu_off),
                         mask_hook_seconds=_mean(ab.hook_seconds),
                         mask_hook_iterations=len(ab.hook_seconds))
    result = dict(
        asdict(spec), key=spec.key,
        top1=None if metrics['accuracy/top1'] is None else float(metrics['accuracy/top1']),
        mask_digest=masks.checksum() if masks is not None else None,
        weights_digest=weights_digest(runner.model),
        measured_sparsity=masks.sparsity if masks is not None else 0.0,
        prune_seconds=float(masks.extra['seconds']) if masks is not None else None,
        rescued=list(masks.extra.get('rescued', [])) if masks is not None else [],
        zero_violations=masks.zero_violations(runner.model) if masks is not None else 0,
        iterations=len(timer.step), warmup=warmup,
        iter_step_seconds=_mean(step), iter_full_seconds=_mean(full),
        iter_step_median=_median(step), iter_full_median=_median(full),
        iter_step_cpu_seconds=_mean(cpu),
        memory_scoring_bytes=memory.scoring, memory_training_bytes=memory.training,
        memory_what=memory.meter.what, device=device,
        train_seconds=t1 - t0, test_seconds=t2 - t1, cpu_seconds=time.process_time() - cpu0,
        **ab_result)
    if keep_times:
        result.update(iter_step_all=timer.step, iter_full_all=timer.full,
                      iter_step_cpu_all=timer.step_cpu)
    return result


def _child(spec, ctx):
    """Entry of a forked run: one thread, output into the run's log, result into JSON."""
    log = osp.join(ctx['log_dir'], f'{spec.key}.log')
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 0
    try:
        import torch
        torch.set_num_threads(ctx['threads'])
        work_dir = osp.join(ctx['scratch'], spec.key)
        result = run_one(spec, BenchSetting(**ctx['setting']), ctx['data'], work_dir,
                         warmup=ctx['warmup'], keep_times=spec.phase == 'cost')
        result.update(setting=ctx['setting'], code_version=ctx.get('code_version'),
                      finished_at=_utc_now())
        atomic_json_dump(result, osp.join(ctx['result_dir'], f'{spec.key}.json'))
        if not ctx['keep_work_dirs']:
            shutil.rmtree(work_dir, ignore_errors=True)
    except BaseException as e:  # reported to the parent through the error file
        code = 3
        traceback.print_exc()
        atomic_json_dump(dict(type=type(e).__name__, message=str(e),
                              user_error=isinstance(e, UserError)),
                         osp.join(ctx['result_dir'], f'{spec.key}.error.json'))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no atexit handlers of the parent's state in the child


# ---------------------------------------------------------------------- orchestration
def _tail(path, lines=30):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''


def _reusable(spec, ctx):
    """A finished result of ``spec`` in the result directory, made with the same setting."""
    path = osp.join(ctx['result_dir'], f'{spec.key}.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        result = json.load(f)
    # an accuracy run's position in its plan does not matter (its key says what it is)
    ignore = ('index', ) if spec.phase == 'sweep' else ()
    same = all(result.get(k) == v for k, v in asdict(spec).items() if k not in ignore)
    return result if same and _same_setting(result, ctx) else None


def _same_setting(result, ctx):
    # compared as JSON holds it (tuples come back as lists)
    return result.get('setting') == json.loads(json.dumps(ctx['setting']))


def finished_runs(ctx, phase='sweep'):
    """Every finished run of ``phase`` in the result directory made with the sweep's setting:
    what an earlier invocation (other methods, other SD methods) left there."""
    found = []
    if not osp.isdir(ctx['result_dir']):
        return found
    for name in sorted(os.listdir(ctx['result_dir'])):
        if not name.endswith('.json') or name.endswith('.error.json'):
            continue
        with open(osp.join(ctx['result_dir'], name)) as f:
            result = json.load(f)
        if result.get('phase') == phase and _same_setting(result, ctx):
            found.append(result)
    return found


def execute(specs, ctx, jobs=1, title='runs', resume=False, run_missing=True):
    """Run ``specs`` in forked processes, ``jobs`` at a time; return their results in order.

    Args:
        specs (list[RunSpec]): the runs.
        ctx (dict): ``setting`` (dict of :class:`BenchSetting`), ``data``, ``scratch``,
            ``log_dir``, ``result_dir``, ``threads``, ``warmup``, ``keep_work_dirs``.
        jobs (int): runs at once. Defaults to 1.
        title (str): name of the phase in the progress lines.
        resume (bool): reuse the result of a run found in the result directory when it was
            made for the same run and setting (an interrupted sweep). Defaults to False.
        run_missing (bool): run the specs without a reusable result; False returns only the
            reused results (a report of what an interrupted sweep finished). Defaults to True.
    """
    for d in (ctx['scratch'], ctx['log_dir'], ctx['result_dir']):
        os.makedirs(d, exist_ok=True)
    mp = multiprocessing.get_context('fork')
    results = {}
    pending = []
    for spec in specs:
        found = _reusable(spec, ctx) if resume else None
        if found is None:
            pending.append(spec)
        else:
            results[spec.key] = dict(found, reused=True)
    if results:
        print_log(f'[{title}] reusing {len(results)} finished runs', logger='current')
    if not run_missing:
        if pending:
            print_log(f'[{title}] {len(pending)} planned runs are not finished and are left '
                      f'out: {", ".join(s.key for s in pending)}', logger='current')
        return [results[s.key] for s in specs if s.key in results]
    running = {}  # sentinel -> (process, spec, start time)
    start = time.perf_counter()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                spec = pending.pop(0)
                for suffix in ('.json', '.error.json'):
                    path = osp.join(ctx['result_dir'], spec.key + suffix)
                    if osp.exists(path):
                        os.remove(path)
                proc = mp.Process(target=_child, args=(spec, ctx), name=spec.key)
                proc.start()
                running[proc.sentinel] = (proc, spec, time.perf_counter())
            for sentinel in wait(list(running)):
                proc, spec, t0 = running.pop(sentinel)
                proc.join()
                results[spec.key] = _collect(proc, spec, ctx)
                r = results[spec.key]
                extra = '' if r['prune_seconds'] is None else \
                    f', masks in {r["prune_seconds"]:.2f}s'
                top1 = '' if r['top1'] is None else f'top1 {r["top1"]:.2f} '
                print_log(f'[{title} {len(results)}/{len(specs)}] {spec.label}: {top1}'
                          f'({time.perf_counter() - t0:.0f}s, CPU {r["cpu_seconds"]:.0f}s'
                          f'{extra}; {time.perf_counter() - start:.0f}s elapsed)',
                          logger='current')
    finally:
        for proc, _, _ in running.values():  # only on an error or an interrupt
            proc.terminate()
            proc.join()
    return [results[s.key] for s in specs]


def _collect(proc, spec, ctx):
    path = osp.join(ctx['result_dir'], f'{spec.key}.json')
    error = osp.join(ctx['result_dir'], f'{spec.key}.error.json')
    log = osp.join(ctx['log_dir'], f'{spec.key}.log')
    if proc.exitcode == 0 and osp.isfile(path):
        with open(path) as f:
            return json.load(f)
    if osp.isfile(error):
        with open(error) as f:
            err = json.load(f)
        if err.get('user_error'):
            raise UserError(f'run {spec.label} failed: {err["message"]} (log: {log})')
        raise RuntimeError(f'run {spec.label} failed with {err["type"]}: {err["message"]}\n'
                           f'log {log}, last lines:\n{_tail(log)}')
    raise RuntimeError(f'run {spec.label} died with exit code {proc.exitcode} (killed for '
                       f'memory?); log {log}, last lines:\n{_tail(log)}')


# ---------------------------------------------------------------------- the whole benchmark
def prepare_data(setting, root):
    """Write or unpack the sweep's data set once, in the parent, before any run is forked.

    Returns:
        dict: ``root`` (absolute), ``description`` (for ``results.json``), ``counts``, and for
        Fashion-MNIST the fixed ``train_indices`` / ``val_indices`` into its training file.
    """
    root = osp.abspath(root)
    if setting.data == 'digits':
        from .digits import prepare_digits
        info = prepare_digits(root)
        counts = dict(info['counts'], evaluated=info['counts']['test'])
        return dict(root=root, counts=counts, description=(
            f"scikit-learn digits (sklearn.datasets.load_digits: 1,797 real 8x8 greyscale "
            f"images, 10 classes), stratified split train_test_split(test_size=0.2, "
            f"stratify=y, random_state=0): {counts['train']} train / {counts['test']} test "
            f"PNGs in class folders, read by mmpretrain CustomDataset"))
    from .fashion import fashion_info, prepare_fashion
    prepare_fashion(root)
    info = fashion_info(root, setting.train_images, setting.val_images,
                        eval_split=setting.eval_split)
    c = info['counts']
    evaluated = (f"the whole official test set ({c['test']} images)"
                 if setting.eval_split == 'test' else
                 f"a validation split of {c['val']} training images (stratified, seed 0, "
                 f"disjoint from the training subset); the test set is not read")
    info.update(root=root, description=(
        f"Fashion-MNIST (Zalando; the four official IDX files, read by mmpretrain's "
        f"FashionMNIST with download=False): a fixed stratified training subset of "
        f"{c['train']} of the 60,000 training images (seed 0), evaluated on {evaluated}"))
    return info


def _git_version():
    import subprocess
    here = osp.dirname(osp.abspath(__file__))
    try:
        out = subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=here,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _grid_of(runs, grid):
    """The grid the report shows: the planned one, extended by what merged runs add (methods
    and sparsities of earlier invocations); the known criteria in :data:`~.configs.CRITERIA`
    order, then the others (variants) in plan order, then first appearance."""
    out = {sd: (list(methods), list(sparsities)) for sd, methods, sparsities in grid}
    for r in runs:
        if r['method'] == 'dense':
            continue
        methods, sparsities = out.setdefault(r['sd'], ([], []))
        if r['method'] not in methods:
            methods.append(r['method'])
        if not any(abs(r['sparsity'] - x) < 1e-9 for x in sparsities):
            sparsities.append(r['sparsity'])
    from .configs import CRITERIA

    def order(item):  # the known criteria in their table order, then the others as they came
        pos, method = item
        return (CRITERIA.index(method), 0) if method in CRITERIA else (len(CRITERIA), pos)

    return [dict(sd=sd, methods=[x for _, x in sorted(enumerate(m), key=order)],
                 sparsities=sorted(float(x) for x in sp)) for sd, (m, sp) in out.items()]


def run_benchmark(out_dir, data_root, grid, seeds, setting, jobs=2, cost_epochs=3,
                  cost_iters=0, warmup=5, ab_block=4, keep_work_dirs=False, resume=False,
                  dense=True, cost=True, order='seed', report_only=False, command=''):
    """Prepare the data, run the accuracy sweep and the cost phase, write the outputs.

    Args:
        out_dir (str): where ``results.json``, ``results.md``, the plot, ``runs/`` (one JSON per
            run) and ``logs/`` go.
        data_root (str): the data set directory (digits: written when missing; Fashion-MNIST:
            the official files are unpacked into it, :func:`~.fashion.prepare_fashion`).
        grid (list[tuple[str, list[str], list[float]]]): ``(sd, methods, sparsities)`` per SD
            method; the first SD method is the one of the cost phase.
        seeds (list[int]): the seeds of every configuration.
        setting (BenchSetting): data, network, schedule, pruning guard.
        jobs (int): accuracy runs at once. Defaults to 2.
        cost_epochs (int): epochs of each cost run. Defaults to 3.
        cost_iters (int): iterations of each cost run instead of ``cost_epochs`` (0: epochs).
            Defaults to 0.
        warmup (int): iterations left out of the timing means. Defaults to 5.
        ab_block (int): block length of the masked/unmasked interleaving in the pruned cost
            runs (:class:`MaskingABProbe`). Defaults to 4.
        keep_work_dirs (bool): keep each run's Runner work_dir. Defaults to False.
        resume (bool): reuse the finished runs in ``out_dir`` (same run and setting; see
            :func:`execute`), and report every finished run of the same setting found there,
            so an invocation with other methods adds rows to the same ``results.json`` (runs
            of other seeds than ``seeds`` are left out). Defaults to False.
        dense (bool): include the dense runs in the accuracy sweep. Defaults to True.
        cost (bool): run the cost phase. Defaults to True.
        order (str): the order of the accuracy runs (:func:`plan_sweep`). Defaults to
            ``'seed'``.
        report_only (bool): run nothing; report the finished runs of the plan found in
            ``out_dir`` (implies ``resume``). Defaults to False.
        command (str): the command line, recorded in the outputs.

    Returns:
        dict: the ``results.json`` document.
    """
    import datetime

    import torch

    from ..registry import CRITERIA, build_checked
    from .configs import SD_METHODS
    from .report import evaluate_targets, summarize_cost, write_outputs

    resume = resume or report_only

    torch.set_num_threads(1)
    startup_cpu = time.process_time()  # this process so far: interpreter and imports
    start = time.perf_counter()
    started_at = _utc_now()
    load_start = _loadavg()
    data = prepare_data(setting, data_root)
    ctx = dict(setting=setting.as_dict(),
               data={k: data[k] for k in ('root', 'train_indices', 'val_indices') if k in data},
               scratch=osp.join(out_dir, 'work'), log_dir=osp.join(out_dir, 'logs'),
               result_dir=osp.join(out_dir, 'runs'), threads=1, warmup=warmup,
               keep_work_dirs=keep_work_dirs, code_version=_git_version())
    cost_sd, cost_methods, cost_sparsities = grid[0]
    cost_runs = []
    cost_start = time.perf_counter()
    if cost:
        cost_specs = plan_cost(cost_methods, max(cost_sparsities), cost_sd, cost_epochs,
                               ab_block=ab_block, iters=cost_iters)
        print_log(f'benchmark: cost phase, {len(cost_specs)} runs one at a time',
                  logger='current')
        cost_runs = execute(cost_specs, ctx, jobs=1, title='cost', resume=resume,
                            run_missing=not report_only)
        if resume:
            planned = {r['key'] for r in cost_runs}
            seen = {r['method'] for r in cost_runs}
            cost_runs += [dict(r, reused=True, merged=True)
                          for r in finished_runs(ctx, 'cost')
                          if r['key'] not in planned and r['method'] not in seen
                          and r['sd'] == cost_sd]
    cost_seconds = time.perf_counter() - cost_start
    sweep = plan_sweep(grid, seeds, setting.epochs, dense=dense, order=order)
    n_pruned = sum(len(m) * len(s) for _, m, s in grid)
    print_log(f'benchmark ({setting.data}, evaluated on {setting.eval_split}): {len(sweep)} '
              f'accuracy runs ({n_pruned} pruned configurations over '
              f'{", ".join(sd for sd, _, _ in grid)}{" + dense" if dense else ""}, x '
              f'{len(seeds)} seeds), {jobs} at a time; logs in {ctx["log_dir"]}',
              logger='current')
    runs = execute(sweep, ctx, jobs=jobs, title='accuracy', resume=resume,
                   run_missing=not report_only)
    sweep_seconds = time.perf_counter() - start - cost_seconds
    if resume:  # rows of earlier invocations with the same setting and seeds
        planned = {r['key'] for r in runs}
        runs += [dict(r, reused=True, merged=True) for r in finished_runs(ctx)
                 if r['key'] not in planned and r['seed'] in seeds]
    if not keep_work_dirs and not report_only:  # another invocation may be running there
        shutil.rmtree(ctx['scratch'], ignore_errors=True)
    epsd = build_checked(CRITERIA, 'epsd', 'pruning criterion')
    full_grid = _grid_of(runs, grid)
    methods = list(dict.fromkeys(m for g in full_grid for m in g['methods']))
    sparsities = sorted({s for g in full_grid for s in g['sparsities']})
    doc = dict(
        dataset=data['description'],
        data=setting.data,
        eval_split=setting.eval_split,
        counts=data['counts'],
        model=setting.model_name(),
        sd=grid[0][0],
        sd_methods=[g['sd'] for g in full_grid],
        sd_config={g['sd']: SD_METHODS[g['sd']]['sd'] for g in full_grid},
        grid=full_grid,
        seeds=list(seeds),
        sparsities=sparsities,
        methods=methods,
        setting=setting.as_dict(),
        date=datetime.date.today().isoformat(),
        command=command,
        code_version=ctx['code_version'],
        runs=runs,
        cost_runs=[{k: v for k, v in r.items() if not k.endswith('_all')} for r in cost_runs],
        cost=summarize_cost(cost_runs, cost_methods, epsd.inner_steps)
        if any(r['method'] != 'dense' for r in cost_runs) else None,
    )
    sweep_cpu = sum(r['cpu_seconds'] for r in runs if not r.get('reused'))
    cost_cpu = sum(r['cpu_seconds'] for r in cost_runs if not r.get('reused'))
    own_cpu = time.process_time()  # the orchestrator: imports, data, reports
    fresh = [r for r in runs if not r.get('reused')]
    doc['timing'] = dict(
        started_at=started_at, finished_at=_utc_now(),
        wall_seconds=time.perf_counter() - start, sweep_seconds=sweep_seconds,
        cost_seconds=cost_seconds,
        jobs=jobs, threads=1, cpu_count=os.cpu_count(),
        load_average_start=load_start, load_average_end=_loadavg(),
        startup_cpu_seconds=startup_cpu, sweep_cpu_seconds=sweep_cpu,
        cost_cpu_seconds=cost_cpu, orchestrator_cpu_seconds=own_cpu,
        # what the same work takes when nothing else runs: the sweep's CPU time spread over
        # `jobs` cores, the serial parts after one another
        idle_estimate_seconds=own_cpu + sweep_cpu / jobs + cost_cpu,
        fresh_runs=len(fresh),
        run_wall_seconds=_stats([r['train_seconds'] + r['test_seconds'] for r in fresh]),
        run_cpu_seconds=_stats([r['cpu_seconds'] for r in fresh]),
        reused_runs=sum(1 for r in runs + cost_runs if r.get('reused')),
        planned_runs=len(sweep), missing_runs=[s.key for s in sweep
                                               if s.key not in {r['key'] for r in runs}],
        full_sweep_idle_estimate_seconds=_full_sweep_estimate(sweep, runs, cost_runs, jobs))
    doc['targets'] = evaluate_targets(doc)
    paths = write_outputs(doc, out_dir)
    print_log(f'benchmark: done in {doc["timing"]["wall_seconds"] / 60:.1f} min; '
              f'{paths["md"]}, {paths["json"]}, {paths["png"]}', logger='current')
    return doc


def _full_sweep_estimate(sweep, runs, cost_runs, jobs):
    """Wall seconds of the whole planned sweep and its cost phase on ``jobs`` idle cores, from
    the CPU time of the finished runs (fresh or reused): a missing run counts as the mean of the
    finished runs with its SD method and kind (dense or pruned), else of all finished runs."""
    done = {r['key']: r for r in runs}
    if not done:
        return None
    groups = {}
    for r in done.values():
        groups.setdefault((r['sd'], r['method'] == 'dense'), []).append(r['cpu_seconds'])
    overall = statistics.fmean(r['cpu_seconds'] for r in done.values())
    total = 0.0
    for spec in sweep:
        if spec.key in done:
            total += done[spec.key]['cpu_seconds']
        else:
            group = groups.get((spec.sd, spec.method == 'dense'))
            total += statistics.fmean(group) if group else overall
    return total / jobs + sum(r['cpu_seconds'] for r in cost_runs)


def _stats(values):
    """``{n, mean, median, min, max}`` of per-run seconds (None when there are none)."""
    if not values:
        return None
    return dict(n=len(values), mean=statistics.fmean(values), median=statistics.median(values),
                min=min(values), max=max(values))


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
