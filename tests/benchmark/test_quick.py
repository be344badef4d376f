"""``tools/benchmark/run.py --quick`` end to end (real Runner, real digits), and the pieces of
the harness that can be checked by hand: the dataset split, the statistics, the targets."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'benchmark', 'run.py')


@pytest.mark.timeout(240)
def test_quick_writes_the_schema_and_every_file(tmp_path):
    out, data = tmp_path / 'bench', tmp_path / 'digits'
    proc = subprocess.run(
        [sys.executable, TOOL, '--quick', '--out', str(out), '--data-root', str(data)],
        cwd=ROOT, capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ('results.json', 'results.md', 'accuracy_vs_sparsity.png'):
        assert (out / name).stat().st_size > 0, name
    with open(out / 'accuracy_vs_sparsity.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    doc = json.loads((out / 'results.json').read_text())
    assert {'dataset', 'model', 'sd', 'seeds', 'runs', 'cost'} <= set(doc)
    assert doc['sd'] == 'dlb' and doc['seeds'] == [0]
    got = sorted((r['method'], r['sd'], r['sparsity'], r['seed']) for r in doc['runs'])
    assert got == [('dense', 'dlb', 0.0, 0), ('dense', 'none', 0.0, 0),
                   ('epsd', 'dlb', 0.98, 0), ('snip', 'dlb', 0.98, 0)]
    for r in doc['runs']:
        assert 0.0 <= r['top1'] <= 100.0
        assert r['zero_violations'] == 0  # pruned weights stayed exactly zero in training
        if r['method'] != 'dense':
            assert abs(r['measured_sparsity'] - 0.98) < 1e-4 and r['prune_seconds'] > 0
    cost = doc['cost']
    assert cost['iter_seconds_dense'] > 0 and cost['iter_seconds_masked'] > 0
    assert set(cost['prune_seconds']) == {'snip', 'epsd'}
    assert all(s > 0 for s in cost['prune_seconds'].values())
    assert cost['epsd_inner_steps'] == 3
    # each pruned cost run timed itself with masking on and off, interleaved
    ab = cost['masking_ab']
    assert set(ab['overhead_per_run']) == {'snip', 'epsd'}
    assert ab['iterations_on'] > 0 and ab['iterations_off'] > 0
    assert 0 < ab['hook_seconds'] < ab['off_seconds']  # the mask hooks were bracketed
    statuses = {t['name']: t['status'] for t in doc['targets']}
    # EPSD - SNIP at 0.98 and 0.99, EPSD vs ProsPr at 0.98, the sweep time, masking, EPSD cost
    assert len(statuses) == 6 and set(statuses.values()) <= {'PASS', 'MISS', 'NOT RUN'}
    md = (out / 'results.md').read_text()
    assert '| epsd + DLB |' in md and '| snip + DLB |' in md and 'masking overhead' in md
    # the dataset: the 360 test PNGs of the fixed split, marker last
    marker = json.loads((data / 'READY.json').read_text())
    assert marker['counts'] == {'train': 1437, 'test': 360}
    assert sum(len(os.listdir(data / 'test' / c)) for c in os.listdir(data / 'test')) == 360


def test_help_and_a_bad_option_exit_cleanly(tmp_path):
    proc = subprocess.run([sys.executable, TOOL, '--help'], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and '--sparsities' in proc.stdout and '--quick' in proc.stdout
    proc = subprocess.run([sys.executable, TOOL, '--methods', 'snip', 'bogus', '--out',
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'unknown criterion bogus' in proc.stderr and 'epsd' in proc.stderr
    assert not (tmp_path / 'results.json').exists()
