"""The Fashion-MNIST benchmark on a tiny copy in the official IDX format: finding and unpacking
the files, the fixed split, mmpretrain's real ``FashionMNIST`` class and pipeline, and
``tools/benchmark/run.py --data fashion --quick`` end to end (resume adds rows; the same seed
gives bit-identical runs)."""
import gzip
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from epsd_mm.benchmark.configs import BenchSetting, dataset_cfg, train_dataloader_cfg
from epsd_mm.benchmark.fashion import FILES, prepare_fashion, split_indices, write_idx
from epsd_mm.benchmark.sweep import prepare_data
from epsd_mm.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'benchmark', 'run.py')


def _tiny(n_train=80, n_test=30, seed=0):
    """Images whose pixel (0, 0) encodes the sample index and whose labels cycle 0..9."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (('train', n_train), ('t10k', n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n) % 256
        out[split] = images, (np.arange(n) % 10).astype(np.uint8)
    return out


def _write(directory, data, gz):
    os.makedirs(directory, exist_ok=True)
    for split, (images, labels) in data.items():
        for kind, array in (('images-idx3', images), ('labels-idx1', labels)):
            path = osp.join(directory, f'{split}-{kind}-ubyte')
            write_idx(path, array)
            if gz:
                with open(path, 'rb') as src, gzip.open(path + '.gz', 'wb') as dst:
                    dst.write(src.read())
                os.remove(path)


@pytest.fixture
def tiny(tmp_path):
    data = _tiny()
    system = tmp_path / 'system'
    _write(str(system), data, gz=True)
    return data, str(system), tmp_path / 'data' / 'fashion-mnist'


def test_gzipped_files_are_unpacked_once_and_atomically(tiny):
    data, system, root = tiny
    dims = prepare_fashion(str(root), sources=(str(root), system))
    assert dims == {'train-images-idx3-ubyte': (80, 28, 28), 'train-labels-idx1-ubyte': (80, ),
                    't10k-images-idx3-ubyte': (30, 28, 28), 't10k-labels-idx1-ubyte': (30, )}
    assert sorted(os.listdir(root)) == sorted(FILES)  # no temporary file left beside them
    raw = (root / 'train-images-idx3-ubyte').read_bytes()
    assert raw[:16] == bytes.fromhex('00000803 00000050 0000001c 0000001c'.replace(' ', ''))
    assert np.array_equal(np.frombuffer(raw, np.uint8, offset=16).reshape(80, 28, 28),
                          data['train'][0])
    mtime = (root / 'train-images-idx3-ubyte').stat().st_mtime_ns
    prepare_fashion(str(root), sources=(str(root), system))  # already there: untouched
    assert (root / 'train-images-idx3-ubyte').stat().st_mtime_ns == mtime


def test_missing_and_truncated_files_are_named_in_one_line(tiny, tmp_path):
    _, system, root = tiny
    with pytest.raises(UserError) as e:
        prepare_fashion(str(tmp_path / 'empty'), sources=(str(tmp_path / 'empty'), ))
    msg = str(e.value)
    assert '\n' not in msg and 'apt-get install dataset-fashion-mnist' in msg
    assert all(name in msg for name in FILES) and str(tmp_path / 'empty') in msg
    prepare_fashion(str(root), sources=(system, ))
    path = root / 't10k-images-idx3-ubyte'
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(UserError, match='truncated or corrupt'):
        prepare_fashion(str(root), sources=(system, ))


def test_split_is_stratified_disjoint_and_fixed():
    labels = np.repeat(np.arange(10), 12)  # 12 images per class
    train, val = split_indices(labels, num_train=50, num_val=30, seed=0)
    assert len(train) == 50 and len(val) == 30 and not set(train) & set(val)
    assert np.bincount(labels[train], minlength=10).tolist() == [5] * 10
    assert np.bincount(labels[val], minlength=10).tolist() == [3] * 10
    assert split_indices(labels, 50, 30, seed=0) == (train, val)
    # the training subset does not depend on whether the validation split is evaluated
    assert split_indices(labels, 50, 30, seed=1) != (train, val)
    with pytest.raises(UserError, match='lower --train-images'):
        split_indices(labels, 100, 30)


def test_real_dataset_class_and_pipeline_read_the_split(tiny):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS

    import epsd_mm.distill  # noqa: F401  (MultiView collate, SD models)
    init_default_scope('mmpretrain')
    data, system, root = tiny
    prepare_fashion(str(root), sources=(system, ))
    for split in ('test', 'val'):
        setting = BenchSetting(data='fashion', width=4, train_images=40, val_images=20,
                               eval_split=split)
        info = prepare_data(setting, str(root))
        train_cfg = train_dataloader_cfg(setting, info, sd='dlb')['dataset']
        train = DATASETS.build(train_cfg)
        assert type(train).__name__ == 'FashionMNIST' and len(train) == 40
        sample = train[3]
        inputs = sample['inputs']  # MultiView: DLB's two views of the same image
        assert len(inputs) == 2 and tuple(inputs[0].shape) == (1, 28, 28)
        idx = info['train_indices'][3]
        assert int(sample['data_samples'].gt_label) == idx % 10
        # pixel (0, 0) or, when the view is mirrored, (0, 27) holds the index
        corners = {int(inputs[0][0, 0, 0]), int(inputs[0][0, 0, 27])}
        assert idx in corners
        evaluated = DATASETS.build(dataset_cfg(setting, info, 'eval', [dict(type='PackInputs')]))
        if split == 'test':
            assert len(evaluated) == 30
            assert int(evaluated[7]['inputs'][0, 0, 0]) == 7
        else:
            assert len(evaluated) == 20 and not set(info['val_indices']) & \
                set(info['train_indices'])
            assert int(evaluated[0]['inputs'][0, 0, 0]) == info['val_indices'][0]


def _run(args, timeout=400):
    proc = subprocess.run([sys.executable, TOOL, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.timeout(900)
def test_quick_fashion_resume_adds_rows_and_the_same_seed_is_bit_identical(tiny, tmp_path):
    data, system, root = tiny
    _write(str(root), data, gz=False)  # unzipped under the data root itself
    common = ['--data', 'fashion', '--quick', '--data-root', str(root), '--train-images', '40',
              '--val-images', '20', '--width', '4']
    out = tmp_path / 'out'
    _run(common + ['--out', str(out), '--cost-iters', '16'])
    doc = json.loads((out / 'results.json').read_text())
    assert doc['data'] == 'fashion' and doc['eval_split'] == 'test'
    assert doc['counts'] == dict(train=40, val=20, test=30, evaluated=30)
    got = sorted((r['method'], r['sd'], r['sparsity']) for r in doc['runs'])
    assert got == [('dense', 'dlb', 0.0), ('dense', 'none', 0.0), ('epsd', 'dlb', 0.98),
                   ('snip', 'dlb', 0.98)]
    assert all(r['zero_violations'] == 0 for r in doc['runs'])
    assert (out / 'accuracy_vs_sparsity.png').read_bytes()[:4] == b'\x89PNG'
    assert '### DLB' in (out / 'results.md').read_text()
    # a later invocation adds prospr's rows to the same results.json, reusing the rest; epsd's
    # result is removed first, so that it runs again: the same seed in another process gives
    # identical accuracy, masks and trained weights
    epsd_run = out / 'runs' / 'sweep-epsd-dlb-s0p98-seed0.json'
    first = json.loads(epsd_run.read_text())
    epsd_run.unlink()
    proc = _run(common + ['--out', str(out), '--methods', 'prospr', 'epsd', '--skip-dense',
                          '--resume', '--no-cost'])
    log = proc.stdout + proc.stderr
    assert log.count('] prospr @ 0.98') == 1 and log.count('] epsd @ 0.98') == 1
    assert log.count('] snip @ 0.98') == 0  # reused, not run
    second = json.loads(epsd_run.read_text())
    for key in ('top1', 'mask_digest', 'weights_digest'):
        assert first[key] == second[key], key
    doc2 = json.loads((out / 'results.json').read_text())
    assert sorted(r['method'] for r in doc2['runs']) == ['dense', 'dense', 'epsd', 'prospr',
                                                         'snip']
    assert doc2['grid'][0]['methods'] == ['snip', 'prospr', 'epsd']
    md = (out / 'results.md').read_text()
    assert '| epsd − prospr (paired) |' in md and '| epsd − snip (paired) |' in md
    # the validation mode evaluates the 20 held-out training images, not the test set
    val = tmp_path / 'val'
    _run(common + ['--out', str(val), '--val', '--no-cost', '--skip-dense', '--methods', 'snip'])
    vdoc = json.loads((val / 'results.json').read_text())
    assert vdoc['eval_split'] == 'val' and vdoc['counts']['evaluated'] == 20
    assert 'validation' in (val / 'results.md').read_text()
