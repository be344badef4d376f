"""``make bench``: accuracy against sparsity on scikit-learn's digits, and what pruning costs.

Every run trains one real mmengine Runner (mmpretrain ``CustomDataset`` + pipeline,
``ImageClassifier`` / ``SDImageClassifier``, ``PruningHook``, ``SelfDistillHook``, mmpretrain's
``Accuracy``). See docs/benchmark.md for the setting, the results and what they mean.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from epsd_mm.utils.errors import UserError, check_sparsity, cli_main  # noqa: E402

FULL = dict(seeds=3, sparsities=[0.9, 0.95, 0.98, 0.99],
            methods=['random', 'snip', 'grasp', 'synflow', 'prospr', 'epsd'], epochs=10,
            cost_epochs=3)
QUICK = dict(seeds=1, sparsities=[0.98], methods=['snip', 'epsd'], epochs=1, cost_epochs=1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark pruning at initialization + self-distillation on real data '
        "(scikit-learn's 8x8 digits, written once as class folders): top-1 of dense training "
        'without and with SD, and of every criterion pruned at every sparsity then trained with '
        'the same SD method, over several seeds; plus the training-iteration time of dense and '
        'masked models, the time and peak memory of each criterion\'s mask computation. '
        'Writes results.json, results.md and accuracy_vs_sparsity.png into --out.',
        epilog='examples:\n  python tools/benchmark/run.py              # the full sweep '
        '(make bench)\n  python tools/benchmark/run.py --quick      # 1 seed, snip and epsd '
        'at 0.98, 1 epoch\n  python tools/benchmark/run.py --sd cskd --seeds 5 '
        '--sparsities 0.98 0.99 --methods snip prospr epsd',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 1 seed, criteria snip and epsd, sparsity 0.98, '
                        '1 epoch (explicit options below still apply)')
    parser.add_argument('--out', default=osp.join('work_dirs', 'bench'),
                        help='output directory (default: work_dirs/bench)')
    parser.add_argument('--data-root', default=osp.join('data', 'bench', 'digits'),
                        help='where the digits class folders are written once and read '
                        '(default: data/bench/digits)')
    parser.add_argument('--sd', default='dlb', choices=['dlb', 'cskd', 'pskd'],
                        help='self-distillation method of every SD run (default: dlb)')
    parser.add_argument('--seeds', type=int, help='number of seeds, 0..N-1 (default: 3)')
    parser.add_argument('--sparsities', type=float, nargs='+',
                        help='pruning targets (default: 0.9 0.95 0.98 0.99)')
    parser.add_argument('--methods', nargs='+',
                        help='pruning criteria (default: random snip grasp synflow prospr epsd); '
                        'a diagnostic variant takes options after a colon, e.g. '
                        'epsd:inner_steps=1,inner_lr=0.01,score_mode=eval')
    parser.add_argument('--epochs', type=int, help='training epochs of every run (default: 10)')
    parser.add_argument('--width', type=int, default=16,
                        help='ResNet_CIFAR-18 stem/base channels (default: 16)')
    parser.add_argument('--jobs', type=int, default=None,
                        help='accuracy runs at once, one thread each (default: the number of '
                        'CPU cores, at most 2)')
    parser.add_argument('--cost-epochs', type=int,
                        help='epochs of each timing/memory run (default: 3)')
    parser.add_argument('--skip-dense', action='store_true',
                        help='leave out the dense runs (for comparing criteria or variants of '
                        'one when the dense baselines are known)')
    parser.add_argument('--resume', action='store_true',
                        help='reuse the finished runs of an interrupted benchmark in --out '
                        '(same setting) and run only the rest')
    parser.add_argument('--keep-work-dirs', action='store_true',
                        help="keep each run's Runner work_dir (masks.pth, sparsity reports)")
    return parser.parse_args(argv)


def _resolve(args):
    base = QUICK if args.quick else FULL
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.seeds < 1:
        raise UserError(f'--seeds must be >= 1, got {args.seeds}')
    if args.epochs < 1 or args.cost_epochs < 1:
        raise UserError('--epochs and --cost-epochs must be >= 1')
    if args.width < 1:
        raise UserError(f'--width must be >= 1, got {args.width}')
    args.sparsities = [check_sparsity(s, '--sparsities value') for s in args.sparsities]
    if len(set(args.sparsities)) != len(args.sparsities):
        raise UserError('--sparsities has a value twice')
    from epsd_mm.benchmark.configs import parse_method
    from epsd_mm.pruning.api import criterion_names
    from epsd_mm.registry import CRITERIA, build_checked
    valid = criterion_names()
    for spec in args.methods:
        crit, _ = parse_method(spec)
        if crit['type'] not in valid:
            raise UserError(f'unknown criterion {crit["type"]} in --methods; valid: '
                            f'{", ".join(valid)}')
        try:  # unknown or ill-typed options fail now, not in the middle of the sweep
            build_checked(CRITERIA, crit, 'pruning criterion')
        except TypeError as e:
            raise UserError(f'--methods {spec}: {e}') from None
    if len(set(args.methods)) != len(args.methods):
        raise UserError('--methods names a method twice')
    if args.jobs is None:
        args.jobs = max(1, min(2, len(os.sched_getaffinity(0))))
    if args.jobs < 1:
        raise UserError(f'--jobs must be >= 1, got {args.jobs}')
    return args


@cli_main
def main(argv=None):
    args = _resolve(parse_args(argv))
    # import everything a run needs once, before the runs are forked from this process
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot  # noqa: F401  (PruningHook's report plots in every pruned run)
    import mmpretrain.datasets  # noqa: F401
    import mmpretrain.evaluation  # noqa: F401
    import mmpretrain.models  # noqa: F401
    from mmengine.runner import Runner  # noqa: F401

    import epsd_mm  # noqa: F401  (registers the pruning components)
    import epsd_mm.distill  # noqa: F401  (SD models, losses, sampler, collate)
    import epsd_mm.hooks.sd_hook  # noqa: F401  (SelfDistillHook)
    from epsd_mm.benchmark.configs import BenchSetting
    from epsd_mm.benchmark.sweep import run_benchmark

    command = 'python tools/benchmark/run.py' + ''.join(
        f' {a}' for a in (sys.argv[1:] if argv is None else argv))
    try:
        run_benchmark(
            out_dir=args.out, data_root=args.data_root, sd=args.sd,
            seeds=list(range(args.seeds)), sparsities=args.sparsities, methods=args.methods,
            setting=BenchSetting(width=args.width, epochs=args.epochs), jobs=args.jobs,
            cost_epochs=args.cost_epochs, keep_work_dirs=args.keep_work_dirs,
            resume=args.resume, dense=not args.skip_dense, command=command)
    except KeyboardInterrupt:
        print(f'interrupted; the finished runs are in {osp.join(args.out, "runs")}: run again '
              'with --resume to reuse them', file=sys.stderr)
        sys.exit(130)


if __name__ == '__main__':
    main()
