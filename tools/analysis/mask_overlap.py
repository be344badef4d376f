"""Compare masks: overlap of kept weights (Jaccard) and kept fraction per layer.

Reads any number of ``LABEL=PATH`` masks (a ``masks.pth`` of ``tools/prune.py`` or of a
``PruningHook`` work dir, or a checkpoint of a pruned run) and prints two Markdown tables: the
pairwise Jaccard overlap of the kept weights (kept by both / kept by either) and the kept
fraction of every layer. ``--json`` also writes both.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Pairwise overlap (Jaccard: kept by both / kept by either) of the kept '
        'weights of several masks of one model, and the kept fraction of every layer, as '
        'Markdown tables.',
        epilog='example: python tools/analysis/mask_overlap.py epsd=work/a/masks.pth '
        'prospr=work/b/masks.pth --json overlap.json')
    parser.add_argument('masks', nargs='+', metavar='LABEL=PATH',
                        help='a label and a masks.pth or pruned checkpoint')
    parser.add_argument('--json', metavar='FILE', help='also write the tables as JSON')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from epsd_mm.utils.errors import cli_main
    return cli_main(run)(args)


def run(args):
    from epsd_mm.analysis import masks_from_checkpoint
    from epsd_mm.utils.errors import UserError
    from epsd_mm.utils.io import atomic_json_dump

    masks = {}
    for item in args.masks:
        label, eq, path = item.partition('=')
        if not eq or not label or not path:
            raise UserError(f'{item!r} is not LABEL=PATH (e.g. epsd=work/a/masks.pth)')
        masks[label] = masks_from_checkpoint(path)
    labels = list(masks)
    names = masks[labels[0]].names()
    for label in labels[1:]:
        if masks[label].names() != names:
            raise UserError(f'the masks of {label!r} cover other tensors than those of '
                            f'{labels[0]!r}: compare masks of the same model')
    overlap = {a: {b: masks[a].jaccard(masks[b]) for b in labels} for a in labels}
    layers = {a: {n: float(masks[a][n].float().mean()) for n in names} for a in labels}
    lines = ['| overlap | ' + ' | '.join(labels) + ' |', '|---|' + '---|' * len(labels)]
    lines += [f'| {a} | ' + ' | '.join(f'{overlap[a][b]:.3f}' for b in labels) + ' |'
              for a in labels]
    lines += ['', '| layer | size | ' + ' | '.join(labels) + ' |',
              '|---|---|' + '---|' * len(labels)]
    lines += [f'| {n} | {masks[labels[0]][n].numel()} | '
              + ' | '.join(f'{layers[a][n]:.4f}' for a in labels) + ' |' for n in names]
    print('\n'.join(lines))
    if args.json:
        atomic_json_dump(dict(overlap=overlap, layers=layers), args.json)
    return 0


if __name__ == '__main__':
    sys.exit(main())
