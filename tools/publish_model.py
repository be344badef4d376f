#!/usr/bin/env python
"""Publish a trained checkpoint: keep ``meta``, ``state_dict`` and the ``pruning`` masks, drop
the resume state, and write ``OUT-<sha256[:8]>.pth`` (the convention of mmdet's and
mmpretrain's ``tools/model_converters/publish_model.py``)."""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

EPILOG = '''\
examples:
  python tools/publish_model.py work_dirs/demo/det/epoch_12.pth work_dirs/demo/frcnn_demo.pth
      -> work_dirs/demo/frcnn_demo-<8 hex digits>.pth
  # then, in any process (epsd_mm not needed):
  from mmdet.apis import init_detector, inference_detector
  model = init_detector('configs/demo/frcnn_demo_infer.py', 'work_dirs/demo/frcnn_demo-....pth')

What loads where: a training checkpoint (epoch_N.pth) resumes a run and opens in this
project's tools; a published checkpoint opens in any mmdet/mmpretrain tool and with a plain
torch.load(weights_only=True); a compact checkpoint (tools/export_sparse.py) loads through
epsdc://PATH wherever epsd_mm is imported.
'''


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Turn a training checkpoint (or a compact one) into a published one: '
        '"meta" (as plain Python types), "state_dict" and the "pruning" masks are kept; '
        'optimizer, param_schedulers, message_hub, self_distill and any other entry are '
        'dropped. The result loads with torch.load(weights_only=True) in a process that never '
        'imports epsd_mm, e.g. with mmdet\'s init_detector or mmpretrain\'s init_model. It is '
        'written atomically as OUT-<first 8 hex digits of its sha256>.pth.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('in_file', help='input checkpoint filename')
    parser.add_argument('out_file', help='output checkpoint filename (.pth is optional; the '
                        'sha256 suffix is added before it)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)  # before the heavy imports: --help answers at once
    from epsd_mm.utils.errors import cli_main
    return cli_main(run)(args)


def run(args):
    from epsd_mm.analysis.publish import publish_checkpoint

    r = publish_checkpoint(args.in_file, args.out_file)
    masks = f', {r["masks"]} pruning masks' if r['masks'] else ', no pruning masks'
    print(f'wrote {r["path"]}: {", ".join(r["kept"])}{masks}; dropped '
          f'{", ".join(r["dropped"]) or "nothing"}; {r["bytes"] / 2**20:.2f} MiB (from '
          f'{r["src_bytes"] / 2**20:.2f} MiB); sha256 {r["sha256"]}', flush=True)
    return r


if __name__ == '__main__':
    main()
