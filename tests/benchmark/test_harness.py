"""The benchmark's pieces with hand-checkable answers: the digits split on disk, the statistics
and target verdicts, the memory meter, the run plan."""
import math
import os

import numpy as np
import pytest
from PIL import Image

from epsd_mm.benchmark.digits import MARKER, load_split, prepare_digits
from epsd_mm.benchmark.probes import PeakMemory
from epsd_mm.benchmark.report import accuracy_table, evaluate_targets, mean_std, paired_difference
from epsd_mm.benchmark.sweep import plan_cost, plan_sweep
from epsd_mm.utils.errors import UserError


def test_digits_are_written_once_with_the_fixed_stratified_split(tmp_path):
    root = tmp_path / 'digits'
    info = prepare_digits(str(root))
    assert info['counts'] == {'train': 1437, 'test': 360}
    # stratified: every class has 20 % (rounded) of its images in the test split
    totals = np.add(info['per_class']['train'], info['per_class']['test'])
    assert totals.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert all(abs(t - 0.2 * n) <= 1 for t, n in zip(info['per_class']['test'], totals))
    # a PNG holds sklearn's image scaled from 0..16 to 0..255, in its label's folder
    from sklearn.datasets import load_digits
    digits = load_digits()
    idx, images, labels = load_split()['test']
    i = int(idx[0])
    png = np.asarray(Image.open(root / 'test' / str(labels[0]) / f'{i:04d}.png'))
    assert png.shape == (8, 8) and png.dtype == np.uint8
    assert np.array_equal(png, np.clip(np.rint(digits.images[i] * 255 / 16), 0, 255))
    assert sorted(os.listdir(root)) == ['READY.json', 'test', 'train']
    # a second call trusts the marker and rewrites nothing
    mtime = (root / MARKER).stat().st_mtime_ns
    assert prepare_digits(str(root)) == info
    assert (root / MARKER).stat().st_mtime_ns == mtime


def test_a_dataset_without_its_marker_is_not_trusted(tmp_path):
    root = tmp_path / 'digits'
    (root / 'train').mkdir(parents=True)  # what an interrupted writer could have left
    with pytest.raises(UserError, match='without READY.json'):
        prepare_digits(str(root))


def test_mean_std_and_paired_difference_by_hand():
    assert mean_std([90.0, 92.0, 94.0]) == (92.0, 2.0)
    assert mean_std([50.0]) == (50.0, 0.0)
    runs = [dict(method=m, sd='dlb', sparsity=0.99, seed=s, top1=v)
            for m, vals in (('epsd', (80.0, 85.0, 90.0)), ('snip', (81.0, 83.0, 85.0)))
            for s, v in enumerate(vals)]
    d = paired_difference(runs, 'epsd', 'snip', 'dlb', 0.99)
    assert d['diffs'] == [-1.0, 2.0, 5.0] and d['mean'] == 2.0 and d['wins'] == 2
    assert math.isclose(d['std'], 3.0)


def _doc(epsd, snip, prospr, overhead, epsd_seconds, iter_with_data):
    runs = []
    for method, by_sparsity in (('epsd', epsd), ('snip', snip), ('prospr', prospr)):
        for s, vals in by_sparsity.items():
            runs += [dict(method=method, sd='dlb', sparsity=s, seed=i, top1=v)
                     for i, v in enumerate(vals)]
    ab = dict(overhead=overhead, overhead_cpu=0.0, on_seconds=0.1 * (1 + overhead),
              off_seconds=0.1, iterations_on=60, iterations_off=60, standard_error=0.01,
              hook_seconds=0.0005, overhead_direct=0.005)
    cost = dict(masking_ab=ab, masking_overhead_cpu=0.5, masking_overhead=0.5,
                iter_seconds_dense_runs=[0.1, 0.12], iter_seconds_dense=0.1,
                iter_seconds_masked=0.15, epsd_inner_steps=3,
                prune_seconds=dict(epsd=epsd_seconds),
                prune_iterations=dict(epsd=epsd_seconds / iter_with_data),
                prune_iterations_compute_only=dict(epsd=epsd_seconds / 0.1))
    return dict(runs=runs, sd='dlb', sparsities=[0.98, 0.99], methods=['snip', 'prospr', 'epsd'],
                cost=cost)


def test_target_verdicts_by_hand():
    doc = _doc(epsd={0.98: (90.0, 92.0), 0.99: (80.0, 80.0)},
               snip={0.98: (89.0, 90.0), 0.99: (79.5, 79.6)},
               prospr={0.98: (91.5, 91.5), 0.99: (79.0, 81.0)},
               overhead=0.031, epsd_seconds=3.2, iter_with_data=0.2)
    t = {x['name'].split(' (')[0].replace('DLB: ', ''): x for x in evaluate_targets(doc)}
    snip98 = t['EPSD+SD - SNIP+SD >= 1.0 top-1 point at sparsity 0.98']
    assert snip98['status'] == 'PASS' and math.isclose(snip98['value'], 1.5)
    snip99 = t['EPSD+SD - SNIP+SD >= 1.0 top-1 point at sparsity 0.99']
    assert snip99['status'] == 'MISS' and math.isclose(snip99['value'], 0.45)
    assert t['EPSD+SD vs ProsPr+SD at sparsity 0.98']['status'] == 'MISS'  # 91.0 < 91.5
    assert t['EPSD+SD vs ProsPr+SD at sparsity 0.99']['status'] == 'MISS'  # 80.0 == 80.0
    # judged on the interleaved A/B overhead (3.1 %), not on the separate runs' 50 %
    assert t['masking overhead <= 3 %']['status'] == 'MISS'
    assert math.isclose(t['masking overhead <= 3 %']['value'], 0.031)
    epsd = t['EPSD mask computation <= 4*(inner_steps+1) = 16 training iterations']
    assert epsd['status'] == 'PASS' and math.isclose(epsd['value'], 16.0)  # 3.2 s / 0.2 s
    table = accuracy_table(dict(doc, runs=doc['runs'] + [
        dict(method='dense', sd='none', sparsity=0.0, seed=0, top1=99.0)]))
    assert '| epsd + DLB |  | 91.00 ± 1.41 | 80.00 ± 0.00 |' in table
    assert '| epsd − snip (paired) |  | +1.50 ± 0.71 (2/2) | +0.45 ± 0.07 (2/2) |' in table
    assert '| dense (no SD) | 99.00 ± 0.00 |' in table



def test_a_variant_is_judged_against_the_best_baseline_beyond_noise():
    """Issue 12's targets: the variant against the best of snip/grasp/synflow/prospr at 0.99 and
    0.995 (mean gap above twice the std of the paired difference), and against ProsPr at
    0.9 / 0.98 (not worse on the mean)."""
    vals = {('synflow', 0.99): (70.0, 72.0, 74.0), ('prospr', 0.99): (60.0, 61.0, 62.0),
            ('epsd_plus', 0.99): (73.0, 75.5, 76.0),   # vs synflow: +3, +3.5, +2 (std 0.76)
            ('synflow', 0.995): (50.0, 52.0, 54.0), ('prospr', 0.995): (55.0, 40.0, 40.0),
            ('epsd_plus', 0.995): (55.0, 50.0, 60.0),  # vs synflow (best mean 52): +5, -2, +6
            ('prospr', 0.98): (80.0, 80.0, 80.0), ('epsd_plus', 0.98): (79.0, 80.0, 81.0),
            ('synflow', 0.98): (70.0, 70.0, 70.0),
            ('prospr', 0.9): (85.0, 85.0, 85.0), ('epsd_plus', 0.9): (84.0, 85.0, 85.5),
            ('synflow', 0.9): (70.0, 70.0, 70.0)}
    runs = [dict(method=m, sd='dlb', sparsity=s, seed=i, top1=v)
            for (m, s), v3 in vals.items() for i, v in enumerate(v3)]
    doc = dict(runs=runs, grid=[dict(sd='dlb', sparsities=[0.9, 0.98, 0.99, 0.995],
                                     methods=['synflow', 'prospr', 'epsd_plus'])])
    t = {x['name'].split(' by ')[0].split(' (mean')[0]: x for x in evaluate_targets(doc)}
    at99 = t['DLB: epsd_plus+SD beats the best of synflow/prospr (+SD) at sparsity 0.99']
    assert at99['status'] == 'PASS' and math.isclose(at99['value'], 74.8333333 - 72.0,
                                                     rel_tol=1e-6)
    assert 'synflow 72.00' in at99['detail'] and 'ahead in 3/3 seeds' in at99['detail']
    at995 = t['DLB: epsd_plus+SD beats the best of synflow/prospr (+SD) at sparsity 0.995']
    assert at995['status'] == 'MISS'  # mean +3 but std 4.36: not beyond twice the spread
    assert math.isclose(at995['value'], 3.0)
    assert t['DLB: epsd_plus+SD not worse than ProsPr+SD at sparsity 0.98']['status'] == 'PASS'
    at90 = t['DLB: epsd_plus+SD not worse than ProsPr+SD at sparsity 0.9']
    assert at90['status'] == 'MISS' and math.isclose(at90['value'], -1 / 6)
    # the faithful epsd is not in this sweep: its rows say so instead of inventing a verdict
    assert all(x['status'] == 'NOT RUN' for x in evaluate_targets(doc) if 'EPSD+SD' in x['name'])

def test_peak_memory_sees_a_64_mb_allocation():
    meter = PeakMemory('cpu')
    meter.start()
    if meter.base is None:
        pytest.skip('/proc/self/clear_refs is not writable here')
    block = np.ones(64 * 2**20, dtype=np.uint8)  # touched: resident
    del block
    grown = meter.stop()
    assert 60 * 2**20 <= grown < 96 * 2**20  # RSS counters are updated in page batches


def test_plans_cover_every_configuration_once():
    specs = plan_sweep([('dlb', ['snip', 'epsd'], [0.9, 0.99])], [0, 1], epochs=3)
    assert len(specs) == 2 * (2 + 2 * 2)
    assert len({s.key for s in specs}) == len(specs)
    assert [(s.method, s.sd) for s in specs[:2]] == [('dense', 'none'), ('dense', 'dlb')]
    # several SD methods: dense once without SD and once per SD method, then each grid
    grid = [('dlb', ['snip', 'prospr', 'epsd'], [0.9, 0.98, 0.99, 0.995]),
            ('cskd', ['snip', 'epsd'], [0.98, 0.99]), ('pskd', ['epsd'], [0.99])]
    specs = plan_sweep(grid, [0, 1, 2], epochs=2)
    assert len(specs) == 3 * (4 + 12 + 4 + 1)
    assert [(s.method, s.sd) for s in specs[:4]] == [
        ('dense', 'none'), ('dense', 'dlb'), ('dense', 'cskd'), ('dense', 'pskd')]
    assert [s.seed for s in specs] == sorted(s.seed for s in specs)  # seed-major
    # an accuracy run is named by what it is, not by its position in the plan
    assert specs[5].key == 'sweep-prospr-dlb-s0p9-seed0'
    assert len({s.key for s in specs}) == len(specs)
    # targets first: dense and DLB's snip/prospr/epsd at 0.98 and 0.99 for every seed, then
    # CS-KD's and PS-KD's, then the rest; the same runs
    first = plan_sweep(grid, [0, 1, 2], epochs=2, order='targets')
    assert sorted(s.key for s in first) == sorted(s.key for s in specs)
    head = [(s.method, s.sd, s.sparsity, s.seed) for s in first[:7]]
    assert head == [('dense', 'none', 0.0, 0), ('dense', 'dlb', 0.0, 0), ('snip', 'dlb', 0.98, 0),
                    ('prospr', 'dlb', 0.98, 0), ('epsd', 'dlb', 0.98, 0),
                    ('snip', 'dlb', 0.99, 0), ('prospr', 'dlb', 0.99, 0)]
    assert [s.seed for s in first[:24]] == [0] * 8 + [1] * 8 + [2] * 8
    assert (first[24].method, first[24].sd) == ('dense', 'cskd')
    assert first[-1].sparsity in (0.9, 0.995)
    cost = plan_cost(['random', 'snip', 'grasp'], 0.99, 'dlb', epochs=1)
    assert [s.method for s in cost] == ['dense', 'random', 'snip', 'dense', 'grasp', 'dense']
    assert len({s.key for s in cost}) == len(cost)


def test_resume_reuses_only_a_run_of_the_same_spec_and_setting(tmp_path):
    from epsd_mm.benchmark.configs import BenchSetting
    from epsd_mm.benchmark.sweep import RunSpec, _reusable
    from epsd_mm.utils.io import atomic_json_dump
    spec = RunSpec('epsd', 'dlb', 0.99, 1, 10)
    setting = BenchSetting().as_dict()  # holds a tuple, which JSON turns into a list
    ctx = dict(result_dir=str(tmp_path), setting=setting)
    assert _reusable(spec, ctx) is None
    atomic_json_dump(dict(vars(spec), top1=97.5, setting=setting),
                     str(tmp_path / f'{spec.key}.json'))
    assert _reusable(spec, ctx)['top1'] == 97.5
    assert _reusable(spec, dict(ctx, setting=BenchSetting(epochs=11).as_dict())) is None
    other = RunSpec('epsd', 'dlb', 0.99, 1, 10, ab_block=4)
    assert other.key == spec.key and _reusable(other, ctx) is None
    # another position in another plan is the same run
    assert _reusable(RunSpec('epsd', 'dlb', 0.99, 1, 10, index=7), ctx)['top1'] == 97.5
    # method specs with options never share a file name
    a, b = RunSpec('epsd:inner_lr=0.01', 'dlb', 0.99, 1, 10), RunSpec('epsd_inner_lr_0_01',
                                                                     'dlb', 0.99, 1, 10)
    assert a.key != b.key and a.key.startswith('sweep-epsd_inner_lr_0_01-')
