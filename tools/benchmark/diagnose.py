"""Why do two criteria score alike or differently? Masks of the benchmark's setting, no training.

For every seed, method and sparsity the real Runner of the benchmark (same model, data, seed and
``PruningHook``) is built and stopped right after the masks are computed. The tool writes
``diagnose.json`` and ``diagnose.md`` into ``--out``:

- pairwise overlap of the kept weights (Jaccard: kept by both / kept by either), mean over seeds:
  two criteria whose masks overlap almost entirely cannot differ much in accuracy;
- the kept fraction of every layer (mean over seeds), and the layers ``min_kept_per_layer``
  kept alive;
- for criteria that score with the model's SD loss (``epsd``), the loss terms of every call
  during scoring (``loss_cls`` and ``loss_sd_<method>``, mean over seeds): how much of the
  scored loss is the SD term.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict, defaultdict

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from epsd_mm.utils.errors import UserError, check_sparsity, cli_main  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Compare the masks of pruning criteria in the benchmark's setting (no "
        'training): overlap between criteria, kept fraction per layer, and the SD loss terms '
        'EPSD scores with.',
        epilog='example: python tools/benchmark/diagnose.py --methods snip prospr epsd '
        '"epsd:inner_steps=1" --sparsities 0.98 0.99',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=osp.join('work_dirs', 'bench', 'diagnose'),
                        help='output directory (default: work_dirs/bench/diagnose)')
    parser.add_argument('--data', default='digits', choices=['digits', 'fashion'],
                        help="the benchmark's data set and its network (default: digits)")
    parser.add_argument('--data-root',
                        help='the digits class folders (default: data/bench/digits) or the '
                        'Fashion-MNIST files (default: data/fashion-mnist)')
    parser.add_argument('--sd', default='dlb', choices=['dlb', 'cskd', 'pskd'],
                        help='self-distillation method of the model (default: dlb)')
    parser.add_argument('--seeds', type=int, default=3, help='number of seeds (default: 3)')
    parser.add_argument('--sparsities', type=float, nargs='+', default=[0.98, 0.99],
                        help='pruning targets (default: 0.98 0.99)')
    parser.add_argument('--methods', nargs='+', default=['snip', 'prospr', 'epsd'],
                        help='criteria or variants such as epsd:inner_steps=1 '
                        '(default: snip prospr epsd)')
    parser.add_argument('--width', type=int,
                        help='ResNet_CIFAR-18 stem/base channels (default: the data set\'s '
                        'benchmark network, digits 16, Fashion-MNIST 8)')
    return parser.parse_args(argv)


def _masks_of(setting, data, work_dir, seed, sd, method, sparsity):
    """The masks the benchmark's run would train with, and the SD loss terms seen in scoring."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from epsd_mm.benchmark.configs import runner_cfg

    class StopAfterPruning(Hook):
        priority = 'LOWEST'  # after PruningHook.before_train: the masks exist

        def before_train(self, runner):
            runner.train_loop.stop_training = True

    cfg = runner_cfg(setting, data, work_dir, seed, sd=sd, criterion=method,
                     sparsity=sparsity, name=f'diag-{seed}-{method}-{sparsity}',
                     extra_hooks=[StopAfterPruning()])
    runner = Runner(**cfg)
    calls = []
    sd_method = runner.model.sd
    original = sd_method.loss

    def recording_loss(model, inputs, data_samples):
        losses = original(model, inputs, data_samples)
        if sd_method.scoring_mode:
            calls.append({k: float(v.detach()) for k, v in losses.items()})
        return losses

    sd_method.loss = recording_loss  # instance attribute: observes, changes nothing
    try:
        runner.train()
    finally:
        del sd_method.loss
    hook = next(h for h in runner.hooks if type(h).__name__ == 'PruningHook')
    return hook.masks, calls


@cli_main
def main(argv=None):
    args = parse_args(argv)
    sparsities = [check_sparsity(s, '--sparsities value') for s in args.sparsities]
    if args.seeds < 1:
        raise UserError('--seeds must be >= 1')
    import torch
    torch.set_num_threads(1)

    import epsd_mm  # noqa: F401
    import epsd_mm.distill  # noqa: F401
    import epsd_mm.hooks.sd_hook  # noqa: F401
    from epsd_mm.benchmark.configs import SETTINGS, BenchSetting
    from epsd_mm.benchmark.sweep import prepare_data
    from epsd_mm.utils.io import atomic_json_dump, atomic_write_text

    fields = dict(SETTINGS[args.data], data=args.data)
    if args.width is not None:
        fields['width'] = args.width
    setting = BenchSetting(**fields)
    if args.data_root is None:
        args.data_root = osp.join('data', 'bench', 'digits') if args.data == 'digits' else \
            osp.join('data', 'fashion-mnist')
    data = prepare_data(setting, args.data_root)
    masks = {}  # (seed, method, sparsity) -> MaskSet
    losses = defaultdict(list)  # method -> list of per-seed call lists
    for seed in range(args.seeds):
        for sparsity in sparsities:
            for method in args.methods:
                m, calls = _masks_of(setting, data, osp.join(args.out, 'work'), seed,
                                     args.sd, method, sparsity)
                masks[seed, method, sparsity] = m
                if calls and sparsity == sparsities[0]:
                    losses[method].append(calls)
                print(f'seed {seed} {method} @ {sparsity:g}: {m.extra["seconds"]:.2f}s, '
                      f'rescued {len(m.extra.get("rescued", []))} layers', flush=True)
    doc = dict(sd=args.sd, seeds=args.seeds, sparsities=sparsities, methods=args.methods,
               overlap={}, layers={}, rescued={}, scoring_losses={})
    lines = [f'# Mask diagnostics ({args.data}, {args.sd.upper()}, {args.seeds} seeds, width '
             f'{setting.width})',
             '']
    for s in sparsities:
        table = OrderedDict()
        for a in args.methods:
            table[a] = OrderedDict(
                (b, sum(masks[k, a, s].jaccard(masks[k, b, s]) for k in range(args.seeds))
                 / args.seeds) for b in args.methods)
        doc['overlap'][f'{s:g}'] = table
        lines += [f'## Overlap of kept weights (Jaccard, mean over seeds) at sparsity {s:g}', '',
                  '| | ' + ' | '.join(args.methods) + ' |',
                  '|---|' + '---|' * len(args.methods)]
        lines += [f'| {a} | ' + ' | '.join(f'{v:.3f}' for v in row.values()) + ' |'
                  for a, row in table.items()]
        names = masks[0, args.methods[0], s].names()
        per_layer = OrderedDict()
        for a in args.methods:
            per_layer[a] = OrderedDict(
                (n, sum(float(masks[k, a, s][n].float().mean()) for k in range(args.seeds))
                 / args.seeds) for n in names)
            doc['rescued'][f'{a}@{s:g}'] = sorted(
                {n for k in range(args.seeds) for n in masks[k, a, s].extra.get('rescued', [])})
        doc['layers'][f'{s:g}'] = per_layer
        lines += ['', f'## Kept fraction per layer at sparsity {s:g} (mean over seeds)', '',
                  '| layer | size | ' + ' | '.join(args.methods) + ' |',
                  '|---|---|' + '---|' * len(args.methods)]
        for n in names:
            size = masks[0, args.methods[0], s][n].numel()
            lines.append(f'| {n} | {size} | ' + ' | '.join(
                f'{per_layer[a][n]:.4f}' for a in args.methods) + ' |')
        lines.append('')
    for method, runs in losses.items():
        steps = len(runs[0])
        mean = [OrderedDict((k, sum(r[i][k] for r in runs) / len(runs)) for k in runs[0][i])
                for i in range(steps)]
        doc['scoring_losses'][method] = mean
        lines += [f'## Loss terms while {method} scores (mean over seeds; the last call is the '
                  'scoring step)', '', '| call | ' + ' | '.join(mean[0]) + ' |',
                  '|---|' + '---|' * len(mean[0])]
        lines += [f'| {i + 1} | ' + ' | '.join(f'{v:.4f}' for v in row.values()) + ' |'
                  for i, row in enumerate(mean)]
        lines.append('')
    atomic_write_text('\n'.join(lines), osp.join(args.out, 'diagnose.md'))
    atomic_json_dump(doc, osp.join(args.out, 'diagnose.json'))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
