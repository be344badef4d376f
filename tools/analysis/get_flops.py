"""Parameters and FLOPs of a config's model: dense, and effective under a checkpoint's
pruning masks."""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Count the parameters and FLOPs of a classification (mmpretrain) or '
        'detection (mmdet) config\'s model on one dummy image. Dense figures come from '
        'mmengine.analysis (FlopAnalyzer, per module; one multiply-add = 1 FLOP). With '
        '--checkpoint, the effective figures under its "pruning" masks too: the parameter '
        'count minus pruned entries, and each masked layer\'s FLOPs scaled by its kept '
        'fraction.',
        epilog='example: python tools/analysis/get_flops.py configs/demo/epsd_dlb_demo.py '
        '--checkpoint work_dirs/epsd_dlb_demo/epoch_1.pth --shape 32 32')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', metavar='CKPT',
                        help='checkpoint (plain or compact) or masks.pth whose masks give the '
                        'effective figures; without it the report is dense only')
    parser.add_argument('--shape', type=int, nargs='+', metavar='N',
                        help='input size: H W, or one number for a square; default: the size '
                        "of the config's test pipeline, else 224x224 (classification) or "
                        '800x1333 (detection)')
    parser.add_argument('--per-layer', action='store_true',
                        help='also print dense and effective FLOPs of every masked layer')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.backbone.depth=50')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)  # before the heavy imports: --help answers at once
    from epsd_mm.utils.errors import cli_main
    return cli_main(run)(args)


#: The largest --shape side analysed (an 8192x8192 RGB float input is 768 MiB).
MAX_SIDE = 8192


def run(args):
    import epsd_mm  # noqa: F401  (registers components; custom_imports may add more)
    from epsd_mm.analysis import analyze_config, format_complexity, masks_from_checkpoint
    from epsd_mm.utils.config_checks import load_config
    from epsd_mm.utils.errors import UserError

    shape = None
    if args.shape is not None:
        if len(args.shape) not in (1, 2) or min(args.shape) <= 0:
            raise UserError(f'--shape takes H W or one size, all positive; got {args.shape}')
        if max(args.shape) > MAX_SIDE:
            raise UserError(f'--shape {" ".join(map(str, args.shape))} is larger than '
                            f'{MAX_SIDE} pixels a side, which would not fit in memory; give a '
                            'realistic input size, e.g. --shape 224 224')
        shape = tuple(args.shape) * (3 - len(args.shape))
    cfg = load_config(args.config, args.cfg_options)

    masks = masks_from_checkpoint(args.checkpoint) if args.checkpoint else None
    result = analyze_config(cfg, shape, masks)
    print(format_complexity(result, mask_source=args.checkpoint, per_layer=args.per_layer))


if __name__ == '__main__':
    main()
