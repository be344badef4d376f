"""The main job on the demo data (``make demo``): EPSD classification, then sparse detection.

Stages, each a real tool run in its own process so that its progress streams as it goes:

0. the demo data (``data/demo``), generated if missing (``epsd_mm.datasets.make_demo_data``);
1. ``tools/train.py configs/demo/epsd_dlb_demo.py``: prune a small ResNet-18 at initialization
   with ``epsd`` to 0.9 sparsity and train it with DLB on the demo shapes;
2. ``tools/train.py configs/demo/frcnn_demo.py``: transfer that backbone (weights and masks) into
   a small Faster R-CNN trained on the demo VOC-format set, its pruned weights kept at zero;
3. ``tools/test.py``: VOC mAP@0.5 of the detector on the demo test split;
4. a summary, printed and written atomically to ``<work-dir>/summary.json``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from epsd_mm.utils.errors import UserError, cli_main  # noqa: E402
from epsd_mm.utils.io import atomic_json_dump  # noqa: E402

CLS_CONFIG = 'configs/demo/epsd_dlb_demo.py'
DET_CONFIG = 'configs/demo/frcnn_demo.py'
# The plain mmdet/mmpretrain configs that open the published checkpoints without epsd_mm.
DET_INFER_CONFIG = 'configs/demo/frcnn_demo_infer.py'
CLS_INFER_CONFIG = 'configs/demo/cls_demo_infer.py'
DATA_ROOT = 'data/demo'  # where the demo configs read their data
# The targets, reported beside the results.
TARGET_MAP = 0.5
TARGET_SECONDS = 15 * 60


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Run the EPSD demo end to end on generated data: (0) generate the demo '
        f'data under {DATA_ROOT} if missing; (1) prune a small ResNet-18 at initialization '
        'with EPSD to 0.9 sparsity and train it with DLB self-distillation on the shapes '
        f'classification set ({CLS_CONFIG}); (2) transfer the pruned backbone, weights and '
        'masks, into a small Faster R-CNN trained on the shapes VOC-format set with the pruned '
        f'weights kept at exactly zero ({DET_CONFIG}); (3) evaluate VOC mAP@0.5 with '
        'tools/test.py; (4) print a summary and write WORK_DIR/summary.json (mAP, detector '
        'checkpoint, measured backbone sparsity, pruned entries that are not zero, top-1 of '
        'the classifier, seconds per stage). Paths are relative to the repository root.',
        epilog='example: python tools/demo.py          (what `make demo` runs)\n'
        '         python tools/demo.py --cls-checkpoint work_dirs/demo/cls/epoch_30.pth',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='where the runs and summary.json go (default: %(default)s)')
    parser.add_argument('--cls-config', default=CLS_CONFIG,
                        help='classification config of stage 1 (default: %(default)s)')
    parser.add_argument('--det-config', default=DET_CONFIG,
                        help='detection config of stages 2 and 3 (default: %(default)s)')
    parser.add_argument('--cls-checkpoint',
                        help='skip stage 1 and transfer this classification checkpoint')
    parser.add_argument('--verbose', action='store_true',
                        help="show the tools' whole terminal output (mmengine's config, "
                        'environment and hook dumps); without it the terminal shows the steps, '
                        "the mask table, progress and the summary, and mmengine's log files "
                        'under the work dir stay complete either way')
    return parser.parse_args(argv)


def banner(text):
    print(f'\n[demo] ===== {text}', flush=True)


#: The first line of an mmengine log record on the terminal: ``12/01 06:09:38 - mmengine - INFO -``.
RECORD = re.compile(rb'^\d\d/\d\d \d\d:\d\d:\d\d - mmengine - [A-Z]+ - ')
#: Records the terminal leaves out unless --verbose (the log file keeps them): the Runner's
#: config, environment and hook dumps, each tens to hundreds of lines.
#: mmengine's ProgressBar (``[>>>>   ] 2/4, ...``, redrawn after ``\r``).
BAR = re.compile(rb'^\r?\[[> ]*\]')
QUIET = re.compile(rb'(Config:|System environment:|Hooks will be executed|Distributed '
                   rb'training is not used|Checkpoints will be saved to)')


class QuietFilter:
    """Pass a tool's stdout through, leaving out the records matched by :data:`QUIET`.

    A record is its first line (:data:`RECORD`) and the lines that follow it up to the next
    record; one whose first line has an empty message (the environment dump starts with a
    newline) is decided on its first line of text. Anything that is not a log record (progress
    bars, the tools' own prints) passes as it comes, partial lines included.
    """

    def __init__(self, out):
        self.out, self.hiding, self.pending, self.buf = out, False, None, b''
        self.in_bar = False  # the start of a progress bar's line was shown

    def _line(self, line):
        if self.in_bar or BAR.match(line):  # a progress bar, wherever it is
            self.out.write(line)
            self.in_bar = False
            return
        if RECORD.match(line):
            self.hiding = bool(QUIET.search(line))
            if not self.hiding and not line[RECORD.match(line).end():].strip():
                self.pending = [line]  # decided by the record's first line of text
                return
        elif self.pending is not None:
            self.pending.append(line)
            if not line.strip() or set(line.strip()) == {ord('-')}:
                return
            lines, self.pending = self.pending, None
            self.hiding = bool(QUIET.search(line))
            if not self.hiding:
                self.out.write(b''.join(lines))
            return
        if not self.hiding:
            self.out.write(line)

    def feed(self, data):
        self.buf += data
        while b'\n' in self.buf:
            line, self.buf = self.buf.split(b'\n', 1)
            self._line(line + b'\n')
        bar = self.in_bar or bool(BAR.match(self.buf))
        if self.buf and (bar or not self.hiding) and self.pending is None \
                and not self.buf[:1].isdigit():
            self.out.write(self.buf)  # a progress bar's partial line: show it now
            self.in_bar, self.buf = bar, b''
        self.out.flush()

    def close(self):
        if self.pending:
            self.out.write(b''.join(self.pending))
        if self.buf and not self.hiding:
            self.out.write(self.buf)
        self.out.flush()


def run_tool(args, what, log_dir, verbose=True):
    """Run a tool with this interpreter, its output streaming through (filtered by
    :class:`QuietFilter` unless ``verbose``); a failure raises."""
    cmd = [sys.executable] + list(args)
    print('[demo] $ ' + ' '.join(cmd), flush=True)
    env = dict(os.environ)
    # One compute thread unless the user chose otherwise: these small models gain little from
    # a second thread, and on a busy 2-core machine OpenMP threads that spin-wait for each
    # other slowed training down by 10x and more in our measurements.
    env.setdefault('OMP_NUM_THREADS', '1')
    # The tools import epsd_mm: make this checkout importable even where it is not installed.
    env['PYTHONPATH'] = ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    if verbose:
        rc = subprocess.call(cmd, cwd=ROOT, env=env)
    else:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE)
        quiet = QuietFilter(sys.stdout.buffer)
        for chunk in iter(lambda: os.read(proc.stdout.fileno(), 1 << 16), b''):
            quiet.feed(chunk)
        quiet.close()
        rc = proc.wait()
    if rc != 0:
        raise UserError(f'{what} failed with exit status {rc}: see its output above and its '
                        f'log under {log_dir}')


def last_checkpoint(work_dir, since, what):
    """The checkpoint mmengine's CheckpointHook last wrote into ``work_dir`` (after ``since``)."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    path = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            path = f.read().strip()
    if not path or not osp.isfile(path) or osp.getmtime(path) < since:
        raise UserError(f'{what} wrote no checkpoint into {work_dir} (no recent '
                        f'{pointer}); check that its config keeps a CheckpointHook')
    return osp.relpath(path, ROOT) if osp.isabs(path) else path


def run_dirs(work_dir, since):
    """The timestamped log directories mmengine created in ``work_dir`` since ``since``."""
    dirs = [d for d in glob.glob(osp.join(work_dir, '*'))
            if re.fullmatch(r'\d{8}_\d{6}', osp.basename(d)) and osp.isdir(d)
            and osp.getmtime(d) >= since - 1]
    return sorted(dirs)


def read_json_lines(path):
    records = []
    if osp.isfile(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    records.append(json.loads(line))
    return records


def classification_top1(work_dir, since):
    """The last ``accuracy/top1`` of the classification run (a fraction), or None."""
    for d in reversed(run_dirs(work_dir, since)):
        values = [r['accuracy/top1'] for r in
                  read_json_lines(osp.join(d, 'vis_data', 'scalars.json'))
                  if 'accuracy/top1' in r]
        if values:
            return values[-1] / 100.0  # mmpretrain reports percent
    return None


def test_metrics(work_dir, since):
    """The metrics ``tools/test.py`` logged: ``<work_dir>/<timestamp>/<timestamp>.json``."""
    for d in reversed(run_dirs(work_dir, since)):
        records = read_json_lines(osp.join(d, osp.basename(d) + '.json'))
        if records:
            return records[-1]
    raise UserError(f'the test run logged no metrics under {work_dir}/<timestamp>/')


def detector_sparsity(det_ckpt):
    """Masks of the detector checkpoint's backbone: count, sparsity, non-zero pruned entries."""
    from epsd_mm.analysis.compact import read_checkpoint
    from epsd_mm.pruning.masks import CHECKPOINT_KEY, MaskSet

    ckpt = read_checkpoint(det_ckpt)
    if CHECKPOINT_KEY not in ckpt:
        raise UserError(f'the detector checkpoint {det_ckpt} holds no masks ("pruning"): was '
                        'the PruningHook left out of the detection config?')
    masks = MaskSet.from_dict(ckpt[CHECKPOINT_KEY], source=det_ckpt)
    backbone = masks.select(lambda n: n.startswith('backbone.'))
    state = ckpt['state_dict']
    zeros = sum(int((state[n] == 0).sum()) for n in backbone.names())
    return dict(backbone_masks=len(backbone), backbone_prunable=backbone.numel,
                backbone_sparsity=backbone.sparsity,
                backbone_zero_fraction=zeros / backbone.numel if backbone.numel else 0.0,
                pruned_nonzero=backbone.zero_violations(state))


@cli_main
def main(argv=None):
    args = parse_args(argv)
    os.chdir(ROOT)  # the demo configs name their data relative to the repository root
    start = time.time()
    seconds = {}
    cls_dir = osp.join(args.work_dir, 'cls')
    det_dir = osp.join(args.work_dir, 'det')
    test_dir = osp.join(args.work_dir, 'test')

    banner(f'stage 0/3: demo data under {DATA_ROOT}')
    t = time.time()
    from epsd_mm.datasets.demo import make_demo_data
    data = make_demo_data(DATA_ROOT)
    seconds['data'] = time.time() - t
    print(f'[demo] demo data ready: {data.counts} ({seconds["data"]:.0f} s)', flush=True)

    top1 = None
    if args.cls_checkpoint:
        if not osp.isfile(args.cls_checkpoint):
            raise UserError(f'--cls-checkpoint {args.cls_checkpoint} does not exist')
        cls_ckpt = args.cls_checkpoint
        banner(f'stage 1/3: skipped, transferring {cls_ckpt}')
    else:
        banner('stage 1/3: prune at init with EPSD (0.9) and train with DLB: '
               f'{args.cls_config}')
        t = time.time()
        run_tool(['tools/train.py', args.cls_config, '--work-dir', cls_dir],
                 'classification training', cls_dir, args.verbose)
        seconds['classification'] = time.time() - t
        cls_ckpt = last_checkpoint(cls_dir, t, 'classification training')
        top1 = classification_top1(cls_dir, t)
        print(f'[demo] classification checkpoint {cls_ckpt}, top-1 '
              f'{"n/a" if top1 is None else f"{top1:.4f}"} ({seconds["classification"]:.0f} s)',
              flush=True)

    banner(f'stage 2/3: transfer into Faster R-CNN, masks kept: {args.det_config}')
    t = time.time()
    # A top-level config variable (cls_checkpoint) is resolved when the config is parsed, so
    # the two fields that use it are overridden themselves.
    transfer = ['--cfg-options', f'model.backbone.init_cfg.checkpoint={cls_ckpt}',
                f'custom_hooks.0.mask_file={cls_ckpt}']
    run_tool(['tools/train.py', args.det_config, '--work-dir', det_dir] + transfer,
             'detection training', det_dir, args.verbose)
    seconds['detection'] = time.time() - t
    det_ckpt = last_checkpoint(det_dir, t, 'detection training')
    print(f'[demo] detector checkpoint {det_ckpt} ({seconds["detection"]:.0f} s)', flush=True)

    banner('stage 3/3: VOC mAP@0.5 on the demo test split with tools/test.py')
    t = time.time()
    run_tool(['tools/test.py', args.det_config, det_ckpt, '--work-dir', test_dir],
             'testing', test_dir, args.verbose)
    seconds['test'] = time.time() - t
    metrics = test_metrics(test_dir, t)
    if 'pascal_voc/mAP' not in metrics:
        raise UserError(f'the test run logged no pascal_voc/mAP (got {sorted(metrics)}); does '
                        f'{args.det_config} evaluate with VOCMetric?')

    sparsity = detector_sparsity(det_ckpt)
    # Published copies (tools/publish_model.py): what opens without epsd_mm, in any mmdet or
    # mmpretrain tool, with the plain configs beside the demo's.
    from epsd_mm.analysis.publish import publish_checkpoint
    pub_dir = osp.join(args.work_dir, 'published')
    published_det = osp.relpath(publish_checkpoint(
        det_ckpt, osp.join(pub_dir, 'frcnn_demo'))['path'], ROOT)
    published_cls = None if args.cls_checkpoint else osp.relpath(publish_checkpoint(
        cls_ckpt, osp.join(pub_dir, 'cls_demo'))['path'], ROOT)
    total = time.time() - start
    summary = dict(
        mAP=float(metrics['pascal_voc/mAP']),
        detector_checkpoint=det_ckpt,
        backbone_sparsity=sparsity['backbone_sparsity'],
        seconds=round(total, 1),
        pruned_nonzero=sparsity['pruned_nonzero'],
        backbone_zero_fraction=sparsity['backbone_zero_fraction'],
        backbone_masks=sparsity['backbone_masks'],
        backbone_prunable_weights=sparsity['backbone_prunable'],
        published_detector=published_det,
        detector_inference_config=DET_INFER_CONFIG,
        classification_checkpoint=cls_ckpt,
        published_classifier=published_cls,
        classifier_inference_config=None if published_cls is None else CLS_INFER_CONFIG,
        classification_top1=top1,
        stage_seconds={k: round(v, 1) for k, v in seconds.items()},
        metrics={k: v for k, v in metrics.items() if k.startswith('pascal_voc/')},
        targets=dict(mAP=TARGET_MAP, seconds=TARGET_SECONDS),
        configs=dict(classification=None if args.cls_checkpoint else args.cls_config,
                     detection=args.det_config),
    )
    out = osp.join(args.work_dir, 'summary.json')
    atomic_json_dump(summary, out)

    banner('summary')
    stages = ', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())
    print(f'  VOC mAP@0.5 (demo test split): {summary["mAP"]:.4f} (target >= {TARGET_MAP})\n'
          f'  detector checkpoint:           {det_ckpt} (training: resume, our tools)\n'
          f'  published detector:            {published_det} (any mmdet tool, no epsd_mm: '
          f"init_detector('{DET_INFER_CONFIG}', ...))\n"
          f'  backbone sparsity:             {summary["backbone_sparsity"]:.4f} over '
          f'{sparsity["backbone_prunable"]:,} prunable weights in {sparsity["backbone_masks"]} '
          f'masks; pruned entries not zero: {summary["pruned_nonzero"]}\n'
          f'  classifier top-1:              '
          f'{"n/a" if top1 is None else f"{top1:.4f}"} ({cls_ckpt})\n'
          f'  time:                          {total:.0f} s ({stages}; target <= '
          f'{TARGET_SECONDS} s)\n'
          f'  written:                       {out}', flush=True)
    if summary['pruned_nonzero']:
        # The run's one invariant: a sparse detector. Never report success without it.
        print(f'[demo] FAILED: {summary["pruned_nonzero"]} pruned backbone entries are not '
              'zero in the detector checkpoint', file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == '__main__':
    main()
