#!/usr/bin/env python
"""Regenerate the sample outputs quoted in README.md and docs/*.md from the demo's work dir.

Every number the docs quote from the demo sits between two markers,

    <!-- begin refresh_docs:NAME (python tools/misc/refresh_docs.py, DATE) -->
    ...
    <!-- end refresh_docs:NAME -->

and this script rewrites what lies between them from one ``make demo`` run
(``python tools/demo.py``, its work dir ``work_dirs/demo``): the summary, the analysis tools'
output on the demo's classification checkpoint (sparsity report, FLOPs, compact export), the
FLOPs of the demo detector with those masks, and the demo detector's mAP with ``--tta``. It runs
the tools themselves, as a user would, and stamps each block with the date it was made.
``--check`` writes nothing and exits 1 when a block would change (dates aside).
"""
import argparse
import datetime
import json
import os
import os.path as osp
import re
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

#: The files whose marked blocks this script owns.
DOCS = ('README.md', 'docs/analysis.md', 'docs/detection.md')
#: The blocks :func:`make_blocks` makes (each quoted by one of :data:`DOCS`).
BLOCK_NAMES = ('demo-run', 'demo-summary', 'sparsity-report', 'flops-cls', 'flops-cls-short',
               'flops-det', 'export-sparse')
CLS_CONFIG = 'configs/demo/epsd_dlb_demo.py'
DET_CONFIG = 'configs/demo/frcnn_demo.py'

BLOCK = re.compile(r'(<!-- begin refresh_docs:(?P<name>[\w-]+)(?: \([^)]*\))? -->\n)'
                   r'(?P<body>.*?)'
                   r'(<!-- end refresh_docs:(?P=name) -->)', re.S)


def replace_blocks(text, blocks, date):
    """``text`` with the body of every marked block named in ``blocks`` (name -> new body)
    replaced and its begin marker stamped with ``date``.

    Returns:
        tuple[str, list[str], list[str]]: the new text, the names of the blocks whose body
        changed, and the names of marked blocks ``blocks`` has no body for.
    """
    changed, unknown = [], []

    def sub(m):
        name = m.group('name')
        if name not in blocks:
            unknown.append(name)
            return m.group(0)
        body = blocks[name].rstrip('\n') + '\n'
        if body != m.group('body'):
            changed.append(name)
        return (f'<!-- begin refresh_docs:{name} (python tools/misc/refresh_docs.py, {date}) '
                f'-->\n{body}{m.group(4)}')

    return BLOCK.sub(sub, text), changed, unknown


def block_names(text):
    """Names of the marked blocks in ``text``, in order."""
    return [m.group('name') for m in BLOCK.finditer(text)]


# ---------------------------------------------------------------------- running the tools
def tool(*args):
    """Run a tool of this checkout; return its stdout (a failure raises with its stderr)."""
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', '1')
    env['PYTHONPATH'] = ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        from epsd_mm.utils.errors import UserError
        raise UserError(f'{" ".join(args)} failed ({proc.returncode}): '
                        f'{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""}')
    return proc.stdout


def _abridge_table(out, keep=2):
    """A sparsity table with its first and last ``keep`` layers and ``...`` between."""
    lines = out.rstrip('\n').split('\n')
    rules = [i for i, line in enumerate(lines) if set(line) == {'-'}]
    if len(rules) < 2 or rules[1] - rules[0] - 1 <= 2 * keep + 1:
        return '\n'.join(lines)
    a, b = rules[0], rules[1]
    return '\n'.join(lines[:a + 1 + keep] + ['...'] + lines[b - keep:])


def _flops_numbers(out):
    """``{label: int}`` of get_flops' count lines (``dense parameters: 702,741 (...)``)."""
    numbers = {}
    for line in out.splitlines():
        m = re.match(r'^([a-z][^:]*):\s+([\d,]+)\s+\(', line)
        if m:
            numbers[m.group(1).split(' (')[0]] = int(m.group(2).replace(',', ''))
    return numbers


def _human(n):
    return f'{n / 1e6:.2f} M' if n >= 1e6 else f'{n / 1e3:.1f} K'


def make_blocks(work_dir):
    """Every block's body, from the demo's work dir (``summary.json`` and its checkpoints)."""
    from epsd_mm.utils.errors import UserError

    summary_path = osp.join(work_dir, 'summary.json')
    if not osp.isfile(summary_path):
        raise UserError(f'{summary_path} does not exist: run the demo first '
                        '(python tools/demo.py, or make demo)')
    with open(summary_path) as f:
        summary = json.load(f)
    made = datetime.date.fromtimestamp(osp.getmtime(summary_path)).isoformat()
    cls_ckpt, det_ckpt = summary['classification_checkpoint'], summary['detector_checkpoint']
    for path in (cls_ckpt, det_ckpt):
        if not osp.isfile(osp.join(ROOT, path)):
            raise UserError(f'{path} (named by {summary_path}) does not exist: run the demo again')
    st = summary['stage_seconds']
    blocks = {}

    top1 = summary['classification_top1']
    blocks['demo-run'] = (
        f'One measured run on 2 cores ({made}, `python tools/demo.py`): {summary["seconds"]:.0f} s '
        f'in all ({st.get("classification", 0):.0f} s classification, '
        f'{st.get("detection", 0):.0f} s detection, {st.get("test", 0):.0f} s test), classifier '
        f'top-1 {"n/a" if top1 is None else f"{top1:.3f}"} on the 200 validation shapes, '
        f'mAP@0.5 {summary["mAP"]:.4f} on the 100 test images (with `--tta`, both flips: '
        f'{_tta_map(det_ckpt, work_dir):.4f}), backbone sparsity '
        f'{summary["backbone_sparsity"]:.4f} with {summary["pruned_nonzero"]} non-zero pruned '
        'entries.')

    shown = {k: summary[k] for k in summary if k != 'metrics'}
    shown['metrics'] = {k: round(v, 4) for k, v in summary['metrics'].items()}
    for key in ('mAP', 'backbone_sparsity', 'backbone_zero_fraction', 'classification_top1'):
        if isinstance(shown.get(key), float):
            shown[key] = round(shown[key], 4)
    blocks['demo-summary'] = (f'```json\n{json.dumps(shown, indent=2)}\n```\n\n(the run of '
                              f'{made} on a 2-core CPU; generating the data from scratch adds '
                              'about 15 s)')

    report = tool('tools/analysis/sparsity_report.py', cls_ckpt, '--out',
                  osp.join(work_dir, 'report'))
    blocks['sparsity-report'] = f'```\n{_abridge_table(report)}\n```'

    flops = tool('tools/analysis/get_flops.py', CLS_CONFIG, '--checkpoint', cls_ckpt)
    blocks['flops-cls'] = (f'```\n$ python tools/analysis/get_flops.py {CLS_CONFIG} '
                           f'--checkpoint {cls_ckpt}\n{flops.rstrip()}\n```')
    counts = [line for line in flops.splitlines()
              if line.startswith(('dense ', 'effective ', 'reduction '))]
    blocks['flops-cls-short'] = '```\n' + '\n'.join(counts) + '\n```'

    det = _flops_numbers(tool('tools/analysis/get_flops.py', DET_CONFIG, '--checkpoint',
                              cls_ckpt))
    blocks['flops-det'] = (
        f'The same masks in the demo detector (`{DET_CONFIG}`, 128x128): dense '
        f'{_human(det["dense parameters"])} parameters and {_human(det["dense FLOPs"])} FLOPs, '
        f'effective {_human(det["effective parameters"])} and '
        f'{_human(det["effective FLOPs"])} (the detector\'s neck and heads are not pruned).')

    compact = osp.join(work_dir, 'compact.pth')
    export = tool('tools/export_sparse.py', cls_ckpt, compact)
    blocks['export-sparse'] = (f'```\n$ python tools/export_sparse.py {cls_ckpt} {compact}\n'
                               f'{export.rstrip()}\n```')
    assert tuple(blocks) == BLOCK_NAMES, sorted(blocks)
    return blocks


_TTA = {}


def _tta_map(det_ckpt, work_dir):
    """The demo detector's mAP under ``tools/test.py --tta`` (run once)."""
    if 'mAP' not in _TTA:
        out = tool('tools/test.py', DET_CONFIG, det_ckpt, '--tta', '--work-dir',
                   osp.join(work_dir, 'test_tta'))
        found = re.findall(r'pascal_voc/mAP: ([\d.]+)', out)
        if not found:
            from epsd_mm.utils.errors import UserError
            raise UserError('tools/test.py --tta printed no pascal_voc/mAP')
        _TTA['mAP'] = float(found[-1])
    return _TTA['mAP']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Rewrite the marked sample outputs of README.md, docs/analysis.md and '
        'docs/detection.md (<!-- begin refresh_docs:NAME --> ... <!-- end refresh_docs:NAME '
        '-->) from the demo\'s work dir, running the analysis tools on its checkpoints, and '
        'stamp each block with today\'s date.',
        epilog='example: python tools/demo.py && python tools/misc/refresh_docs.py',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='the demo\'s work dir (default: %(default)s)')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 if a block would change')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from epsd_mm.utils.errors import UserError, cli_main
    from epsd_mm.utils.io import atomic_write_text

    def run():
        os.chdir(ROOT)
        blocks = make_blocks(args.work_dir)
        date = datetime.date.today().isoformat()
        stale, used = [], set()
        for doc in DOCS:
            with open(doc) as f:
                text = f.read()
            new, changed, unknown = replace_blocks(text, blocks, date)
            if unknown:
                raise UserError(f'{doc} has blocks this script does not make: '
                                f'{", ".join(unknown)}')
            used.update(block_names(text))
            stale += [f'{doc}:{name}' for name in changed]
            if not args.check and new != text:
                atomic_write_text(new, doc)
        for name in sorted(set(blocks) - used):
            print(f'note: no document quotes the block {name}')
        print(('stale: ' if args.check else 'refreshed: ') + (', '.join(stale) or 'nothing'))
        if args.check and stale:
            sys.exit(1)

    cli_main(run)()


if __name__ == '__main__':
    main()
