"""Compute pruning-at-initialization masks for a config's model, without training."""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

import epsd_mm  # noqa: E402,F401  (registers components)
from epsd_mm.utils.config_checks import load_config  # noqa: E402
from epsd_mm.utils.errors import UserError, cli_main  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Prune a randomly initialized model at initialization and write its masks '
        '(masks.pth: the "pruning" dict a PruningHook can load with mask_file=), '
        'sparsity.json and sparsity.png. No training happens.',
        epilog='example: python tools/prune.py configs/demo/epsd_dlb_demo.py --method epsd '
        '--sparsity 0.9 --work-dir work_dirs/prune_epsd',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='train config file (its model and train_dataloader)')
    parser.add_argument('--method', help='pruning criterion (random, magnitude, snip, grasp, '
                        "synflow, prospr, epsd); default: the config's PruningHook criterion")
    parser.add_argument('--sparsity', type=float,
                        help="fraction of prunable weights to remove, in (0, 1); default: the "
                        "config's PruningHook sparsity")
    parser.add_argument('--scope', choices=['global', 'layer'],
                        help='one global threshold, or the same sparsity in every layer')
    parser.add_argument('--min-kept', type=int, default=None,
                        help='keep at least this many weights per layer instead of failing '
                        'when a layer would be emptied')
    parser.add_argument('--score-mode', choices=['train', 'eval'],
                        help='model mode while scoring (BatchNorm batch or running statistics)')
    parser.add_argument('--score-batch-size', type=int,
                        help='samples per scoring batch (default: the PruningHook\'s '
                        'score_data.batch_size, else the train_dataloader\'s batch_size)')
    parser.add_argument('--batches-per-step', type=int,
                        help='loader batches per inner step, gradients accumulated (default: '
                        "the PruningHook's score_data.num_batches_per_step, else 1)")
    parser.add_argument('--work-dir', help='output directory; default '
                        'work_dirs/<config>/prune_<method>')
    parser.add_argument('--seed', type=int, default=None, help='random seed (default: the '
                        "config's randomness.seed, else 0)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.sd.tau=4')
    return parser.parse_args(argv)


def _hook_cfg(cfg):
    for h in cfg.get('custom_hooks', []) or []:
        if h.get('type') in ('PruningHook', 'epsd_mm.PruningHook'):
            return h
    return {}


def _criterion(method, hook):
    """The criterion config: the config's own settings when ``method`` is the config's."""
    configured = hook.get('criterion', 'epsd')
    if isinstance(configured, str):
        configured = dict(type=configured)
    if method is None or method == configured.get('type'):
        return dict(configured)
    return dict(type=method)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)

    import torch
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import Runner
    from mmengine.runner.utils import set_random_seed

    from epsd_mm.pruning import compute_masks, format_table, write_reports
    from epsd_mm.pruning.api import check_score_data, score_loader_cfg
    from epsd_mm.pruning.selection import check_min_kept
    from epsd_mm.registry import CRITERIA, build_checked
    from epsd_mm.utils.config_checks import check_data_paths, check_writable_dir
    from epsd_mm.utils.errors import check_sparsity

    hook = _hook_cfg(cfg)
    criterion = _criterion(args.method, hook)
    sparsity = args.sparsity if args.sparsity is not None else hook.get('sparsity')
    if sparsity is None:
        raise UserError('no sparsity: pass --sparsity S (the fraction to remove, e.g. 0.9)')
    sparsity = check_sparsity(sparsity, 'sparsity')
    scope = args.scope or hook.get('scope', 'global')
    min_kept = args.min_kept if args.min_kept is not None else hook.get('min_kept_per_layer', 0)
    min_kept = check_min_kept(min_kept)
    score_mode = args.score_mode or hook.get('score_mode', 'train')
    work_dir = args.work_dir or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0], f'prune_{criterion["type"]}')

    build_checked(CRITERIA, criterion, 'pruning criterion')  # a typo fails before any work
    check_data_paths(cfg, dataloaders=('train_dataloader', ))
    check_writable_dir(work_dir)
    score_data = dict(hook.get('score_data') or {})
    if args.score_batch_size is not None:
        score_data['batch_size'] = args.score_batch_size
    if args.batches_per_step is not None:
        score_data['num_batches_per_step'] = args.batches_per_step
    score_data = check_score_data(score_data)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    seed = args.seed if args.seed is not None else (cfg.get('randomness') or {}).get('seed')
    set_random_seed(0 if seed is None else seed)
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    model.init_weights()
    if torch.cuda.is_available():
        model = model.cuda()
    loader_cfg = score_loader_cfg(score_data, cfg.get('train_dataloader') or {}) or \
        cfg.train_dataloader.copy()
    loader_cfg['num_workers'] = min(int(loader_cfg.get('num_workers', 0)), 2)
    loader_cfg['persistent_workers'] = False
    loader = Runner.build_dataloader(loader_cfg, seed=seed)

    masks = compute_masks(model, loader, criterion, sparsity, scope=scope,
                          prunable=hook.get('prunable'), min_kept_per_layer=min_kept,
                          score_mode=score_mode,
                          batches_per_step=score_data['num_batches_per_step'])
    print(format_table(masks))
    json_path, png_path = write_reports(
        masks, work_dir, title=f'{type(model).__name__} ({osp.basename(args.config)}, at init)')
    masks_path = osp.join(work_dir, 'masks.pth')
    masks.save(masks_path)
    print(f'{criterion["type"]}: sparsity {masks.sparsity:.4f} (target {sparsity}) in '
          f'{masks.extra["seconds"]:.2f}s\nwrote {masks_path}, {json_path}, {png_path}')


if __name__ == '__main__':
    main()
