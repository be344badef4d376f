"""``make bench``: accuracy against sparsity on real data, and what pruning costs.

``--data digits`` (default) is the quick sanity sweep on scikit-learn's digits; ``--data
fashion`` the sweep of issue 11 on Fashion-MNIST. Every run trains one real mmengine Runner
(mmpretrain ``CustomDataset`` or ``FashionMNIST`` + pipeline, ``ImageClassifier`` /
``SDImageClassifier``, ``PruningHook``, ``SelfDistillHook``, mmpretrain's ``Accuracy``). See the
README's Benchmark section for the settings, the results and what they mean.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from epsd_mm.benchmark.fashion import SYSTEM_DIR  # noqa: E402
from epsd_mm.utils.errors import UserError, check_sparsity, cli_main  # noqa: E402

_DLB_CRITERIA = ['snip', 'grasp', 'synflow', 'prospr', 'epsd']
_PAPER_TABLE = ['snip', 'prospr', 'epsd', 'epsd_plus']
#: per data set: the full sweep's grid (SD method -> criteria, sparsities) and its schedule
FULL = {
    'digits': dict(seeds=3, grid={'dlb': (['random'] + _DLB_CRITERIA,
                                          [0.9, 0.95, 0.98, 0.99])},
                   epochs=10, cost_epochs=3, cost_iters=0),
    # issue 11's sweep: DLB with five criteria at four sparsities, and the paper's table for
    # CS-KD and PS-KD (snip, prospr, epsd at 0.98 and 0.99); issue 12's recommended variant
    # epsd_plus beside them
    'fashion': dict(seeds=3, grid={'dlb': (_DLB_CRITERIA + ['epsd_plus'],
                                           [0.9, 0.98, 0.99, 0.995]),
                                   'cskd': (_PAPER_TABLE, [0.98, 0.99]),
                                   'pskd': (_PAPER_TABLE, [0.98, 0.99])},
                    epochs=2, cost_epochs=1, cost_iters=40),
}
QUICK = {
    'digits': dict(seeds=1, grid={'dlb': (['snip', 'epsd'], [0.98])}, epochs=1, cost_epochs=1,
                   cost_iters=0),
    'fashion': dict(seeds=1, grid={'dlb': (['snip', 'epsd'], [0.98])}, epochs=1,
                    cost_epochs=1, cost_iters=16, train_images=2000),
}
#: a cost run's iterations: the warm-up, then at least one masked and one unmasked block
MIN_COST_ITERS = 16
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark pruning at initialization + self-distillation on real data: '
        "scikit-learn's 8x8 digits (the quick sanity sweep, written once as class folders) or "
        "Fashion-MNIST (the four official IDX files, read by mmpretrain's FashionMNIST): "
        'top-1 of dense training without and with SD, and of every criterion pruned at every '
        'sparsity then trained with the same SD method, over several seeds; plus the '
        'training-iteration time of dense and masked models, the time and peak memory of each '
        "criterion's mask computation. Writes results.json, results.md and "
        'accuracy_vs_sparsity.png into --out.',
        epilog='examples:\n  python tools/benchmark/run.py              # digits, DLB (make '
        'bench)\n  python tools/benchmark/run.py --data fashion   # the Fashion-MNIST sweep '
        '(DLB, CS-KD, PS-KD)\n  python tools/benchmark/run.py --quick      # 1 seed, snip and '
        'epsd at 0.98, 1 epoch\n  python tools/benchmark/run.py --data fashion --resume '
        '--skip-dense --methods epsd_plus\n        # add a criterion\'s rows to the same '
        'results.json\n  python tools/benchmark/run.py --data fashion --val --sd dlb '
        '--sparsities 0.98 0.99 \\\n        --methods prospr epsd epsd:inner_steps=5   # '
        'choose settings on the validation split',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', default='digits', choices=['digits', 'fashion'],
                        help='the data set (default: digits)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 1 seed, DLB, criteria snip and epsd, sparsity 0.98, '
                        '1 epoch (explicit options below still apply)')
    parser.add_argument('--val', action='store_true',
                        help='Fashion-MNIST: train on the same subset but evaluate on the '
                        'validation split carved from the training file (stratified, seed 0, '
                        'disjoint from the training subset) instead of the test set: for '
                        'choosing settings (default --out gets a -val suffix)')
    parser.add_argument('--out', help='output directory (default: work_dirs/bench for digits, '
                        'work_dirs/bench/fashion[-val] for Fashion-MNIST)')
    parser.add_argument('--data-root',
                        help='digits: where the class folders are written once (default: '
                        'data/bench/digits); Fashion-MNIST: where the four unzipped IDX files '
                        'are (unpacked there from <data-root>/*.gz or from '
                        f'{SYSTEM_DIR}/*.gz when missing; default: data/fashion-mnist)')
    parser.add_argument('--sd', nargs='+', choices=['dlb', 'cskd', 'pskd'],
                        help='self-distillation methods (default: dlb for digits; dlb cskd pskd '
                        'for Fashion-MNIST)')
    parser.add_argument('--seeds', type=int, help='number of seeds, 0..N-1 (default: 3)')
    parser.add_argument('--sparsities', type=float, nargs='+',
                        help='pruning targets of every SD method (default: per SD method, '
                        'see --help of the data set: digits 0.9 0.95 0.98 0.99; Fashion-MNIST '
                        'DLB 0.9 0.98 0.99 0.995, CS-KD and PS-KD 0.98 0.99)')
    parser.add_argument('--methods', nargs='+',
                        help='pruning criteria of every SD method (default: digits random snip '
                        'grasp synflow prospr epsd; Fashion-MNIST DLB snip grasp synflow '
                        'prospr epsd epsd_plus, CS-KD and PS-KD snip prospr epsd epsd_plus); '
                        'a variant takes '
                        'options after a colon, e.g. epsd:inner_steps=1,inner_lr=0.01,'
                        'score_mode=eval')
    parser.add_argument('--epochs', type=int,
                        help='training epochs of every run (default: digits 10, '
                        'Fashion-MNIST 2)')
    parser.add_argument('--width', type=int,
                        help='ResNet_CIFAR-18 stem/base channels (default: digits 16, '
                        'Fashion-MNIST 8)')
    parser.add_argument('--lr', type=float,
                        help='SGD learning rate of every run (default: digits 0.05, '
                        'Fashion-MNIST 0.1)')
    parser.add_argument('--train-images', type=int,
                        help='Fashion-MNIST: size of the fixed stratified training subset '
                        '(default: 10000; --quick 2000)')
    parser.add_argument('--val-images', type=int,
                        help='Fashion-MNIST: size of the validation split, always held out of '
                        'the training subset (default: 10000)')
    parser.add_argument('--jobs', type=int, default=None,
                        help='accuracy runs at once, one thread each (default: the number of '
                        'CPU cores, at most 2)')
    parser.add_argument('--cost-epochs', type=int,
                        help='epochs of each timing/memory run (default: digits 3)')
    parser.add_argument('--cost-iters', type=int,
                        help='iterations of each timing/memory run instead of epochs '
                        '(default: Fashion-MNIST 40)')
    parser.add_argument('--no-cost', action='store_true',
                        help='skip the timing/memory runs')
    parser.add_argument('--skip-dense', action='store_true',
                        help='leave out the dense runs (for comparing criteria or variants of '
                        'one when the dense baselines are known)')
    parser.add_argument('--resume', action='store_true',
                        help='reuse the finished runs in --out (same run and setting), run '
                        'only the rest, and report every finished run of the same setting '
                        'found there: an invocation with other --methods adds their rows to '
                        'the same results.json')
    parser.add_argument('--order', default='seed', choices=['seed', 'targets'],
                        help='order of the accuracy runs: seed-major (default; a sweep cut '
                        'short has every configuration for its first seeds) or targets first '
                        '(dense and snip/prospr/epsd at 0.98 and 0.99, DLB before CS-KD and '
                        'PS-KD, each seed-major; a sweep cut short has those for every seed)')
    parser.add_argument('--report-only', action='store_true',
                        help='run nothing: write the report of the finished runs of this plan '
                        'found in --out (an interrupted sweep; implies --resume)')
    parser.add_argument('--keep-work-dirs', action='store_true',
                        help="keep each run's Runner work_dir (masks.pth, sparsity reports)")
    return parser.parse_args(argv)


def _resolve(args):
    base = dict((QUICK if args.quick else FULL)[args.data])
    base.setdefault('train_images', None)
    grid = base.pop('grid')
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.seeds < 1:
        raise UserError(f'--seeds must be >= 1, got {args.seeds}')
    if args.epochs < 1 or args.cost_epochs < 1:
        raise UserError('--epochs and --cost-epochs must be >= 1')
    if args.cost_iters and args.cost_iters < MIN_COST_ITERS:
        raise UserError(f'--cost-iters must be 0 (use --cost-epochs) or at least '
                        f'{MIN_COST_ITERS} (5 warm-up iterations, then masked and unmasked '
                        f'blocks of 4), got {args.cost_iters}')
    if args.lr is not None and not args.lr > 0:
        raise UserError(f'--lr must be > 0, got {args.lr}')
    if args.width is not None and args.width < 1:
        raise UserError(f'--width must be >= 1, got {args.width}')
    if args.data == 'digits' and (args.val or args.train_images or args.val_images):
        raise UserError('--val, --train-images and --val-images apply to --data fashion only '
                        '(digits has its fixed split)')
    sds = args.sd or list(grid)
    if len(set(sds)) != len(sds):
        raise UserError('--sd names an SD method twice')
    default_methods = next(iter(grid.values()))[0]
    args.grid = []
    for sd in sds:
        methods, sparsities = grid.get(sd, (default_methods, next(iter(grid.values()))[1]))
        args.grid.append((sd, list(args.methods or methods),
                          [check_sparsity(s, '--sparsities value')
                           for s in (args.sparsities or sparsities)]))
    if args.sparsities and len(set(args.sparsities)) != len(args.sparsities):
        raise UserError('--sparsities has a value twice')
    if args.methods:
        _check_methods(args.methods)
    if args.jobs is None:
        args.jobs = max(1, min(2, len(os.sched_getaffinity(0))))
    if args.jobs < 1:
        raise UserError(f'--jobs must be >= 1, got {args.jobs}')
    if args.out is None:
        args.out = osp.join('work_dirs', 'bench') if args.data == 'digits' else \
            osp.join('work_dirs', 'bench', 'fashion-val' if args.val else 'fashion')
    if args.data_root is None:
        args.data_root = osp.join('data', 'bench', 'digits') if args.data == 'digits' else \
            osp.join('data', 'fashion-mnist')
    return args


def _check_methods(methods):
    from epsd_mm.benchmark.configs import parse_method
    from epsd_mm.pruning.api import criterion_names
    from epsd_mm.registry import CRITERIA, build_checked
    valid = criterion_names()
    for spec in methods:
        crit, _ = parse_method(spec)
        if crit['type'] not in valid:
            raise UserError(f'unknown criterion {crit["type"]} in --methods; valid: '
                            f'{", ".join(valid)}')
        try:  # unknown or ill-typed options fail now, not in the middle of the sweep
            build_checked(CRITERIA, crit, 'pruning criterion')
        except TypeError as e:
            raise UserError(f'--methods {spec}: {e}') from None
    if len(set(methods)) != len(methods):
        raise UserError('--methods names a method twice')


def bench_setting(args):
    """The :class:`~epsd_mm.benchmark.BenchSetting` of the resolved arguments."""
    from epsd_mm.benchmark.configs import SETTINGS, BenchSetting
    fields = dict(SETTINGS[args.data], data=args.data, epochs=args.epochs)
    for key in ('width', 'lr', 'train_images', 'val_images'):
        if getattr(args, key, None) is not None:
            fields[key] = getattr(args, key)
    if args.val:
        fields['eval_split'] = 'val'
    return BenchSetting(**fields)


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
    from epsd_mm.benchmark.sweep import run_benchmark

    command = 'python tools/benchmark/run.py' + ''.join(
        f' {a}' for a in (sys.argv[1:] if argv is None else argv))
    try:
        run_benchmark(
            out_dir=args.out, data_root=args.data_root, grid=args.grid,
            seeds=list(range(args.seeds)), setting=bench_setting(args), jobs=args.jobs,
            cost_epochs=args.cost_epochs, cost_iters=args.cost_iters,
            keep_work_dirs=args.keep_work_dirs, resume=args.resume,
            dense=not args.skip_dense, cost=not args.no_cost, order=args.order,
            report_only=args.report_only, command=command)
    except KeyboardInterrupt:
        print(f'interrupted; the finished runs are in {osp.join(args.out, "runs")}: run again '
              'with --resume to reuse them', file=sys.stderr)
        sys.exit(130)


if __name__ == '__main__':
    main()
