"""tools/prune.py on the demo DLB config (small demo data): every criterion reaches its target
and writes the three files; layer scope; EPSD's masks are not SNIP's; bad input exits cleanly."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from epsd_mm.pruning import MaskSet

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'epsd_dlb_demo.py')
sys.path.insert(0, osp.join(ROOT, 'tools'))
import prune  # noqa: E402

CRITERIA = ['random', 'magnitude', 'snip', 'grasp', 'synflow', 'prospr', 'epsd']


def _run(demo_data, out, *extra):
    # small batches and num_workers=0 keep the test quick; synflow's 100 rounds stay
    prune.main([CONFIG, '--work-dir', str(out), '--cfg-options',
                f'train_dataloader.dataset.data_root={demo_data.cls_root}',
                'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False', *extra])
    return MaskSet.load(str(out / 'masks.pth')), json.load(open(out / 'sparsity.json'))


@pytest.fixture(scope='module')
def results(demo_data, tmp_path_factory):
    out = {}
    for method in CRITERIA:
        d = tmp_path_factory.mktemp(method)
        out[method] = (d, ) + _run(demo_data, d, '--method', method, '--sparsity', '0.9')
    return out


@pytest.mark.parametrize('method', CRITERIA)
def test_each_criterion_reaches_the_target_and_writes_its_files(results, method):
    d, masks, report = results[method]
    assert abs(masks.sparsity - 0.9) <= 0.002 and masks.method == method
    assert report['method'] == method and report['target_sparsity'] == 0.9
    assert abs(report['sparsity'] - masks.sparsity) < 1e-12
    assert {'name', 'numel', 'kept', 'sparsity'} <= set(report['layers'][0])
    assert sum(r['kept'] for r in report['layers']) == masks.kept
    assert osp.getsize(d / 'sparsity.png') > 1000


def test_epsd_masks_differ_from_snip_masks(results):
    epsd, snip = results['epsd'][1], results['snip'][1]
    differ = sum(int((epsd[n] != snip[n]).sum()) for n in epsd.names())
    assert differ > 0.05 * epsd.numel


def test_layer_scope_puts_every_layer_at_the_target(demo_data, tmp_path):
    masks, report = _run(demo_data, tmp_path, '--method', 'snip', '--sparsity', '0.8',
                         '--scope', 'layer')
    for row in report['layers']:
        assert abs(row['sparsity'] - 0.8) <= 0.01, row['name']


@pytest.mark.parametrize('args, message', [
    (['--sparsity', '1.5'], 'strictly between 0 and 1'),
    (['--sparsity', '0'], 'strictly between 0 and 1'),
    (['--method', 'snipp', '--sparsity', '0.9'], 'valid names: epsd, epsd_plus, grasp, magnitude'),
    (['--cfg-options', 'train_dataloader.dataset.data_root=/nowhere'], '/nowhere'),
])
def test_bad_input_is_one_clear_line_and_no_masks(demo_data, tmp_path, args, message):
    out = tmp_path / 'out'
    if '--cfg-options' not in args:  # the data exist: only the argument under test is wrong
        args = args + ['--cfg-options', f'train_dataloader.dataset.data_root={demo_data.cls_root}']
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'prune.py'), CONFIG,
                           '--work-dir', str(out), *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith('error: ')
    assert message in proc.stderr
    assert not osp.exists(out / 'masks.pth')


def test_imagenet_epsd_config_prunes_with_its_own_small_scoring_batch(tiny_formats, tmp_path):
    """The ResNet-50 ImageNet EPSD (DLB) config on a tiny ImageNet-format copy at 32 px, scored
    with 2 samples per inner step (the recipe trains with 32): masks at the target."""
    config = osp.join(ROOT, 'configs', 'classification', 'imagenet', 'epsd_dlb_r50_imagenet.py')
    augment = 'train_dataloader.dataset.pipeline.1.transforms.0.0.scale=32'
    # at 32 px layer4 sees 1x1 maps and EPSD's global ranking would empty some of its layers
    prune.main([config, '--work-dir', str(tmp_path), '--score-batch-size', '2', '--min-kept', '4',
                '--cfg-options', f'train_dataloader.dataset.data_root={tiny_formats["imagenet"]}',
                'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                augment])
    masks = MaskSet.load(str(tmp_path / 'masks.pth'))
    assert masks.method == 'epsd' and abs(masks.sparsity - 0.8) <= 0.002
    assert masks.extra['batch_sizes'] == [2, 2, 2, 2]  # 3 inner steps + the scoring step
    assert 'backbone.layer4.2.conv3.weight' in masks.names()
    assert osp.isfile(tmp_path / 'sparsity.json') and osp.isfile(tmp_path / 'sparsity.png')
