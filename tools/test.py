#!/usr/bin/env python
"""Test (and evaluate) a checkpoint of a classifier (mmpretrain config) or a detector (mmdet
config) with the mmengine Runner.

The flags and their behaviour follow mmdet 3.3's ``tools/test.py``.
"""
import argparse
import copy
import os
import os.path as osp
import warnings

import epsd_mm  # noqa: F401  fills the registries and installs the torch>=2.6 checkpoint shim
from epsd_mm.hooks import CheckpointFitHook
from epsd_mm.utils.config_checks import (
    adapt_dist_to_cpu,
    check_class_folders,
    check_data_paths,
    check_readable,
    check_writable_dir,
    finish_dist,
    import_scope,
    load_config,
)
from epsd_mm.utils.errors import UserError, cli_main
from epsd_mm.utils.io import atomic_path

EPILOG = '''\
examples:
  python tools/test.py configs/epsd_voc_frcnn.py work_dirs/epsd_voc_frcnn/epoch_4.pth
  python tools/test.py CONFIG CHECKPOINT --out results.pkl     # also dump the predictions
  python tools/test.py CONFIG CHECKPOINT --show-dir vis        # save painted images
  bash tools/dist_test.sh CONFIG CHECKPOINT 2                  # 2 processes

The metrics come from the config's test_evaluator and are printed and logged under
--work-dir. The task (classification or detection) follows the config's default_scope
(mmpretrain or mmdet); --show-dir uses that package's visualization hook (mmdet writes
under WORK_DIR/TIMESTAMP/SHOW_DIR, mmpretrain into SHOW_DIR).
'''

#: ``--out-item metrics``: the file endings of ``--out`` and mmengine's dump format for each.
METRICS_FORMATS = {'.json': 'json', '.yaml': 'yaml', '.yml': 'yaml', '.pkl': 'pkl',
                   '.pickle': 'pkl'}


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a checkpoint of an mmpretrain (classification) or\n'
                    'mmdet (detection) config with the mmengine Runner.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out', type=str,
        help='dump predictions to a pickle file (.pkl) for offline evaluation')
    # mmpretrain's test.py flags (honoured for detection configs as well)
    parser.add_argument(
        '--out-item', choices=['metrics', 'pred'],
        help='what --out holds: the predictions (default) or the metrics (then --out may be '
             '.json, .yaml or .pkl), as mmpretrain\'s test.py')
    parser.add_argument('--amp', action='store_true',
                        help='test with automatic mixed precision (test_cfg.fp16=True)')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved (detection: under '
             'WORK_DIR/TIMESTAMP/SHOW_DIR, as mmdet does)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--interval', type=int, default=None,
        help='paint every INTERVAL-th image (default: every image for classification, as '
             'mmpretrain; the config\'s hook setting for detection, as mmdet)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy '
             'format will be merged into config file. If the value to be overwritten is a '
             'list, it should be like key="[a,b]" or key=a,b It also allows nested '
             'list/tuple values, e.g. key="[(a,b),(c,d)]" Note that the quotation marks are '
             'necessary and that no white space is allowed.')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher (tools/dist_test.sh uses pytorch; without CUDA the gloo '
             'backend is used)')
    parser.add_argument('--tta', action='store_true', help='test with flip test-time '
                        'augmentation (the config\'s tta_model/tta_pipeline if it has them)')
    parser.add_argument('--partial', action='store_true',
                        help='load a checkpoint whose entries do not all fit the model (the '
                        'rest keeps its initialization); without it such a checkpoint is an '
                        'error naming the missing and unexpected keys')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args, task):
    """Turn on the config's visualization hook the way mmdet's (detection) or mmpretrain's
    (classification) test tool does."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        example = ("visualization=dict(type='DetVisualizationHook')" if task == 'det' else
                   "visualization=dict(type='VisualizationHook', enable=False)")
        raise UserError(f'--show/--show-dir need a visualization hook in the config\'s '
                        f'default_hooks; add default_hooks = dict({example})')
    if task == 'det':
        hook['draw'] = True
        if args.show:
            hook['show'] = True
            hook['wait_time'] = args.wait_time
        if args.show_dir:
            hook['test_out_dir'] = args.show_dir
        if args.interval is not None:
            hook['interval'] = args.interval
    else:
        hook['enable'] = True
        hook['show'] = args.show
        hook['wait_time'] = args.wait_time
        hook['out_dir'] = args.show_dir
        hook['interval'] = 1 if args.interval is None else args.interval
    return cfg


def _innermost_dataset(dataset_cfg):
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def apply_tta(cfg, task):
    """Wrap the model in the package's TTA model with a flip test pipeline, as mmdet's
    (detection) and mmpretrain's (classification) test tools do when the config has none."""
    from mmengine.config import ConfigDict

    test_data_cfg = _innermost_dataset(cfg.test_dataloader.dataset)
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, using the default one.')
        if task == 'det':
            cfg.tta_model = dict(
                type='DetTTAModel',
                tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
        else:
            cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
    if 'tta_pipeline' not in cfg:
        warnings.warn('Cannot find ``tta_pipeline`` in config, using a flip one.')
        cfg.tta_pipeline = copy.deepcopy(test_data_cfg.pipeline)
        if task == 'det':
            pack = dict(type='PackDetInputs',
                        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                   'scale_factor', 'flip', 'flip_direction'))
        else:
            pack = test_data_cfg.pipeline[-1]
        cfg.tta_pipeline[-1] = dict(
            type='TestTimeAug',
            # the unflipped view first: the merged result keeps the first view's data sample,
            # ground truth included, and a test pipeline that loads annotations before this
            # step would give the flipped view flipped boxes (mmdet puts the flipped one first)
            transforms=[[dict(type='RandomFlip', prob=0.), dict(type='RandomFlip', prob=1.)],
                        [pack]])
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    test_data_cfg.pipeline = cfg.tta_pipeline
    return cfg


class AtomicDumpMixin:
    """Write the dumped predictions through :func:`epsd_mm.utils.io.atomic_path`, so a killed
    test never leaves a half-written ``--out`` file."""

    def compute_metrics(self, results):
        from mmengine.fileio import dump
        from mmengine.logging import print_log

        with atomic_path(self.out_file_path) as tmp:
            dump(results, tmp, file_format='pkl')
        print_log(f'Results has been saved to {self.out_file_path}.', logger='current')
        return {}


def dump_metric(out_file, task):
    """The metric that dumps predictions: mmdet's ``DumpDetResults`` (masks as RLE) for
    detection, mmengine's ``DumpResults`` otherwise, both written atomically."""
    if task == 'det':
        from mmdet.evaluation import DumpDetResults as base
    else:
        from mmengine.evaluator import DumpResults as base
    metric_cls = type(f'Atomic{base.__name__}', (AtomicDumpMixin, base), {})
    return metric_cls(out_file_path=out_file)


@cli_main
def main(argv=None):
    args = parse_args(argv)
    if args.out_item is not None and args.out is None:
        raise UserError('--out-item needs --out FILE to write to')
    if args.out_item == 'metrics':
        if osp.splitext(args.out)[1] not in METRICS_FORMATS:
            raise UserError(f'--out with --out-item metrics must name a .json, .yaml or .pkl '
                            f'file, got {args.out}')
    elif args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise UserError(f'--out must name a pickle file (.pkl or .pickle), got {args.out}')
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise UserError(f'checkpoint not found: {args.checkpoint}')
    check_readable(args.checkpoint, 'give a complete checkpoint')

    cfg = load_config(args.config, args.cfg_options)
    scope = import_scope(cfg)
    task = 'det' if scope == 'mmdet' else 'cls'
    if task == 'det':
        # As mmdet's tool: fewer dynamo recompilations for detection's dynamic shapes.
        from mmdet.utils import setup_cache_size_limit_of_dynamo
        setup_cache_size_limit_of_dynamo()

    cfg.launcher = args.launcher
    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args, task)
    if args.tta:
        apply_tta(cfg, task)
    if args.amp:  # as mmpretrain's test.py
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    check_data_paths(cfg, ('test_dataloader',))
    check_class_folders(cfg, ('test_dataloader',))
    check_writable_dir(cfg.work_dir)
    if args.out is not None:
        check_writable_dir(osp.dirname(osp.abspath(args.out)), 'directory of --out', '--out')
    adapt_dist_to_cpu(cfg, args.launcher)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    if args.out is not None and args.out_item != 'metrics':
        runner.test_evaluator.metrics.append(dump_metric(args.out, task))
    if not args.partial:
        runner.register_hook(CheckpointFitHook())
    metrics = runner.test()
    if args.out_item == 'metrics':
        from mmengine.fileio import dump
        with atomic_path(args.out) as tmp:
            dump(metrics, tmp, file_format=METRICS_FORMATS[osp.splitext(args.out)[1]])
    del runner  # frees the DDP-wrapped model before the group goes: see finish_dist
    finish_dist()


if __name__ == '__main__':
    main()
