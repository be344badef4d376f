"""Export a pruned checkpoint in the compact format (packed masks + kept values), or restore a
plain checkpoint from one."""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a compact checkpoint: every masked tensor is stored as its mask '
        'packed to bits plus its kept values, everything else as is. Training state that only '
        'serves resuming (optimizer, param_schedulers, message_hub, self_distill) is dropped. '
        'mmengine loads the result through the epsdc:// scheme, e.g. '
        "load_from='epsdc://OUT' or init_cfg=dict(type='Pretrained', "
        "checkpoint='epsdc://OUT'). With --restore, turn a compact checkpoint back into a "
        'plain one (state_dict equal bit for bit, pruning masks included).',
        epilog='examples:\n  python tools/export_sparse.py work_dirs/demo/epoch_1.pth '
        'work_dirs/demo/compact.pth\n  python tools/export_sparse.py --restore '
        'work_dirs/demo/compact.pth work_dirs/demo/restored.pth',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='input: a pruned checkpoint (with --restore: a '
                        'compact one)')
    parser.add_argument('out', help='output file (written atomically)')
    parser.add_argument('--restore', action='store_true',
                        help='restore a plain checkpoint from the compact CHECKPOINT')
    return parser.parse_args(argv)


def _mib(n):
    return f'{n / 2**20:.2f} MiB' if n >= 2**20 else f'{n / 2**10:.1f} KiB'


def main(argv=None):
    args = parse_args(argv)  # before the heavy imports: --help answers at once
    from epsd_mm.utils.errors import cli_main
    return cli_main(run)(args)


def run(args):
    from epsd_mm.analysis import SCHEME, export_compact, restore_compact
    from epsd_mm.utils.io import check_output_path

    check_output_path(args.out, args.checkpoint, 'output OUT')
    if args.restore:
        checkpoint = restore_compact(args.checkpoint, args.out)
        print(f'wrote {args.out}: plain checkpoint, {len(checkpoint["state_dict"])} state_dict '
              f'entries, {len(checkpoint["pruning"]["masks"])} pruning masks, '
              f'{_mib(osp.getsize(args.out))}')
        return
    s = export_compact(args.checkpoint, args.out)
    print(f'wrote {args.out}: {s["tensors"]} masked tensors at sparsity {s["sparsity"]:.4f} '
          f'({s["kept"]:,} of {s["numel"]:,} entries kept)\n'
          f'masked tensors: {_mib(s["dense_bytes"])} dense -> {_mib(s["compact_bytes"])} '
          f'compact ({s["ratio"]:.3f} of dense)\n'
          f'file: {_mib(s["src_bytes"])} -> {_mib(s["dst_bytes"])} '
          f'({s["dst_bytes"] / s["src_bytes"]:.3f}); dropped: '
          f'{", ".join(s["dropped"]) or "nothing"}\n'
          f"load it with load_from='{SCHEME}{args.out}'")


if __name__ == '__main__':
    main()
