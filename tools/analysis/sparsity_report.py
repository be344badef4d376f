"""Per-layer sparsity of a pruned checkpoint: a table in the terminal, optionally
sparsity.json and sparsity.png."""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Show the per-layer sparsity of a pruned checkpoint (its "pruning" masks): '
        'name, shape, numel, kept and sparsity of every masked tensor, and the totals. With '
        '--out, also write sparsity.json (the schema tools/prune.py writes) and sparsity.png '
        '(per-layer bars in network order). Accepts plain and compact (tools/export_sparse.py) '
        'checkpoints and the masks.pth of tools/prune.py.',
        epilog='example: python tools/analysis/sparsity_report.py '
        'work_dirs/epsd_dlb_demo/epoch_1.pth --out work_dirs/epsd_dlb_demo/report')
    parser.add_argument('checkpoint', help='checkpoint with a "pruning" entry, or a masks.pth')
    parser.add_argument('--out', metavar='DIR',
                        help='write sparsity.json and sparsity.png into DIR')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)  # before the heavy imports: --help answers at once
    from epsd_mm.utils.errors import cli_main
    return cli_main(run)(args)


def run(args):
    from epsd_mm.analysis import masks_from_checkpoint
    from epsd_mm.pruning import format_table, write_reports

    masks = masks_from_checkpoint(args.checkpoint)
    target = '' if masks.target_sparsity is None else f', target {masks.target_sparsity}'
    print(f'{args.checkpoint}: {len(masks)} masked tensors, method {masks.method or "?"}'
          f'{target}, sparsity {masks.sparsity:.4f}\n')
    print(format_table(masks))
    if args.out:
        json_path, png_path = write_reports(masks, args.out,
                                            title=osp.basename(args.checkpoint))
        print(f'\nwrote {json_path}, {png_path}')


if __name__ == '__main__':
    main()
