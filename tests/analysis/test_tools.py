import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from epsd_mm.pruning import report_dict

from . import CONFIG_TEXT, bits_equal, make_checkpoint

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = {
    'sparsity_report': 'tools/analysis/sparsity_report.py',
    'get_flops': 'tools/analysis/get_flops.py',
    'export_sparse': 'tools/export_sparse.py',
}


def _tool(name):
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', osp.join(ROOT, TOOLS[name]))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tools_answer_help():
    # real processes, started together: each imports the stack from scratch
    procs = {name: subprocess.Popen([sys.executable, path, '--help'], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, path in TOOLS.items()}
    words = dict(sparsity_report=['sparsity.json', '--out'],
                 get_flops=['effective', '--checkpoint', '--shape'],
                 export_sparse=['--restore', 'epsdc://'])
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        for word in words[name]:
            assert word in out, (name, word)


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('tools') / 'epoch_1.pth')
    _, masks = make_checkpoint(path)
    return path, masks


def test_sparsity_report_writes_both_files(ckpt, tmp_path, capsys):
    path, masks = ckpt
    _tool('sparsity_report').main([path, '--out', str(tmp_path / 'report')])
    out = capsys.readouterr().out
    assert 'backbone.layer4.1.conv2.weight' in out and 'total' in out
    assert f'{masks.numel:>10}  {masks.kept:>10}' in out
    with open(tmp_path / 'report' / 'sparsity.json') as f:
        report = json.load(f)
    assert report == json.loads(json.dumps(report_dict(masks)))
    with open(tmp_path / 'report' / 'sparsity.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_sparsity_report_refuses_a_checkpoint_without_masks(tmp_path, capsys):
    path = str(tmp_path / 'dense.pth')
    make_checkpoint(path, pruning=False)
    with pytest.raises(SystemExit) as e:
        _tool('sparsity_report').main([path])
    assert e.value.code == 2
    assert 'no "pruning" entry' in capsys.readouterr().err


def test_export_and_restore(ckpt, tmp_path, capsys):
    path, masks = ckpt
    tool = _tool('export_sparse')
    compact, restored = str(tmp_path / 'compact.pth'), str(tmp_path / 'restored.pth')
    tool.main([path, compact])
    out = capsys.readouterr().out
    assert 'of dense' in out and f"load_from='epsdc://{compact}'" in out
    tool.main(['--restore', compact, restored])
    original = torch.load(path, map_location='cpu', weights_only=False)
    back = torch.load(restored, map_location='cpu')
    assert all(bits_equal(back['state_dict'][k], v) for k, v in original['state_dict'].items())
    assert 'optimizer' not in back and 'message_hub' not in back
    # the report reads compact checkpoints too
    _tool('sparsity_report').main([compact])
    assert f'sparsity {masks.sparsity:.4f}' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tool.main(['--restore', path, str(tmp_path / 'x.pth')])
    assert 'not a compact checkpoint' in capsys.readouterr().err


def test_get_flops_prints_dense_and_effective(ckpt, tmp_path, capsys):
    path, _ = ckpt
    cfg = tmp_path / 'tiny.py'
    cfg.write_text(CONFIG_TEXT)
    tool = _tool('get_flops')
    tool.main([str(cfg), '--checkpoint', path, '--shape', '8', '--per-layer'])
    out = capsys.readouterr().out
    assert 'input: 1x3x8x8 (from --shape)' in out
    assert 'dense FLOPs' in out
    assert 'effective FLOPs (masked layers scaled by kept fraction)' in out
    assert 'backbone.layer4.1.conv2' in out  # the per-layer table
    tool.main([str(cfg), '--shape', '8', '8'])
    out = capsys.readouterr().out
    assert 'dense figures only' in out and 'effective FLOPs' not in out
    with pytest.raises(SystemExit):
        tool.main([str(cfg), '--shape', '1', '2', '3'])
    assert '--shape takes H W' in capsys.readouterr().err
