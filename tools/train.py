#!/usr/bin/env python
"""Train a classifier (mmpretrain config) or a detector (mmdet config) with the mmengine Runner.

The flags and their behaviour follow mmdet 3.3's ``tools/train.py``.
"""
import argparse
import os
import os.path as osp
import sys

import epsd_mm  # noqa: F401  fills the registries and installs the torch>=2.6 checkpoint shim
from epsd_mm.hooks import CheckpointFitHook, use_atomic_checkpoints, use_finite_loss_check
from epsd_mm.utils.checkpoints import find_resumable
from epsd_mm.utils.config_checks import (
    adapt_dist_to_cpu,
    check_checkpoint_paths,
    check_class_folders,
    check_data_paths,
    check_hook_args,
    check_writable_dir,
    finish_dist,
    import_scope,
    load_config,
)
from epsd_mm.utils.errors import UserError, cli_main

EPILOG = '''\
examples:
  python tools/train.py configs/epsd_voc_frcnn.py
  python tools/train.py CONFIG --work-dir work_dirs/run1 --cfg-options train_cfg.max_epochs=2
  python tools/train.py CONFIG --work-dir work_dirs/run1 --resume        # latest checkpoint
  python tools/train.py CONFIG --resume work_dirs/run1/epoch_3.pth       # a given checkpoint
  bash tools/dist_train.sh CONFIG 2                                      # 2 processes

The task (classification or detection) follows the config's default_scope
(mmpretrain or mmdet). Logs and checkpoints go to --work-dir, else to the config's
work_dir, else to ./work_dirs/<config name>.
'''


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description='Train a model from an mmpretrain (classification) or mmdet (detection)\n'
                    'config with the mmengine Runner.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', default=False,
        help='enable automatic-mixed-precision training (needs a GPU)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='enable automatically scaling LR by the total batch size: lr x (processes x '
             'batch_size) / auto_scale_lr.base_batch_size, as mmengine scales it (detection '
             'configs need auto_scale_lr with enable and base_batch_size, as mmdet; '
             'classification configs base_batch_size, as mmpretrain)')
    # mmpretrain's train.py flags (honoured for detection configs as well)
    parser.add_argument('--no-validate', action='store_true',
                        help='do not validate during training (mmpretrain\'s flag)')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='pin_memory=False in every dataloader (mmpretrain\'s flag)')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='persistent_workers=False in every dataloader (mmpretrain\'s '
                             'flag)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a path, resume from the latest '
             'checkpoint in the work directory')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override some settings in the used config, the key-value pair in xxx=yyy '
             'format will be merged into config file. If the value to be overwritten is a '
             'list, it should be like key="[a,b]" or key=a,b It also allows nested '
             'list/tuple values, e.g. key="[(a,b),(c,d)]" Note that the quotation marks are '
             'necessary and that no white space is allowed.')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher (tools/dist_train.sh uses pytorch; without CUDA the gloo '
             'backend is used)')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_auto_scale_lr(cfg):
    """``--auto-scale-lr`` as the tool of the config's scope does it: mmdet's train.py needs
    ``auto_scale_lr`` with ``enable`` and ``base_batch_size``, mmpretrain's only sets
    ``enable=True`` (its recipes write ``auto_scale_lr = dict(base_batch_size=N)``). The
    scaling itself is mmengine's (``Runner.scale_lr``); a config without ``base_batch_size``
    is answered here instead of by its assertion."""
    auto_scale_lr = cfg.get('auto_scale_lr') or {}
    example = 'auto_scale_lr = dict(enable=False, base_batch_size=16)'
    if cfg.get('default_scope') == 'mmdet':
        if 'enable' not in auto_scale_lr or 'base_batch_size' not in auto_scale_lr:
            raise UserError('--auto-scale-lr needs "auto_scale_lr" with "enable" and '
                            f'"base_batch_size" in a detection config (as mmdet), e.g. {example}')
    elif 'base_batch_size' not in auto_scale_lr:
        raise UserError('--auto-scale-lr needs "auto_scale_lr" with "base_batch_size" in the '
                        'config (the total batch size its lr is set for), e.g. '
                        'auto_scale_lr = dict(base_batch_size=128)')
    cfg.auto_scale_lr = dict(auto_scale_lr, enable=True)


def merge_args(cfg, args):
    """Apply the command line to ``cfg`` the way mmdet's train.py does."""
    cfg.launcher = args.launcher
    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        from mmengine.device import get_device
        if get_device() == 'cpu':
            raise UserError('--amp needs a GPU (mmengine\'s AmpOptimWrapper does not run on '
                            'CPU); drop --amp on this machine')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    if args.no_validate:  # as mmpretrain's train.py
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    for flag, field in ((args.no_pin_memory, 'pin_memory'),
                        (args.no_persistent_workers, 'persistent_workers')):
        if flag:
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
                if cfg.get(loader) is not None:
                    cfg[loader][field] = False

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = resume_latest(cfg.work_dir)
    elif args.resume is not None:
        if '://' not in args.resume and not osp.isfile(args.resume):
            raise UserError(f'checkpoint to resume from not found: {args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume
    use_atomic_checkpoints(cfg)
    use_finite_loss_check(cfg)
    return cfg


def resume_latest(work_dir):
    """The checkpoint ``--resume`` without a path takes: the latest one of ``work_dir`` if it
    is readable, else the newest readable one, saying which were skipped and why. None (a
    fresh start, as mmengine does) when the work dir has no checkpoint at all."""
    path, skipped, recorded = find_resumable(work_dir)
    if path is None and skipped:
        raise UserError(
            f'--resume: no readable checkpoint in {work_dir}: '
            + '; '.join(f'{p}: {problem}' for p, problem in skipped)
            + '; start without --resume, or give --resume PATH')
    if int(os.environ.get('RANK', '0')) != 0:
        return path
    for p, problem in skipped:
        print(f'--resume: skipping {p}: {problem}', file=sys.stderr, flush=True)
    if skipped:
        print(f'--resume: resuming from {path}, the newest readable checkpoint',
              file=sys.stderr, flush=True)
    elif path is not None and not recorded:
        print(f'--resume: {work_dir} has no last_checkpoint; resuming from {path}, its newest '
              'readable checkpoint', file=sys.stderr, flush=True)
    return path


@cli_main
def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    scope = import_scope(cfg)
    if scope == 'mmdet':
        # As mmdet's tool: fewer dynamo recompilations for detection's dynamic shapes.
        from mmdet.utils import setup_cache_size_limit_of_dynamo
        setup_cache_size_limit_of_dynamo()
    merge_args(cfg, args)
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    check_class_folders(cfg, ('train_dataloader', 'val_dataloader'))
    check_hook_args(cfg)
    check_checkpoint_paths(cfg)
    check_writable_dir(cfg.work_dir)
    adapt_dist_to_cpu(cfg, args.launcher)

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    if cfg.get('resume'):
        # a resume restores optimizer and schedulers too: the weights must all fit
        runner.register_hook(CheckpointFitHook(
            hint='resume from a checkpoint of a run of this config'))
    runner.train()
    del runner  # frees the DDP-wrapped model before the group goes: see finish_dist
    finish_dist()


if __name__ == '__main__':
    main()
