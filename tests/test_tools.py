"""The foundation tools, run as a user runs them: tools/train.py, tools/test.py and the
dist_*.sh launchers in subprocesses, on a tiny class-folder dataset in the real on-disk format.

The model is a real mmpretrain ImageClassifier (ResNet_CIFAR-18 with 8 base channels) so a
whole epoch takes about a second of CPU; most of each subprocess's time is importing the stack.
"""
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import epsd_mm  # noqa: F401  (its compat shim lets torch.load read mmengine checkpoints)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')

NUM_CLASSES, TRAIN_PER_CLASS, VAL_PER_CLASS = 3, 8, 4
BATCH = 8
ITERS_PER_EPOCH = NUM_CLASSES * TRAIN_PER_CLASS // BATCH  # 3

CONFIG = """\
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['epsd_mm'], allow_failed_imports=False)
data_root = {data_root!r}
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=3, in_channels=64,
              loss=dict(type='CrossEntropyLoss'), topk=(1,)))
data_preprocessor = dict(num_classes=3, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)
pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size={batch}, num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size={batch}, num_workers=0,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1,))
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
# A two-epoch schedule whose LR drops tenfold after the first epoch, so a resumed second
# epoch shows the restored scheduler by its LR. `end` is explicit: mmengine would default it
# to max_epochs, and a resume restores it from the checkpoint.
param_scheduler = dict(type='MultiStepLR', by_epoch=True, begin=0, end=2, milestones=[1],
                       gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(logger=dict(type='LoggerHook', interval=1))
randomness = dict(seed=0)
"""


def run(*args, check=True, timeout=300, **extra_env):
    """Run a command with the checkout first on PYTHONPATH (the tools under test, not some
    installed copy) and ``extra_env`` set; return the CompletedProcess with text output."""
    env = dict(os.environ, **extra_env)
    env['PYTHONPATH'] = ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    env.setdefault('OMP_NUM_THREADS', '1')
    proc = subprocess.run([str(a) for a in args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        # stderr first and short: a launcher's failure report is there, and a CI log that
        # keeps only the head of a long message must still show it
        raise AssertionError(f'{args} exited {proc.returncode}\n--- stderr (tail)\n'
                             f'{proc.stderr[-3000:]}\n--- stdout (tail)\n{proc.stdout[-1500:]}')
    return proc


def write_class_folders(root):
    """3 classes of solid-ish colour, 8 train and 4 val 16x16 PNGs each, in the class-folder
    layout mmpretrain's CustomDataset reads (file names unique across classes)."""
    rng = np.random.default_rng(0)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for split, n in (('train', TRAIN_PER_CLASS), ('val', VAL_PER_CLASS)):
        for c, colour in enumerate(colours):
            folder = osp.join(root, split, f'class_{c}')
            os.makedirs(folder)
            for i in range(n):
                noise = rng.integers(0, 60, (16, 16, 3))
                img = np.clip(np.array(colour) * 0.7 + noise, 0, 255).astype(np.uint8)
                Image.fromarray(img).save(osp.join(folder, f'c{c}_{i}.png'))


@pytest.fixture(scope='module')
def tiny_cls(tmp_path_factory):
    """``(config_path, tmp_dir)`` of the tiny classification set-up."""
    tmp = tmp_path_factory.mktemp('tiny_cls')
    write_class_folders(str(tmp / 'data'))
    config = tmp / 'tiny_cls.py'
    config.write_text(CONFIG.format(data_root=str(tmp / 'data'), batch=BATCH))
    return str(config), tmp


@pytest.fixture(scope='module')
def one_epoch(tiny_cls):
    """Work dir of a run through tools/train.py stopped after its first epoch (of two), and
    its stdout+stderr."""
    config, tmp = tiny_cls
    work_dir = str(tmp / 'work')
    proc = run(sys.executable, TRAIN, config, '--work-dir', work_dir,
               '--cfg-options', 'train_cfg.max_epochs=1')
    return work_dir, proc.stdout + proc.stderr


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_package_imports_and_registers():
    import mmdet.registry
    import mmengine.registry
    import mmpretrain.registry

    from epsd_mm.registry import CRITERIA, SD_METHODS
    from epsd_mm.utils.compat import mmengine_safe_globals

    assert isinstance(epsd_mm.__version__, str)
    # the compat shim is installed by the import itself
    safe = set(torch.serialization.get_safe_globals())
    assert all(entry in safe for entry in mmengine_safe_globals())
    CRITERIA.import_from_location()
    SD_METHODS.import_from_location()
    assert {'random', 'magnitude', 'snip', 'grasp', 'synflow', 'prospr', 'epsd'} <= set(
        CRITERIA.module_dict)
    assert {'CSKD', 'PSKD', 'DLB'} <= set(SD_METHODS.module_dict)
    assert mmpretrain.registry.MODELS.get('SDImageClassifier') is not None
    # hooks live in mmengine's root registry, so both scopes find them
    hook = mmengine.registry.HOOKS.get('PruningHook')
    assert hook is not None
    assert mmpretrain.registry.HOOKS.get('PruningHook') is hook
    assert mmdet.registry.HOOKS.get('PruningHook') is hook


@pytest.mark.parametrize('tool, flags', [
    (TRAIN, ['--work-dir', '--resume', '--amp', '--auto-scale-lr', '--cfg-options',
             '--launcher']),
    (TEST, ['--work-dir', '--out', '--show', '--show-dir', '--wait-time', '--cfg-options',
            '--launcher', '--tta']),
])
def test_help_lists_flags(tool, flags):
    out = run(sys.executable, tool, '--help').stdout
    assert out.startswith('usage: ')
    for flag in flags:
        assert flag in out, flag
    assert 'examples:' in out and f'tools/{osp.basename(tool)} ' in out


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_dist_scripts_help_and_usage(script):
    path = osp.join(ROOT, 'tools', script)
    assert os.access(path, os.X_OK)
    out = run('bash', path, '--help').stdout
    assert out.startswith(f'usage: bash tools/{script}') and 'example' in out
    bad = run('bash', path, check=False)  # no arguments at all
    assert bad.returncode == 2 and bad.stderr.startswith('usage:')


def test_train_one_epoch(one_epoch):
    work_dir, log = one_epoch
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), map_location='cpu')
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == ITERS_PER_EPOCH
    assert f'Epoch(train) [1][{ITERS_PER_EPOCH}/{ITERS_PER_EPOCH}]' in log
    assert 'accuracy/top1' in log  # validation ran after the epoch
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read().strip() == osp.join(work_dir, 'epoch_1.pth')


def test_resume_to_second_epoch(tiny_cls, one_epoch, tmp_path):
    config, _ = tiny_cls
    work_dir, _ = one_epoch
    # resume a copy, so the one-epoch work dir stays as the other tests expect it
    resumed = str(tmp_path / 'work')
    os.makedirs(resumed)
    first = osp.join(resumed, 'epoch_1.pth')
    with open(osp.join(work_dir, 'epoch_1.pth'), 'rb') as src, open(first, 'wb') as dst:
        dst.write(src.read())
    proc = run(sys.executable, TRAIN, config, '--work-dir', resumed, '--resume', first)
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in proc.stdout + proc.stderr
    ckpt = torch.load(osp.join(resumed, 'epoch_2.pth'), map_location='cpu')
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 2 * ITERS_PER_EPOCH
    scalars = ckpt['message_hub']['log_scalars']
    # the message hub came back from epoch_1.pth: its 3 losses, then the 3 new ones
    losses, counts = scalars['train/loss'].data
    assert len(losses) == 2 * ITERS_PER_EPOCH and counts.tolist() == [1] * 6
    first_losses = torch.load(first, map_location='cpu')['message_hub']['log_scalars'][
        'train/loss'].data[0]
    assert losses[:ITERS_PER_EPOCH].tolist() == first_losses.tolist()
    # ... and the scheduler: epoch 1 at lr 0.05, the resumed epoch 2 at 0.005
    lrs = scalars['train/lr'].data[0]
    np.testing.assert_allclose(lrs, [0.05] * 3 + [0.005] * 3, rtol=1e-6)


def test_resume_auto_finds_latest(tiny_cls, one_epoch, tmp_path):
    """``--resume`` without a path takes the work dir's ``last_checkpoint``."""
    config, _ = tiny_cls
    work_dir, _ = one_epoch
    resumed = str(tmp_path / 'work')
    os.makedirs(resumed)
    with open(osp.join(work_dir, 'epoch_1.pth'), 'rb') as src, \
            open(osp.join(resumed, 'epoch_1.pth'), 'wb') as dst:
        dst.write(src.read())
    with open(osp.join(resumed, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(resumed, 'epoch_1.pth'))
    proc = run(sys.executable, TRAIN, config, '--work-dir', resumed, '--resume')
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in proc.stdout + proc.stderr
    assert torch.load(osp.join(resumed, 'epoch_2.pth'), map_location='cpu')['meta'][
        'epoch'] == 2


def test_test_tool_out_and_show_dir(tiny_cls, one_epoch, tmp_path):
    config, _ = tiny_cls
    work_dir, _ = one_epoch
    out = tmp_path / 'preds.pkl'
    show = tmp_path / 'vis'
    proc = run(sys.executable, TEST, config, osp.join(work_dir, 'epoch_1.pth'),
               '--work-dir', str(tmp_path / 'test_work'), '--out', str(out),
               '--show-dir', str(show))
    assert 'accuracy/top1' in proc.stdout + proc.stderr
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    n_val = NUM_CLASSES * VAL_PER_CLASS
    assert sorted(p['sample_idx'] for p in preds) == list(range(n_val))
    assert all(p['pred_score'].shape == (NUM_CLASSES,) for p in preds)
    assert os.listdir(tmp_path).count('preds.pkl') == 1
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]  # written atomically
    # mmpretrain's VisualizationHook paints every image (interval 1, like mmpretrain's tool)
    assert len([f for f in os.listdir(show) if f.endswith('.png')]) == n_val


def test_missing_data_root_is_a_one_line_error(tiny_cls, tmp_path):
    config, _ = tiny_cls
    work_dir = tmp_path / 'work'
    proc = run(sys.executable, TRAIN, config, '--work-dir', str(work_dir),
               '--cfg-options', 'train_dataloader.dataset.data_root=/nowhere', check=False)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ')
    assert 'data_root does not exist: /nowhere' in lines[0]
    assert 'train_dataloader.dataset.data_root' in lines[0]
    assert not work_dir.exists()  # stopped before the Runner made anything


def test_missing_checkpoint_is_a_one_line_error(tiny_cls, tmp_path):
    config, _ = tiny_cls
    missing = str(tmp_path / 'nope.pth')
    proc = run(sys.executable, TEST, config, missing, check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip() == f'error: checkpoint not found: {missing}'


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.device_count() < 2,
                    reason='two processes need two GPUs when CUDA is present')
def test_dist_train_and_test_two_processes(tiny_cls, tmp_path):
    """Two processes through torchrun (gloo on CPU): each rank trains on half the data, and
    dist_test.sh collects every prediction once."""
    config, _ = tiny_cls
    work_dir = str(tmp_path / 'work')
    proc = run('bash', osp.join(ROOT, 'tools', 'dist_train.sh'), config, 2,
               '--work-dir', work_dir, '--cfg-options', 'train_cfg.max_epochs=1',
               PORT=str(free_port()))
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    if not torch.cuda.is_available():
        assert "'backend': 'gloo'" in log
    # 24 images over 2 ranks, batches of 8 per rank: 2 iterations an epoch, not 3
    assert 'Epoch(train) [1][2/2]' in log
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 2
    # plain model keys: the DDP wrapper leaves no "module." prefix behind
    assert all(not k.startswith('module.') for k in ckpt['state_dict'])

    out = tmp_path / 'preds.pkl'
    run('bash', osp.join(ROOT, 'tools', 'dist_test.sh'), config,
        osp.join(work_dir, 'epoch_1.pth'), 2, '--work-dir', str(tmp_path / 'test_work'),
        '--out', str(out), PORT=str(free_port()))
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert sorted(p['sample_idx'] for p in preds) == list(range(NUM_CLASSES * VAL_PER_CLASS))


def test_test_tool_detection_out_and_show_dir(demo_data, tmp_path):
    """A detection (mmdet-scoped) config: --out goes through mmdet's DumpDetResults and
    --show-dir through DetVisualizationHook, under WORK_DIR/TIMESTAMP/SHOW_DIR as in mmdet."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    config = osp.join(ROOT, 'configs', 'demo', 'frcnn_demo.py')
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    register_all_modules(init_default_scope=False)
    torch.manual_seed(0)
    checkpoint = str(tmp_path / 'det.pth')
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict(), 'meta': {}}, checkpoint)

    out, work_dir = tmp_path / 'det.pkl', tmp_path / 'work'
    proc = run(sys.executable, TEST, config, checkpoint, '--work-dir', str(work_dir),
               '--out', str(out), '--show-dir', 'painted', '--cfg-options', 'custom_hooks=[]',
               'model.backbone.init_cfg=None',
               f'test_dataloader.dataset.data_root={demo_data.voc_root}/')
    assert 'pascal_voc/mAP' in proc.stdout + proc.stderr
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    with open(osp.join(demo_data.voc_root, 'VOC2007', 'ImageSets', 'Main', 'test.txt')) as f:
        ids = f.read().split()
    assert sorted(p['img_id'] for p in preds) == sorted(ids)
    assert all('pred_instances' in p and 'gt_instances' not in p for p in preds)
    (stamp,) = [d for d in os.listdir(work_dir) if osp.isdir(work_dir / d)]
    painted = sorted(os.listdir(work_dir / stamp / 'painted'))
    assert painted == sorted(f'{i}.jpg' for i in ids)
