"""Turn a classification checkpoint into a backbone checkpoint for detection.

The result keeps only the ``state_dict`` entries under ``--prefix`` (``backbone.*``, names
unchanged) and, under the top-level key ``pruning``, only the masks of those parameters, with
the sparsity measured over them. Optimizer, scheduler, logger and self-distillation state are
dropped. The file is written atomically.

The tool is optional: a detector config can point at the full classification checkpoint
directly (``init_cfg=dict(type='Pretrained', checkpoint=CKPT, prefix='backbone.')`` and
``PruningHook(mask_file=CKPT, strict=False)``, as ``configs/epsd_voc_frcnn.py`` does). An
exported file is smaller, carries no classifier head, and its masks all fit the detector's
backbone, so it also loads with ``PruningHook(mask_file=OUT, strict=True)``.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

import epsd_mm  # noqa: E402,F401  (installs the checkpoint-loading shim of utils.compat)
from epsd_mm.analysis.compact import read_checkpoint  # noqa: E402
from epsd_mm.pruning.masks import CHECKPOINT_KEY, MaskSet  # noqa: E402
from epsd_mm.utils.errors import UserError, cli_main  # noqa: E402
from epsd_mm.utils.io import atomic_torch_save  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Turn a classification checkpoint (e.g. an EPSD run of tools/train.py) '
        'into a backbone checkpoint: the state_dict entries under PREFIX (names unchanged) and '
        'the masks of those parameters under "pruning"; everything else (the classifier head '
        'and its mask, optimizer, schedulers, self-distillation state) is dropped and listed. '
        'Written atomically. Optional: detector configs can also load the full classification '
        "checkpoint with init_cfg=dict(type='Pretrained', checkpoint=CKPT, prefix='backbone.') "
        "and PruningHook(mask_file=CKPT, strict=False).",
        epilog='example: python tools/export_backbone.py '
        'work_dirs/epsd_dlb_r50_imagenet/epoch_100.pth work_dirs/epsd_r50_backbone.pth',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='classification checkpoint (mmengine layout: '
                        '"state_dict" and, for a pruned run, "pruning")')
    parser.add_argument('out', help='backbone checkpoint to write')
    parser.add_argument('--prefix', default='backbone.',
                        help='keep the entries whose names start with this (default: '
                        '%(default)s)')
    return parser.parse_args(argv)


def _load(path):
    """The checkpoint at ``path`` (plain or compact) in mmengine's layout."""
    obj = read_checkpoint(path)
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        return obj
    if isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
        return dict(state_dict=obj)  # a bare state dict
    raise UserError(f'{path} is not a model checkpoint: expected a dict with a "state_dict" '
                    '(as mmengine saves) or a bare state dict of tensors')


def _names(names, limit=6):
    names = list(names)
    if not names:
        return 'none'
    shown = ', '.join(names[:limit])
    return shown + (f' (and {len(names) - limit} more)' if len(names) > limit else '')


def export_backbone(checkpoint, out, prefix='backbone.'):
    """Write the backbone part of ``checkpoint`` to ``out`` (see the module doc).

    Args:
        checkpoint (str): The classification checkpoint.
        out (str): The backbone checkpoint to write (atomically).
        prefix (str): Keep the ``state_dict`` entries and masks whose names start with it; a
            trailing ``.`` is added if missing. Defaults to 'backbone.'.

    Returns:
        dict: What was kept and dropped: ``kept_keys``, ``dropped_keys``, ``kept_masks``,
        ``dropped_masks`` (name lists), ``dropped_entries`` (other top-level keys),
        ``sparsity`` (over the kept masks; None without masks) and ``numel``.

    Raises:
        UserError: A missing or unreadable checkpoint, ``out`` equal to ``checkpoint``, no entry
            under ``prefix``, or masks that do not match the kept weights (a mask for a missing
            weight, another shape, or a pruned entry that is not zero).
    """
    if not prefix:
        raise UserError('--prefix must not be empty (e.g. backbone.)')
    if not prefix.endswith('.'):
        prefix += '.'
    if osp.abspath(out) == osp.abspath(checkpoint):
        raise UserError(f'the output {out} is the input checkpoint; choose another path')
    ckpt = _load(checkpoint)
    state = ckpt['state_dict']
    kept = OrderedDict((k, v) for k, v in state.items() if k.startswith(prefix))
    dropped = [k for k in state if not k.startswith(prefix)]
    if not kept:
        tops = sorted({k.split('.', 1)[0] + '.' for k in state})
        raise UserError(f'no state_dict entry of {checkpoint} starts with {prefix!r}; its '
                        f'entries start with {_names(tops)}. Pass --prefix accordingly.')

    report = dict(kept_keys=list(kept), dropped_keys=dropped, kept_masks=[], dropped_masks=[],
                  dropped_entries=sorted(k for k in ckpt if k not in
                                         ('meta', 'state_dict', CHECKPOINT_KEY)),
                  sparsity=None, numel=sum(v.numel() for v in kept.values()))
    meta = dict(ckpt.get('meta') or {})
    # The classes are the classifier's; the detector has its own.
    meta.pop('dataset_meta', None)
    meta['export_backbone'] = dict(source=checkpoint, prefix=prefix)
    result = dict(meta=meta, state_dict=kept)

    if CHECKPOINT_KEY in ckpt:
        masks = MaskSet.from_dict(ckpt[CHECKPOINT_KEY], source=checkpoint)
        sub = masks.select(lambda n: n.startswith(prefix))
        report['dropped_masks'] = [n for n in masks.names() if n not in sub]
        sub.check_fits(kept, f' (the masks of {checkpoint} do not match its own weights: '
                       'the file is inconsistent)')
        bad = sub.zero_violations(kept)
        if bad:
            raise UserError(f'{bad} pruned entries of {checkpoint} are not zero: its weights do '
                            'not respect its own masks (was it saved without the PruningHook?)')
        report['kept_masks'] = sub.names()
        report['sparsity'] = sub.sparsity
        result[CHECKPOINT_KEY] = sub.to_dict()

    atomic_torch_save(result, out)
    return report


@cli_main
def main(argv=None):
    args = parse_args(argv)
    r = export_backbone(args.checkpoint, args.out, args.prefix)
    print(f'wrote {args.out}')
    print(f'  weights: kept {len(r["kept_keys"])} entries ({r["numel"]:,} values), dropped '
          f'{len(r["dropped_keys"])}: {_names(r["dropped_keys"])}')
    if r['sparsity'] is None:
        print('  masks:   none (a dense checkpoint)')
    else:
        print(f'  masks:   kept {len(r["kept_masks"])} (sparsity {r["sparsity"]:.4f} over '
              f'them), dropped {len(r["dropped_masks"])}: {_names(r["dropped_masks"])}')
    print(f'  also dropped: {_names(r["dropped_entries"])}', flush=True)


if __name__ == '__main__':
    main()
