"""User errors that used to end in a traceback: one `error:` line saying what is wrong and
how to fix it, exit status 2, nothing half-written."""
import os
import os.path as osp

import pytest
import torch

from .helpers import (
    DEMO,
    ROOT,
    checkpoint_variant,
    data_options,
    error_in_process,
    resume_error,
    run_tool,
    tool_error,
)

UNREADABLE = {
    'empty': (lambda data: b'', 'it is empty (0 bytes)'),
    'truncated': (lambda data: data[:len(data) // 2],
                  'it is not a complete torch checkpoint ({n} bytes: truncated by an '
                  'interrupted write, damaged, or not a checkpoint at all)'),
    'random': (lambda data: bytes(range(256)) * 40,
               'it is not a complete torch checkpoint (10240 bytes: truncated by an '
               'interrupted write, damaged, or not a checkpoint at all)'),
}


def _unreadable(trained, tmp_path, kind):
    make, problem = UNREADABLE[kind]
    data = make(open(trained, 'rb').read())
    path = str(tmp_path / f'{kind}.pth')
    open(path, 'wb').write(data)
    return path, problem.format(n=len(data))


@pytest.mark.parametrize('kind', sorted(UNREADABLE))
def test_test_names_an_unreadable_checkpoint(demo_data, trained, tmp_path, kind):
    path, problem = _unreadable(trained, tmp_path, kind)
    proc = run_tool('test', DEMO, path, '--work-dir', str(tmp_path / 't'),
                    *data_options(demo_data.cls_root))
    assert tool_error(proc) == (f'error: checkpoint {path} is unreadable: {problem} (give a '
                                'complete checkpoint)')


def test_train_names_an_unreadable_resume_or_load_from(demo_data, trained, tmp_path):
    empty, problem = _unreadable(trained, tmp_path, 'empty')
    work = str(tmp_path / 'w')
    proc = run_tool('train', DEMO, '--work-dir', work, '--resume', empty,
                    *data_options(demo_data.cls_root))
    assert tool_error(proc) == (
        f'error: checkpoint {empty} is unreadable: {problem} (set by --resume; give a complete '
        'checkpoint with --resume PATH)')
    truncated, problem = _unreadable(trained, tmp_path, 'truncated')
    proc = run_tool('train', DEMO, '--work-dir', work,
                    *data_options(demo_data.cls_root, f'load_from={truncated}'))
    assert tool_error(proc) == (
        f'error: checkpoint {truncated} is unreadable: {problem} (set by load_from; give a '
        'complete checkpoint with --cfg-options load_from=PATH)')
    assert not osp.exists(work)


def test_resume_of_another_models_checkpoint(demo_data, trained, tmp_path):
    other = checkpoint_variant(trained, tmp_path / 'det.pth', drop_prefix='head.',
                               add={'rpn_head.rpn_conv.weight': torch.zeros(4, 4, 3, 3)})
    assert resume_error(demo_data, other, tmp_path / 'w') == (
        f'error: checkpoint {other} does not fit the model of this config: 2 weights of the '
        'model are not in it (head.fc.weight, head.fc.bias); 1 of its entries are not in the '
        'model (rpn_head.rpn_conv.weight). Was it saved by another model? Use the config it '
        'was trained with, or resume from a checkpoint of a run of this config')


@pytest.mark.parametrize('option, message', [
    ('custom_hooks.0.sparsty=0.5',
     "error: custom_hooks.0.sparsty: PruningHook has no argument 'sparsty' (did you mean "
     "'sparsity'?); its arguments: "),
    ('custom_hooks.0.min_kept_per_layer=abc',
     'error: min_kept_per_layer must be a whole number >= 0 (0: a layer that would be emptied '
     "is an error; k: keep its k best weights), got 'abc'"),
    ('custom_hooks.0.prunable.exclude=[*abc]',
     "error: prunable.exclude holds '*abc', which is not a regular expression (nothing to "
     'repeat at position 0); e.g. exclude=(r"^head\\.", ) keeps the head dense'),
])
def test_train_names_a_bad_hook_setting(demo_data, tmp_path, option, message):
    work = str(tmp_path / 'w')
    proc = run_tool('train', DEMO, '--work-dir', work,
                    *data_options(demo_data.cls_root, option))
    assert tool_error(proc).startswith(message)
    assert not osp.exists(osp.join(work, 'masks.pth'))


def test_an_empty_mask_file(demo_data, tmp_path):
    empty = str(tmp_path / 'masks.pth')
    open(empty, 'wb').close()
    proc = run_tool('train', DEMO, '--work-dir', str(tmp_path / 'w'),
                    *data_options(demo_data.cls_root, f'custom_hooks.0.mask_file={empty}'))
    assert tool_error(proc) == (
        f'error: checkpoint {empty} is unreadable: it is empty (0 bytes) (set by '
        'custom_hooks.0.mask_file; give a complete checkpoint with --cfg-options '
        'custom_hooks.0.mask_file=PATH)')
    proc = run_tool(osp.join('analysis', 'sparsity_report'), empty)
    assert tool_error(proc) == f'error: cannot read checkpoint {empty}: it is empty (0 bytes)'


def test_a_user_error_on_one_of_two_ranks_is_one_line(demo_data, tmp_path):
    # scoring runs on rank 0 only: its error used to be followed by rank 1's gloo traceback
    # and torchrun's ChildFailedError, exit 1
    import subprocess
    env = dict(os.environ, PORT=str(29500 + (os.getpid() + 7) % 1000), OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), DEMO, '2', '--work-dir',
         str(tmp_path / 'w'), *data_options(demo_data.cls_root,
                                            'custom_hooks.0.prunable.exclude=[*abc]')],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [
        "error: prunable.exclude holds '*abc', which is not a regular expression (nothing to "
        'repeat at position 0); e.g. exclude=(r"^head\\.", ) keeps the head dense']


CONFIG_ERRORS = {
    'name': ('x = undefined_name + 1\n',
             "cannot be run: name 'undefined_name' is not defined (define it in the config or "
             'in a _base_ it inherits from)'),
    'syntax': ('x = (1,\n', 'is not valid Python: '),
    'base': ("_base_ = ['./nowhere.py']\n",
             'inherits from a file that does not exist: {dir}/./nowhere.py (fix its _base_ '
             'entry)'),
}


@pytest.mark.parametrize('tool', ['train', 'test', 'prune', 'analysis/get_flops'])
@pytest.mark.parametrize('kind', sorted(CONFIG_ERRORS))
def test_every_tool_names_a_broken_config(tmp_path, capsys, tool, kind):
    text, problem = CONFIG_ERRORS[kind]
    config = tmp_path / f'{kind}.py'
    config.write_text(text)
    ckpt = str(tmp_path / 'c.pth')
    torch.save({'state_dict': {}}, ckpt)
    args = [str(config), ckpt] if tool == 'test' else [str(config)]
    if tool != 'analysis/get_flops':
        args += ['--work-dir', str(tmp_path / 'w')]
    last = error_in_process(capsys, tool, *args)
    assert last.startswith(f'error: config {config} {problem.format(dir=tmp_path)}')


@pytest.mark.parametrize('tool', ['train', 'test', 'prune'])
def test_a_work_dir_that_is_a_file_fails_before_any_work(demo_data, trained, tmp_path,
                                                         capsys, tool):
    work = tmp_path / 'taken'
    work.write_text('')
    args = [DEMO, trained] if tool == 'test' else [DEMO]
    assert error_in_process(capsys, tool, *args, '--work-dir', str(work),
                            *data_options(demo_data.cls_root)) == (
        f'error: the work dir {work} is a file, not a directory; give --work-dir another path')


def test_get_flops_refuses_an_impossible_shape(capsys):
    assert error_in_process(capsys, 'analysis/get_flops', DEMO, '--shape', '100000',
                            '100000') == (
        'error: --shape 100000 100000 is larger than 8192 pixels a side, which would not fit '
        'in memory; give a realistic input size, e.g. --shape 224 224')


def test_a_corrupt_image_is_named(demo_data, tmp_path):
    import shutil
    root = str(tmp_path / 'cls')
    shutil.copytree(demo_data.cls_root, root)
    folder = osp.join(root, 'train', sorted(os.listdir(osp.join(root, 'train')))[0])
    broken = osp.join(folder, sorted(os.listdir(folder))[0])
    open(broken, 'wb').write(b'not an image at all' * 10)
    # read in dataloader workers, as the demo config does: the message crosses the process
    proc = run_tool('train', DEMO, '--work-dir', str(tmp_path / 'w'),
                    *data_options(root, 'train_cfg.max_epochs=1',
                                  'train_dataloader.num_workers=1'))
    assert tool_error(proc) == (
        f'error: cannot read image {broken}: it is damaged, truncated or not an image (failed '
        f'to load image: {broken}); replace it or remove it from the dataset')


def test_a_one_image_training_set_is_one_line_before_any_output(tmp_path, capsys):
    from PIL import Image
    for split in ('train', 'val'):
        os.makedirs(tmp_path / 'one' / split / 'a')
        Image.new('RGB', (32, 32), (90, 120, 150)).save(tmp_path / 'one' / split / 'a' / 'x.png')
    work = tmp_path / 'w'
    last = error_in_process(capsys, 'prune', DEMO, '--work-dir', str(work),
                            *data_options(str(tmp_path / 'one')))
    assert last == (
        'error: pruning: a scoring batch holds a single sample, and BatchNorm in train mode '
        'needs at least 2 (Expected more than 1 value per channel when training, got input '
        "size torch.Size([1, 128, 1, 1])); use a training set of 2 or more images and a batch "
        "size of at least 2, or score_mode='eval'")
    assert os.listdir(work) == []


def test_test_checks_the_place_of_out_before_evaluating(demo_data, trained, tmp_path, capsys):
    taken = tmp_path / 'taken'
    taken.write_text('')
    out = taken / 'results.pkl'
    assert error_in_process(capsys, 'test', DEMO, trained, '--out', str(out), '--work-dir',
                            str(tmp_path / 't'), *data_options(demo_data.cls_root)) == (
        f'error: the directory of --out {taken} is a file, not a directory; give --out '
        'another path')
