"""tools/benchmark/scale.py end to end on the ResNet-50 ImageNet config at 32 px (the real model
and scoring, each measurement in its own subprocess): the JSON has the issue's schema."""
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_scale_writes_the_schema(tmp_path):
    out = tmp_path / 'scale.json'
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'benchmark', 'scale.py'), '--input-size', '32',
           '--batches', '2', '--criteria', 'epsd', '--modes', 'bounded', '--skip-ranks',
           '--out', str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['input_size'] == 32 and result['inner_steps'] == 3
    assert {'model', 'train', 'rows', 'ranks', 'selection', 'load_before'} <= set(result)
    (train, ) = result['train']
    (row, ) = result['rows']
    assert train['batch'] == 2 and train['seconds'] > 0 and train['peak_bytes'] > 0
    assert (row['criterion'], row['mode'], row['batch']) == ('epsd', 'bounded', 2)
    assert row['seconds'] > 0 and row['peak_bytes'] > 0
    assert '| epsd | bounded | 2 |' in proc.stdout
