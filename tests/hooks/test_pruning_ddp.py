"""Two CPU processes (gloo): masks computed once and broadcast (snip), or on every rank from its
own share of the data (prospr, memory-bounded); verified; identical on both ranks."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

from epsd_mm.pruning import MaskSet

from ..pruning.helpers import write_class_folders

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

SCRIPT = textwrap.dedent('''
    import json, os, sys
    sys.path.insert(0, {tests!r})
    from mmengine.config import Config
    from mmengine.runner import Runner
    from pruning.helpers import runner_cfg
    from epsd_mm.utils.config_checks import adapt_dist_to_cpu
    cfg = runner_cfg({data!r}, {work!r},
                     dict(type='PruningHook', criterion={criterion!r}, sparsity=0.8,
                          min_kept_per_layer=4),
                     launcher='pytorch')
    cfg = Config(cfg)
    adapt_dist_to_cpu(cfg, 'pytorch')  # what tools/train.py does on a machine without CUDA
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'PruningHook')
    rank = int(os.environ['RANK'])
    out = dict(checksum=hook.masks.checksum(), source=hook.source,
               distributed=hook.masks.extra.get('distributed'),
               violations=hook.masks.zero_violations(runner.model.module))
    with open(os.path.join({work!r}, f'rank{{rank}}.json'), 'w') as f:
        json.dump(out, f)
''')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('criterion', ['snip', dict(type='prospr', inner_steps=1)])
def test_two_ranks_get_identical_masks(tmp_path, criterion):
    data = write_class_folders(str(tmp_path / 'data'))
    work = str(tmp_path / 'work')
    os.makedirs(work)
    script = tmp_path / 'run.py'
    script.write_text(SCRIPT.format(tests=osp.join(ROOT, 'tests'), data=data, work=work,
                                    criterion=criterion))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={_free_port()}', str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.load(open(osp.join(work, f'rank{r}.json'))) for r in range(2)]
    assert ranks[0]['checksum'] == ranks[1]['checksum']
    assert all(r['source'] == 'computed' and r['violations'] == 0 for r in ranks)
    # snip scores on rank 0 and broadcasts; bounded prospr scores on both ranks
    assert [r['distributed'] for r in ranks] == [criterion != 'snip'] * 2
    saved = MaskSet.from_dict(torch.load(osp.join(work, 'epoch_1.pth'),
                                         map_location='cpu')['pruning'])
    assert saved.checksum() == ranks[0]['checksum']
