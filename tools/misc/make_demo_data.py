"""Generate the demo data: shapes for classification (class folders) and detection (VOC)."""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from epsd_mm.datasets.demo import DEMO_CLASSES, make_demo_data  # noqa: E402
from epsd_mm.utils.errors import cli_main  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the small, deterministic demo data set in real on-disk formats: '
        'OUT/cls, simple shapes (' + ', '.join(DEMO_CLASSES) + ') as class folders train/ and '
        "val/ for mmpretrain's CustomDataset (plus meta/*.txt annotation lists), and "
        'OUT/voc/VOCdevkit/VOC2007, the same shapes laid out as Pascal VOC (JPEGImages/, XML '
        "Annotations/, ImageSets/Main/{trainval,test}.txt) for mmdet's VOCDataset. A set that "
        'is already complete with the same parameters is skipped; an incomplete one (a killed '
        'run) is generated again. Sizes default to those the demo configs are tuned for.',
        epilog='example: python tools/misc/make_demo_data.py --out data/demo',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='data/demo',
                        help='output directory, the one the demo configs read (default: '
                        '%(default)s)')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if the data is already complete')
    parser.add_argument('--seed', type=int, help='random seed (default: 0)')
    parser.add_argument('--train-per-class', type=int,
                        help='classification training images per class (default: 160)')
    parser.add_argument('--val-per-class', type=int,
                        help='classification validation images per class (default: 40)')
    parser.add_argument('--trainval', type=int,
                        help='detection images listed in trainval.txt (default: 300)')
    parser.add_argument('--test', type=int,
                        help='detection images listed in test.txt (default: 100)')
    parser.add_argument('--quiet', action='store_true', help='no progress output')
    return parser.parse_args(argv)


def _given(**kwargs):
    """Only the options given on the command line: the generators own the defaults."""
    return {k: v for k, v in kwargs.items() if v is not None}


@cli_main
def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    data = make_demo_data(
        args.out, force=args.force, progress=not args.quiet,
        cls=_given(train_per_class=args.train_per_class, val_per_class=args.val_per_class,
                   seed=args.seed),
        voc=_given(num_trainval=args.trainval, num_test=args.test, seed=args.seed))
    if not args.quiet:
        c, v = data.counts['cls'], data.counts['voc']
        print(f'demo data ready under {args.out} ({time.time() - start:.1f} s)\n'
              f'  classification: {data.cls_root}: {c["train"]} train and {c["val"]} val '
              f'images of {len(data.classes)} classes ({", ".join(data.classes)})\n'
              f'  detection:      {data.voc_root}: {v["trainval"]} trainval and {v["test"]} '
              f'test images, {v["objects"]} objects', flush=True)


if __name__ == '__main__':
    main()
