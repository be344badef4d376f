"""Inputs that used to give a wrong result with exit status 0 now end with one `error:` line
(exit 2), or say clearly what happens: a resume without masks, masks taken over from
load_from, shifted class-folder labels, a NaN loss, an unreachable sparsity, an export over its
own input, a checkpoint of another model under test."""
import os
import os.path as osp
import shutil

import pytest
import torch

from epsd_mm.pruning import MaskSet

from .helpers import (
    DEMO,
    checkpoint_variant,
    data_options,
    resume_error,
    run_tool,
    tool_error,
)


def test_resume_from_a_checkpoint_without_masks_is_refused(demo_data, trained, tmp_path):
    dense = checkpoint_variant(trained, tmp_path / 'epoch_1.pth', drop_keys=('pruning', ))
    assert resume_error(demo_data, dense, tmp_path / 'w') == (
        f'error: --resume: {dense} holds no pruning masks (it was saved by a run without '
        'PruningHook); scoring now would prune the trained weights, not the initialization. '
        'Resume from a checkpoint of the pruned run, or give the PruningHook that run\'s '
        'masks.pth as mask_file')
    assert not osp.exists(tmp_path / 'w' / 'masks.pth')


def test_masks_from_load_from_say_where_they_came_from(demo_data, trained, tmp_path):
    # a backbone-only checkpoint, as a detector's: its masks cover the backbone, not the head
    backbone = checkpoint_variant(trained, tmp_path / 'backbone.pth',
                                  drop_keys=('optimizer', ), drop_prefix='head.')
    work = tmp_path / 'w'
    proc = run_tool('train', DEMO, '--work-dir', str(work),
                    *data_options(demo_data.cls_root, 'train_cfg.max_epochs=1',
                                  f'load_from={backbone}'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    masks = MaskSet.load(backbone)
    assert (f'pruning: masks taken from load_from {backbone}: {masks}; prunable weights '
            'without a mask there stay dense: head.fc.weight') in out
    assert 'restored from the resumed checkpoint' not in out
    assert MaskSet.load(str(work / 'masks.pth')).equal(masks)


@pytest.fixture
def cls_copy(demo_data, tmp_path):
    root = str(tmp_path / 'cls')
    shutil.copytree(demo_data.cls_root, root)
    return root


def test_an_empty_class_folder_is_refused_by_test_and_train(cls_copy, trained, tmp_path):
    os.makedirs(osp.join(cls_copy, 'val', 'aaa'))
    message = (f'error: class folder {cls_copy}/val/aaa holds no image (read by '
               '{key}): classes are numbered by their sorted folder names, so it would shift '
               'the label of every later class; remove the folder or put its images in it')
    proc = run_tool('test', DEMO, trained, '--work-dir', str(tmp_path / 't'),
                    *data_options(cls_copy))
    assert tool_error(proc) == message.format(key='test_dataloader.dataset')
    proc = run_tool('train', DEMO, '--work-dir', str(tmp_path / 'w'), *data_options(cls_copy))
    assert tool_error(proc) == message.format(key='val_dataloader.dataset')


def test_train_and_val_with_different_class_folders_are_refused(cls_copy, tmp_path):
    classes = sorted(os.listdir(osp.join(cls_copy, 'val')))
    shutil.rmtree(osp.join(cls_copy, 'val', classes[0]))
    proc = run_tool('train', DEMO, '--work-dir', str(tmp_path / 'w'), *data_options(cls_copy))
    assert tool_error(proc) == (
        f'error: {cls_copy}/val and {cls_copy}/train have different class folders (only in '
        f'the first: none; only in the second: {classes[0]}): the same label would mean '
        'different classes in the two splits; give both the same class folders')


def test_a_non_finite_loss_stops_training_naming_the_iteration(demo_data, tmp_path):
    work = tmp_path / 'w'
    proc = run_tool('train', DEMO, '--work-dir', str(work),
                 *data_options(demo_data.cls_root, 'train_cfg.max_epochs=1',
                        'optim_wrapper.optimizer.lr=1e30', 'custom_hooks.0.criterion=magnitude'))
    last = tool_error(proc)
    assert last.startswith('error: the training loss is not finite at iteration 2 (epoch 1): '
                           'loss=')
    assert last.endswith('training stopped before saving a checkpoint of it. Lower the '
                         'learning rate, or check the data (e.g. boxes outside their image)')
    assert not [f for f in os.listdir(work) if f.endswith('.pth') and f != 'masks.pth']


def test_prune_fails_when_the_per_layer_floor_makes_the_target_unreachable(demo_data,
                                                                           tmp_path):
    work = str(tmp_path / 'w')
    proc = run_tool('prune', DEMO, '--method', 'magnitude', '--sparsity', '0.9999', '--min-kept',
                 '1000000', '--work-dir', work, *data_options(demo_data.cls_root))
    assert tool_error(proc) == (
        'error: sparsity 0.9999 is out of reach with min_kept_per_layer=1000000: keeping that '
        'many weights in each of the 21 prunable tensors keeps 700,336 of 700,336, so the '
        'highest reachable sparsity is 0.0000; lower the sparsity or min_kept_per_layer')
    proc = run_tool('prune', DEMO, '--method', 'magnitude', '--sparsity', '0.9', '--min-kept',
                 '-1', '--work-dir', work, *data_options(demo_data.cls_root))
    assert tool_error(proc) == (
        'error: min_kept_per_layer must be a whole number >= 0 (0: a layer that would be '
        'emptied is an error; k: keep its k best weights), got -1')
    assert os.listdir(work) == []  # nothing written


def test_export_sparse_refuses_to_overwrite_its_input_or_a_directory(trained, tmp_path):
    size = osp.getsize(trained)
    link = tmp_path / 'link.pth'
    os.symlink(trained, link)
    for out in (trained, str(link)):
        assert tool_error(run_tool('export_sparse', trained, out)) == (
            f'error: the output OUT {out} is the input checkpoint {trained}, which it would '
            'replace; choose another path')
    assert tool_error(run_tool('export_sparse', trained, str(tmp_path))) == (
        f'error: the output OUT {tmp_path} is a directory; give a file path inside it, e.g. '
        f'{tmp_path}/epoch_1.pth')
    assert osp.getsize(trained) == size


def test_test_refuses_a_checkpoint_of_another_model(demo_data, trained, tmp_path):
    other = checkpoint_variant(trained, tmp_path / 'det.pth', drop_prefix='head.',
                     add={'roi_head.bbox_head.fc_cls.weight': torch.zeros(6, 64)})
    proc = run_tool('test', DEMO, other, '--work-dir', str(tmp_path / 't'),
                 *data_options(demo_data.cls_root))
    assert tool_error(proc) == (
        f'error: checkpoint {other} does not fit the model of this config: 2 weights of the '
        'model are not in it (head.fc.weight, head.fc.bias); 1 of its entries are not in the '
        'model (roi_head.bbox_head.fc_cls.weight). Was it saved by another model? Use the '
        'config it was trained with, or pass --partial to load only the entries that fit')
    partial = run_tool('test', DEMO, other, '--work-dir', str(tmp_path / 't'), '--partial',
                    *data_options(demo_data.cls_root))
    assert partial.returncode == 0, partial.stderr[-3000:]
    assert 'accuracy/top1' in partial.stdout + partial.stderr
