"""Shared by the tool tests: run a tool as the user does, read its one `error:` line, make
variants of a checkpoint."""
import os.path as osp
import subprocess
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo', 'epsd_dlb_demo.py')


def run_tool(name, *args):
    return subprocess.run([sys.executable, osp.join(ROOT, 'tools', f'{name}.py'), *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


def tool_error(proc):
    """The one `error:` line of a tool that failed as a user error should."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def data_options(root, *extra):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}',
            'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False',
            'custom_hooks.0.criterion.inner_steps=1', *extra]


def checkpoint_variant(src, path, drop_keys=(), drop_prefix=None, add=None):
    ckpt = torch.load(src, map_location='cpu')
    for key in drop_keys:
        ckpt.pop(key)
    if drop_prefix:
        ckpt['state_dict'] = {k: v for k, v in ckpt['state_dict'].items()
                              if not k.startswith(drop_prefix)}
        if 'pruning' in ckpt:
            ckpt['pruning']['masks'] = {k: v for k, v in ckpt['pruning']['masks'].items()
                                        if not k.startswith(drop_prefix)}
    ckpt['state_dict'].update(add or {})
    torch.save(ckpt, path)
    return str(path)


def resume_error(demo_data, checkpoint, work):
    """The `error:` line of a two-epoch demo run resumed from ``checkpoint``."""
    return tool_error(run_tool('train', DEMO, '--work-dir', str(work), '--resume', checkpoint,
                               *data_options(demo_data.cls_root, 'train_cfg.max_epochs=2')))


def tool_module(name):
    """Import ``tools/<name>.py`` as a module (its ``main(argv)`` runs the tool in-process)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'epsd_tool_' + name.replace('/', '_'), osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def error_in_process(capsys, name, *args):
    """Run tool ``name`` in this process; return its one `error:` line (it must exit 2)."""
    import pytest
    with pytest.raises(SystemExit) as exit_info:
        tool_module(name).main(list(args))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-3000:]
    assert 'Traceback' not in err
    return err.strip().splitlines()[-1]
