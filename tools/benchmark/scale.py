"""Peak memory and time of pruning-at-init scoring at ImageNet scale, against a training iteration.

For the ResNet-50 ImageNet config (``configs/classification/imagenet/epsd_dlb_r50_imagenet.py``:
an ``SDImageClassifier`` with DLB, 1000 classes, the hook's EPSD settings) at ``--input-size``
pixels, every measurement runs in a fresh subprocess that builds the model, then does one thing:

- ``train``: one training iteration (forward + backward + SGD step) of the DLB loss, measured
  after a first one that gives DLB its previous batch (the steady state);
- a row per criterion and mode: ``snip``, ``prospr`` and ``epsd`` scoring, i.e. the
  criterion's ``score()`` inside ``preserved_state`` as ``compute_masks`` runs it
  (``meta_mode='unrolled'``, the reference, and ``'bounded'``, the memory-bounded one;
  ``--micro-batches`` adds bounded rows with micro-batches); the global top-k selection that
  follows is the same for every criterion and batch size and is measured once (``selection``);
- ``ranks``: ``epsd`` (bounded) scored by one process on ``B`` samples per step (the bounded
  ``epsd`` row at ``B``, the same measurement) and by two gloo processes on ``2B`` (``B``
  each), one thread each, at the smallest batch.

Peak memory is measured above the built model: on CPU the child's peak RSS (``ru_maxrss`` from
``wait4``) minus its RSS once the model is built; on a GPU ``torch.cuda.max_memory_allocated``
minus the allocation after the build. Batches are synthetic 8-bit images through the model's
data preprocessor (two views per sample for DLB), so data loading is not measured. Every
measurement uses ``--threads`` threads (default 1). The result, with the machine's load
average before and after, goes to ``--out`` (default ``work_dirs/bench/scale.json``),
rewritten after every measurement, and a table with the ratios is printed.
"""
import argparse
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from epsd_mm.utils.errors import UserError, cli_main  # noqa: E402

CONFIG = osp.join('configs', 'classification', 'imagenet', 'epsd_dlb_r50_imagenet.py')
MARK = 'SCALE_RESULT '


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Measure peak memory (above the built model) and time of a training '
        'iteration and of snip / prospr / epsd scoring (unrolled and memory-bounded) on the '
        'ResNet-50 ImageNet config, each in a fresh subprocess; write a JSON file.',
        epilog='example: python tools/benchmark/scale.py --batches 2 4 --input-size 224',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=CONFIG, help=f'config (default: {CONFIG})')
    parser.add_argument('--batches', type=int, nargs='+', default=[2, 4],
                        help='samples per step (per rank) to measure (default: 2 4)')
    parser.add_argument('--input-size', type=int, default=224, help='pixels (default: 224)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads of every measurement (default: 1)')
    parser.add_argument('--micro-batches', type=int, default=None,
                        help='also measure bounded epsd with every batch cut into this many '
                        'micro-batches (micro_batch = ceil(batch / K))')
    parser.add_argument('--inner-steps-also', type=int, nargs='*', default=[],
                        help='also measure epsd (both modes) at these inner step counts, at the '
                        'smallest batch')
    parser.add_argument('--criteria', nargs='+', default=['snip', 'prospr', 'epsd'],
                        choices=['snip', 'prospr', 'epsd'],
                        help='criteria to measure (default: snip prospr epsd)')
    parser.add_argument('--modes', nargs='+', default=['unrolled', 'bounded'],
                        choices=['unrolled', 'bounded'],
                        help='meta-gradient modes of prospr and epsd (default: both)')
    parser.add_argument('--skip-ranks', action='store_true', help='no ranks rows')
    parser.add_argument('--out', default=osp.join('work_dirs', 'bench', 'scale.json'),
                        help='output JSON (default: work_dirs/bench/scale.json)')
    parser.add_argument('--measure', help=argparse.SUPPRESS)  # internal: one measurement
    return parser.parse_args(argv)


# ---------------------------------------------------------------------- the child
def _rss_bytes():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('no VmRSS in /proc/self/status')


def _build(spec):
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    import epsd_mm  # noqa: F401
    cfg = Config.fromfile(spec['config'])
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    hook = next(h for h in cfg.custom_hooks if h['type'] == 'PruningHook')
    if torch.cuda.is_available():
        model = model.cuda()
    return cfg, model, dict(hook['criterion'])


def _data(model, batch, size, seed, rank=0):
    """A batch as ``multiview_collate`` gives it: 2 x batch uint8 images, ``batch`` samples."""
    import torch
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    views = 2 if type(model.sd).__name__ == 'DLB' else 1
    imgs = torch.randint(0, 256, (views * batch, 3, size, size), generator=g, dtype=torch.uint8)
    samples = []
    for i in range(batch):
        ds = DataSample().set_gt_label(int(torch.randint(0, 1000, (1, ), generator=g)))
        ds.set_metainfo(dict(sample_idx=(seed * 2 + rank) * batch + i))
        samples.append(ds)
    return dict(inputs=list(imgs), data_samples=samples)


def _measure(spec):
    import torch
    torch.set_num_threads(spec['threads'])
    world = spec.get('world_size', 1)
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group('gloo')
    cfg, model, criterion = _build(spec)
    rank = int(os.environ.get('RANK', 0))
    batch, size = spec['batch'], spec['input_size']
    steps = spec.get('options', {}).get('inner_steps', criterion.get('inner_steps', 3))
    data = [_data(model, max(batch, 1), size, k, rank) for k in range(steps + 2)]
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    if spec['what'] == 'train':
        from mmengine.optim import build_optim_wrapper
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        model.train()
        for k in range(2):  # the first gives DLB its previous batch
            if k == 1:
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
            losses = model(**model.data_preprocessor(data[k], training=True), mode='loss')
            loss, _ = model.parse_losses(losses)
            wrapper.update_params(loss)
    elif spec['what'] == 'select':
        from epsd_mm.pruning import prunable_parameters, select_masks
        scores = {n: p.detach().abs() for n, p in prunable_parameters(model).items()}
        start = time.perf_counter()
        select_masks(scores, 0.8, 'global', min_kept_per_layer=1)
    else:
        # what compute_masks does before selecting: the criterion's score() on the model,
        # which preserved_state snapshots and restores
        from epsd_mm.pruning import preserved_state, prunable_parameters
        from epsd_mm.pruning.api import iterate_batches
        from epsd_mm.registry import CRITERIA, build_checked
        criterion.update(type=spec['criterion'], **spec.get('options', {}))
        if spec['criterion'] == 'snip':
            criterion = dict(type='snip')
        crit = build_checked(CRITERIA, criterion, 'pruning criterion')
        crit.distributed = world > 1
        params = prunable_parameters(model)
        start = time.perf_counter()
        with preserved_state(model, 'train'):
            crit.score(model, params, iterate_batches(model, data), 0.8, 'global')
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    out = dict(seconds=seconds, base_bytes=base)
    if cuda:
        out['peak_bytes'] = torch.cuda.max_memory_allocated() - base
    print(MARK + json.dumps(out), flush=True)


# ---------------------------------------------------------------------- the parent
def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run_one(spec):
    env = dict(os.environ, OMP_NUM_THREADS=str(spec['threads']), PYTHONPATH=ROOT)
    cmd = [sys.executable, osp.abspath(__file__), '--measure', json.dumps(spec)]
    procs = []
    world = spec.get('world_size', 1)
    port = str(_free_port())
    for rank in range(world):
        e = dict(env)
        if world > 1:
            e.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                     MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
        out = open(osp.join(_LOGS, f'{_tag(spec)}_rank{rank}.log'), 'w+')
        procs.append((subprocess.Popen(cmd, env=e, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=ROOT), out))
    results = []
    for proc, out in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
        out.close()
        lines = [ln for ln in text.splitlines() if ln.startswith(MARK)]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f'measurement {spec} failed (exit {proc.returncode}):\n'
                               f'{text[-3000:]}')
        result = json.loads(lines[-1][len(MARK):])
        if 'peak_bytes' not in result:
            result['peak_bytes'] = usage.ru_maxrss * 1024 - result['base_bytes']
        results.append(result)
    return dict(seconds=max(r['seconds'] for r in results),
                peak_bytes=max(r['peak_bytes'] for r in results))


_LOGS = None


def _tag(spec):
    opts = '_'.join(f'{k}{v}' for k, v in sorted(spec.get('options', {}).items()))
    return f"{spec['what']}_{spec.get('criterion', '')}_{opts}_b{spec['batch']}" \
           f"_w{spec.get('world_size', 1)}"


def _load():
    return [round(x, 2) for x in os.getloadavg()]


def _plan(args):
    """(section, spec) of every measurement, the most telling first (a run cut short by a
    timeout keeps them): training at every batch; epsd at the smallest batch; the ranks; the
    other criteria at the smallest batch; then the larger batches; then other inner steps."""
    base = dict(config=args.config, input_size=args.input_size, threads=args.threads)
    batches = sorted(set(args.batches))

    def score(crit, b, mode, **options):
        if crit != 'snip':
            options['meta_mode'] = mode
        return ('rows', dict(base, what='score', criterion=crit, batch=b, mode=mode,
                             options=options))

    def criteria(b, names):
        out = []
        for crit in [c for c in names if c in args.criteria]:
            if crit == 'snip':
                out.append(score('snip', b, 'unrolled'))
                continue
            out += [score(crit, b, mode) for mode in args.modes]
            if crit == 'epsd' and args.micro_batches and 'bounded' in args.modes:
                out.append(score('epsd', b, 'bounded', micro_batch=-(-b // args.micro_batches)))
        return out

    plan = [('selection', dict(base, what='select', batch=0))]
    plan += [('train', dict(base, what='train', batch=b)) for b in batches]
    plan += criteria(batches[0], ['epsd'])
    if not args.skip_ranks:
        plan += [('ranks', dict(base, what='score', criterion='epsd', batch=batches[0],
                                world_size=world, mode='bounded',
                                options=dict(meta_mode='bounded'))) for world in (1, 2)]
    plan += criteria(batches[0], ['snip', 'prospr'])
    for b in batches[1:]:
        plan += criteria(b, ['epsd', 'snip', 'prospr'])
    for steps in args.inner_steps_also:
        plan += [score('epsd', batches[0], mode, inner_steps=steps) for mode in args.modes]
    return plan


def _row(section, spec, measured):
    if section == 'selection':
        return dict(measured)
    if section == 'train':
        return dict(batch=spec['batch'], **measured)
    if section == 'ranks':
        return dict(world_size=spec['world_size'], batch=spec['batch'] * spec['world_size'],
                    threads=spec['threads'], seconds=measured['seconds'],
                    criterion=spec['criterion'], mode=spec['mode'],
                    peak_bytes=measured['peak_bytes'],
                    same_measurement_as_row=measured.get('same_measurement_as_row', False))
    row = dict(criterion=spec['criterion'], mode=spec['mode'], batch=spec['batch'], **measured)
    for key in ('micro_batch', 'inner_steps'):
        if key in spec.get('options', {}):
            row[key] = spec['options'][key]
    return row


def _gb(value):
    return '' if value is None else f'{value / 1e9:.2f}'


def _ratio(a, b, digits=1):
    return '' if a is None or not b else f'{a / b:.{digits}f}'


def _table(result):
    """The Markdown table of a result, ratios against the training iteration at that batch."""
    train = {r['batch']: r for r in result['train']}
    lines = ['| criterion | mode | batch | seconds | x train iter | peak GB above model | '
             'x train peak |', '| --- | --- | --- | --- | --- | --- | --- |']
    sel = result.get('selection')
    if sel:
        lines.append(f"| selection (global top-k, any criterion) | | | "
                     f"{_ratio(sel['seconds'], 1)} | | "
                     f"{_gb(sel['peak_bytes'])} | |")
    for r in result['train']:
        lines.append(f"| train iteration | | {r['batch']} | {_ratio(r['seconds'], 1)} | 1.0 | "
                     f"{_gb(r['peak_bytes'])} | 1.00 |")
    for r in result['rows']:
        t = train.get(r['batch'], {})
        what = r['mode'] + (f", micro-batch {r['micro_batch']}" if 'micro_batch' in r else '') \
            + (f", {r['inner_steps']} inner steps" if 'inner_steps' in r else '')
        lines.append(f"| {r['criterion']} | {what} | {r['batch']} | {_ratio(r['seconds'], 1)} | "
                     f"{_ratio(r['seconds'], t.get('seconds'))} | {_gb(r['peak_bytes'])} | "
                     f"{_ratio(r['peak_bytes'], t.get('peak_bytes'), 2)} | "
                     + (f"error: {r['error']}" if r.get('error') else ''))
    ranks = result['ranks']
    for r in ranks:
        rel = _ratio(r['seconds'], ranks[0]['seconds'], 2)
        lines.append(f"| {r['criterion']} ({r['mode']}) on {r['world_size']} rank(s), "
                     f"{r['threads']} thread each | | {r['batch']} in all | "
                     f"{_ratio(r['seconds'], 1)} | {rel} x 1 rank | | |")
    return '\n'.join(lines)


@cli_main
def main(argv=None):
    global _LOGS
    args = parse_args(argv)
    if args.measure:
        return _measure(json.loads(args.measure))
    if not osp.isfile(osp.join(ROOT, args.config)) and not osp.isfile(args.config):
        raise UserError(f'config file {args.config} does not exist')
    if any(b < 1 for b in args.batches) or args.threads < 1 or args.input_size < 32:
        raise UserError('--batches and --threads must be >= 1 and --input-size >= 32')
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    hook = next((h for h in cfg.get('custom_hooks', []) if h.get('type') == 'PruningHook'),
                None)
    if hook is None:
        raise UserError(f'{args.config} has no PruningHook (its criterion is measured)')
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    _LOGS = osp.join(out_dir, 'scale_logs')
    os.makedirs(_LOGS, exist_ok=True)
    import torch
    result = dict(model='ResNet-50 SDImageClassifier (DLB), ' + args.config,
                  input_size=args.input_size,
                  inner_steps=dict(hook['criterion']).get('inner_steps', 3),
                  device='cuda' if torch.cuda.is_available() else 'cpu',
                  peak='cuda max_memory_allocated above the built model'
                  if torch.cuda.is_available() else 'peak RSS (ru_maxrss) above the built model',
                  date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                  command=' '.join(['python', 'tools/benchmark/scale.py'] + (argv or sys.argv[1:])),
                  load_before=_load(), selection=None, train=[], rows=[], ranks=[])
    from epsd_mm.utils.io import atomic_json_dump
    done = {}
    for section, spec in _plan(args):
        started = time.time()
        if _tag(spec) in done:  # one rank scoring B is the epsd bounded row at B
            measured = dict(done[_tag(spec)], same_measurement_as_row=True)
        else:
            try:
                measured = _run_one(spec)
            except RuntimeError as e:  # recorded, and the run goes on (e.g. out of memory)
                print(e, file=sys.stderr, flush=True)
                measured = dict(seconds=None, peak_bytes=None, error=str(e).splitlines()[0])
            done[_tag(spec)] = measured
        row = _row(section, spec, measured)
        row['load_during'] = _load()
        if section == 'selection':
            result[section] = row
        else:
            result[section].append(row)
        result['load_after'] = _load()
        atomic_json_dump(result, args.out)
        print(f'{_tag(spec)}: {measured["seconds"]}s, peak {measured["peak_bytes"]} B '
              f'({time.time() - started:.0f}s wall)', flush=True)
    print(_table(result))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
