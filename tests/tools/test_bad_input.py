"""Bad input through the tools: one clear `error:` line, exit status 2, no traceback, and
nothing half-written (no masks.pth)."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

DEMO = osp.join(ROOT, 'configs', 'demo', 'epsd_dlb_demo.py')


def _data(demo_data):
    return [f'train_dataloader.dataset.data_root={demo_data.cls_root}',
            f'val_dataloader.dataset.data_root={demo_data.cls_root}',
            f'test_dataloader.dataset.data_root={demo_data.cls_root}',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'train_dataloader.batch_size=8']


def _fails(tool, args, capsys, work):
    """Run a tool as the user does (a subprocess) and return its last stderr line."""
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', f'{tool}.py'), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    err = proc.stderr
    assert proc.returncode == 2, err[-3000:]
    assert 'Traceback' not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith('error: ')
    assert not osp.exists(osp.join(work, 'masks.pth'))
    return last


@pytest.mark.parametrize('option, message', [
    ('custom_hooks.0.sparsity=1.5', 'strictly between 0 and 1'),
    ('custom_hooks.0.sparsity=0', 'strictly between 0 and 1'),
    ('custom_hooks.0.criterion.type=snipp', "unknown pruning criterion 'snipp'; valid names: "
     'epsd, epsd_plus, grasp, magnitude, prospr, random, snip, synflow'),
    ('custom_hooks.0.criterion.inner_stepz=3', "invalid arguments for pruning criterion 'epsd'"),
    ('model.sd.type=DLBB', "unknown self-distillation method 'DLBB'; valid names: "),
])
def test_train_rejects_bad_pruning_and_sd_settings(demo_data, tmp_path, capsys, option,
                                                    message):
    work = str(tmp_path / 'w')
    last = _fails('train', [DEMO, '--work-dir', work, '--cfg-options', option,
                               *_data(demo_data)], capsys, work)
    assert message in last


def test_train_names_a_missing_demo_data_root_and_the_command_that_makes_it(capsys, tmp_path):
    work = str(tmp_path / 'w')
    last = _fails('train', [DEMO, '--work-dir', work, '--cfg-options',
                               'train_dataloader.dataset.data_root=data/demo/nowhere'],
                  capsys, work)
    assert 'data/demo/nowhere' in last and 'make_demo_data.py --out data/demo' in last


def test_train_rejects_a_mask_file_of_another_model(demo_data, tmp_path, capsys):
    other = str(tmp_path / 'other.pth')
    torch.save({'masks': {'backbone.conv1.weight': torch.ones(64, 3, 7, 7, dtype=torch.bool),
                          'backbone.layer1.0.conv1.weight': torch.ones(64, 64, 3, 3,
                                                                       dtype=torch.bool)}},
               other)
    work = str(tmp_path / 'w')
    last = _fails('train', [DEMO, '--work-dir', work, '--cfg-options',
                               f'custom_hooks.0.mask_file={other}', *_data(demo_data)],
                  capsys, work)
    assert 'do not fit' in last
    assert 'backbone.conv1.weight: mask 64x3x7x7 but parameter 16x3x7x7' in last


def test_prune_refuses_a_sparsity_that_empties_a_layer(demo_data, tmp_path, capsys):
    work = str(tmp_path / 'w')
    last = _fails('prune', [DEMO, '--method', 'magnitude', '--sparsity', '0.9995',
                               '--min-kept', '0', '--work-dir', work, '--cfg-options',
                               *_data(demo_data)], capsys, work)
    assert 'would prune every weight of backbone.' in last and 'min_kept_per_layer' in last
    assert not os.path.exists(osp.join(work, 'sparsity.json'))


def test_prune_names_the_step_where_scoring_diverged(demo_data, tmp_path, capsys):
    work = str(tmp_path / 'w')
    last = _fails('prune', [DEMO, '--method', 'epsd', '--sparsity', '0.9', '--work-dir',
                               work, '--cfg-options', 'custom_hooks.0.criterion.inner_lr=1e30',
                               *_data(demo_data)], capsys, work)
    assert 'epsd loss at inner step' in last or 'epsd loss at the scoring step' in last
    assert 'nan' in last or 'inf' in last


def test_train_names_a_missing_pretrained_checkpoint(demo_data, tmp_path, capsys):
    work = str(tmp_path / 'w')
    config = osp.join(ROOT, 'configs', 'demo', 'frcnn_demo.py')
    last = _fails('train', [config, '--work-dir', work, '--cfg-options',
                            f'train_dataloader.dataset.data_root={demo_data.voc_root}',
                            f'val_dataloader.dataset.data_root={demo_data.voc_root}',
                            'model.backbone.init_cfg.checkpoint=/nowhere/cls.pth'], capsys, work)
    assert 'checkpoint does not exist: /nowhere/cls.pth' in last
    assert 'model.backbone.init_cfg.checkpoint' in last


def test_train_names_a_malformed_voc_annotation(demo_data, tmp_path, capsys):
    import shutil
    voc = str(tmp_path / 'VOCdevkit')
    shutil.copytree(demo_data.voc_root, voc)
    ann_dir = osp.join(voc, 'VOC2007', 'Annotations')
    broken = osp.join(ann_dir, sorted(os.listdir(ann_dir))[0])
    with open(broken) as f:
        text = f.read()
    with open(broken, 'w') as f:  # truncated mid-file, as a killed writer would leave it
        f.write(text[:len(text) // 2])
    work = str(tmp_path / 'w')
    config = osp.join(ROOT, 'configs', 'demo', 'frcnn_demo.py')
    last = _fails('train', [config, '--work-dir', work, '--cfg-options',
                            f'train_dataloader.dataset.data_root={voc}/',
                            f'val_dataloader.dataset.data_root={voc}/',
                            'model.backbone.init_cfg=None', 'custom_hooks=[]'], capsys, work)
    assert osp.basename(broken) in last
