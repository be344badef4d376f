"""Two CPU processes (gloo) score ProsPr and EPSD (DLB, CS-KD, PS-KD) together, each on its half
of every batch: both ranks get bitwise the same scores, equal (float rounding, identical masks)
to one process scoring the whole batches. BatchNorm in eval mode, where this holds exactly."""
import os
import os.path as osp
import socket
import subprocess
import sys
import textwrap

import torch

from epsd_mm.pruning import EPSD, ProsPr, prunable_parameters, select_masks

from .helpers import SDS, stream, tiny_classifier

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
KINDS = ['plain', 'dlb', 'cskd', 'pskd']
N = 8  # samples per batch, 4 per rank (CS-KD: 2 pairs per rank)

SCRIPT = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, {tests!r})
    import torch
    import torch.distributed as dist
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    from pruning.helpers import SDS, stream, tiny_classifier
    from epsd_mm.pruning import EPSD, ProsPr, prunable_parameters
    from epsd_mm.pruning.metagrad import split_rows

    def shares(kind, model):
        split = split_rows if kind == 'plain' else model.sd.split_batch
        for inputs, samples in stream(kind, {n}):
            yield split(inputs, samples, {n} // 2)[rank]

    out = {{}}
    for kind in {kinds!r}:
        model = tiny_classifier(sd=None if kind == 'plain' else SDS[kind]).eval()
        crit = (ProsPr if kind == 'plain' else EPSD)(inner_steps=2)
        crit.distributed = True
        out[kind] = crit.score(model, prunable_parameters(model), shares(kind, model), 0.9,
                               'global')
    torch.save(out, os.path.join({work!r}, f'rank{{rank}}.pt'))
''')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_ranks_score_like_one_process_on_the_whole_batch(tmp_path):
    script = tmp_path / 'run.py'
    script.write_text(SCRIPT.format(tests=osp.join(ROOT, 'tests'), work=str(tmp_path),
                                    kinds=KINDS, n=N))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={_free_port()}', str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    for kind in KINDS:
        model = tiny_classifier(sd=None if kind == 'plain' else SDS[kind]).eval()
        one = (ProsPr if kind == 'plain' else EPSD)(inner_steps=2).score(
            model, prunable_parameters(model), stream(kind, N), 0.9, 'global')
        r0, r1 = ranks[0][kind], ranks[1][kind]
        assert all(torch.equal(r0[n], r1[n]) for n in r0), kind
        for n in one:
            err = float((r0[n] - one[n]).abs().max()) / float(one[n].abs().max())
            assert err < 1e-5, (kind, n, err)
        m0, m1 = (select_masks(s, 0.9, min_kept_per_layer=1)[0] for s in (r0, one))
        assert all(torch.equal(m0[n], m1[n]) for n in m0), kind
