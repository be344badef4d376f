"""The train/test flags behave as the tool of the config's scope: ``--auto-scale-lr`` on every
shipped config that sets ``auto_scale_lr`` (mmpretrain's recipes write only
``base_batch_size``, mmdet's ``enable`` too), with the learning rate then scaled by mmengine's
own ``Runner.scale_lr``; mmpretrain's ``--no-validate``, ``--no-pin-memory``,
``--no-persistent-workers`` (train) and ``--out-item``, ``--amp`` (test)."""
import importlib.util
import json
import os.path as osp
import sys

import pytest
import torch

from epsd_mm.utils.config_checks import load_config
from epsd_mm.utils.errors import UserError
from tests.configs.test_all_configs import CONFIG_DIR, CONFIGS, _cached_metafiles  # noqa: F401

# the foundation tests' tiny classification set-up and its one-epoch run (module fixtures)
from tests.test_tools import TEST, one_epoch, run, tiny_cls  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _train_tool():
    spec = importlib.util.spec_from_file_location('epsd_train_tool',
                                                  osp.join(ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _merged(path, *flags, cfg_options=None):
    train = _train_tool()
    cfg = load_config(path, cfg_options)
    train.merge_args(cfg, train.parse_args([path, *flags]))
    return cfg


def _auto_scale_configs():
    return [c for c in CONFIGS if 'auto_scale_lr' in load_config(osp.join(CONFIG_DIR, c))]


@pytest.fixture(scope='module')
def auto_scale_configs():
    return _auto_scale_configs()


def test_auto_scale_lr_on_every_recipe_that_sets_it(auto_scale_configs, tmp_path):
    """Each config is loaded as tools/train.py loads it, with --auto-scale-lr and a batch of
    twice its base_batch_size; mmengine's Runner.scale_lr then doubles every group's lr."""
    from mmengine.runner import Runner
    from mmpretrain.models import ImageClassifier

    # the recipes the issue names, and mmdet's VOC schedule under the detection configs
    assert 'classification/cifar100/epsd_cskd_r18_cifar100.py' in auto_scale_configs
    assert 'epsd_voc_frcnn.py' in auto_scale_configs
    assert len(auto_scale_configs) >= 47, auto_scale_configs
    torch.manual_seed(0)
    model = ImageClassifier(backbone=dict(type='mmpretrain.ResNet_CIFAR', depth=18,
                                          base_channels=4),
                            neck=dict(type='mmpretrain.GlobalAveragePooling'),
                            head=dict(type='mmpretrain.LinearClsHead', num_classes=3,
                                      in_channels=32))
    for i, name in enumerate(auto_scale_configs):
        path = osp.join(CONFIG_DIR, name)
        base = load_config(path).auto_scale_lr['base_batch_size']
        cfg = _merged(path, '--auto-scale-lr',
                      cfg_options={'train_dataloader.batch_size': 2 * base})
        assert cfg.auto_scale_lr['enable'] is True and cfg.auto_scale_lr[
            'base_batch_size'] == base, name
        runner = Runner(model=model, work_dir=str(tmp_path / str(i)),
                        train_dataloader=cfg.train_dataloader, train_cfg=cfg.train_cfg,
                        optim_wrapper=cfg.optim_wrapper, param_scheduler=cfg.param_scheduler,
                        auto_scale_lr=cfg.auto_scale_lr, default_scope=cfg.default_scope,
                        experiment_name=f'scale_lr_{i}')
        wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
        before = [g['lr'] for g in wrapper.param_groups]
        runner.scale_lr(wrapper, runner.auto_scale_lr)
        assert [g['lr'] for g in wrapper.param_groups] == pytest.approx(
            [2 * lr for lr in before]), name


def test_auto_scale_lr_needs_base_batch_size(tiny_cls):  # noqa: F811
    config, _ = tiny_cls
    with pytest.raises(UserError, match='"base_batch_size"'):
        _merged(config, '--auto-scale-lr')
    cfg = _merged(config, '--auto-scale-lr',
                  cfg_options={'auto_scale_lr': dict(base_batch_size=16)})
    assert cfg.auto_scale_lr == dict(base_batch_size=16, enable=True)
    # a detection config needs mmdet's two keys, as mmdet's train.py
    det = osp.join(CONFIG_DIR, 'demo', 'frcnn_demo.py')
    with pytest.raises(UserError, match='"enable" and "base_batch_size" in a detection'):
        _merged(det, '--auto-scale-lr', cfg_options={'auto_scale_lr': dict(base_batch_size=4)})


def test_mmpretrain_train_flags(tiny_cls):  # noqa: F811
    config, _ = tiny_cls
    cfg = _merged(config, '--no-validate', '--no-pin-memory', '--no-persistent-workers')
    assert cfg.val_cfg is None and cfg.val_dataloader is None and cfg.val_evaluator is None
    for loader in ('train_dataloader', 'test_dataloader'):
        assert cfg[loader]['pin_memory'] is False and cfg[loader]['persistent_workers'] is False
    plain = _merged(config)
    assert plain.val_cfg == {} and 'pin_memory' not in plain.train_dataloader


def test_no_validate_trains_without_validation(tiny_cls, tmp_path):  # noqa: F811
    config, _ = tiny_cls
    work = tmp_path / 'work'
    proc = run(sys.executable, osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
               str(work), '--no-validate', '--no-persistent-workers', '--cfg-options',
               'train_cfg.max_epochs=1')
    log = proc.stdout + proc.stderr
    assert 'Epoch(train) [1][3/3]' in log
    assert 'Epoch(val)' not in log and 'accuracy/top1' not in log
    assert osp.isfile(work / 'epoch_1.pth')


def test_out_item_metrics_and_amp(tiny_cls, one_epoch, tmp_path):  # noqa: F811
    config, _ = tiny_cls
    work_dir, _ = one_epoch
    ckpt = osp.join(work_dir, 'epoch_1.pth')
    out = tmp_path / 'metrics.json'
    proc = run(sys.executable, TEST, config, ckpt, '--work-dir', str(tmp_path / 'w'), '--out',
               str(out), '--out-item', 'metrics', '--amp')
    with open(out) as f:
        metrics = json.load(f)
    assert list(metrics) == ['accuracy/top1']
    assert f"accuracy/top1: {metrics['accuracy/top1']:.4f}" in proc.stdout + proc.stderr
    bad = run(sys.executable, TEST, config, ckpt, '--out-item', 'metrics', check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == 'error: --out-item needs --out FILE ' \
        'to write to'
