"""The demo data generators: determinism, layout, completion marker, loading by mmpretrain."""
import hashlib
import importlib.util
import os
import os.path as osp
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from epsd_mm.datasets import demo
from epsd_mm.datasets.demo import (
    DEMO_CLASSES,
    MARKER,
    SHAPES,
    demo_classes,
    draw_shape_mask,
    make_classification_demo,
    make_voc_demo,
    render_detection_image,
)
from epsd_mm.utils.errors import UserError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SMALL_CLS = dict(train_per_class=2, val_per_class=1, progress=False)
SMALL_VOC = dict(num_trainval=3, num_test=2, progress=False)


def digests(root):
    """{relative path: md5} of every file under ``root`` but the marker (it holds a time)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name == MARKER:
                continue
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.md5(f.read()).hexdigest()
    return out


def test_demo_classes_are_sorted_label_order():
    assert DEMO_CLASSES == ('circle', 'cross', 'ring', 'square', 'triangle')
    assert demo_classes(3) == ('circle', 'square', 'triangle')
    assert demo_classes(6) == tuple(sorted(SHAPES))
    with pytest.raises(UserError, match='num_classes'):
        demo_classes(7)


def test_classification_same_seed_same_bytes(tmp_path):
    make_classification_demo(tmp_path / 'a', **SMALL_CLS)
    make_classification_demo(tmp_path / 'b', **SMALL_CLS)
    make_classification_demo(tmp_path / 'c', seed=1, **SMALL_CLS)
    a, b, c = (digests(tmp_path / n) for n in 'abc')
    assert len(a) == 5 * 3 + 3  # images + meta/train.txt, meta/val.txt, classes.txt
    assert a == b
    pngs = [k for k in a if k.endswith('.png')]
    assert all(a[k] != c[k] for k in pngs)  # another seed: every image differs


def test_voc_same_seed_same_bytes(tmp_path):
    make_voc_demo(tmp_path / 'a', **SMALL_VOC)
    make_voc_demo(tmp_path / 'b', **SMALL_VOC)
    make_voc_demo(tmp_path / 'c', seed=1, **SMALL_VOC)
    a, b, c = (digests(tmp_path / n) for n in 'abc')
    assert len(a) == 5 * 2 + 2
    assert a == b
    assert all(a[k] != c[k] for k in a if k.endswith('.jpg'))


def test_smaller_set_is_a_prefix(tmp_path):
    # every image has its own seed (seed, split, class, index): counts do not shift images
    make_classification_demo(tmp_path / 'small', **SMALL_CLS)
    make_classification_demo(tmp_path / 'large', train_per_class=3, val_per_class=2,
                             progress=False)
    small, large = digests(tmp_path / 'small'), digests(tmp_path / 'large')
    for k, v in small.items():
        if k.endswith('.png'):
            assert large[k] == v, k


def test_classification_layout(tmp_path):
    marker = make_classification_demo(tmp_path, **SMALL_CLS)
    assert marker['counts'] == dict(train=10, val=5)
    assert sorted(os.listdir(tmp_path / 'train')) == list(DEMO_CLASSES)
    assert sorted(os.listdir(tmp_path / 'val')) == list(DEMO_CLASSES)
    assert (tmp_path / 'classes.txt').read_text().split() == list(DEMO_CLASSES)
    lines = (tmp_path / 'meta' / 'train.txt').read_text().splitlines()
    assert lines[:3] == ['circle/circle_00000.png 0', 'circle/circle_00001.png 0',
                         'cross/cross_00000.png 1']
    assert len(lines) == 10
    from PIL import Image
    img = Image.open(tmp_path / 'train' / 'ring' / 'ring_00001.png')
    assert (img.format, img.mode, img.size) == ('PNG', 'RGB', (32, 32))


def test_voc_layout_and_xml(tmp_path):
    marker = make_voc_demo(tmp_path, **SMALL_VOC)
    voc = tmp_path / 'VOCdevkit' / 'VOC2007'
    trainval = (voc / 'ImageSets/Main/trainval.txt').read_text().split()
    test = (voc / 'ImageSets/Main/test.txt').read_text().split()
    assert (trainval, test) == (['000001', '000002', '000003'], ['000004', '000005'])
    from PIL import Image
    num_objects = 0
    for i, img_id in enumerate(trainval + test):
        img = Image.open(voc / 'JPEGImages' / f'{img_id}.jpg')
        assert (img.format, img.size) == ('JPEG', (128, 128))
        root = ET.parse(voc / 'Annotations' / f'{img_id}.xml').getroot()
        assert root.find('filename').text == f'{img_id}.jpg'
        assert [root.find(f'size/{t}').text for t in ('width', 'height', 'depth')] == \
            ['128', '128', '3']
        # the XML holds exactly the generator's objects, in 1-based inclusive coordinates
        split, k = ('trainval', i) if i < 3 else ('test', i - 3)
        rng = np.random.RandomState([0, demo._SPLIT_CODES[split], k])
        _, objects = render_detection_image(rng)
        got = [(o.find('name').text, tuple(int(o.find(f'bndbox/{t}').text) for t in
                                           ('xmin', 'ymin', 'xmax', 'ymax')))
               for o in root.findall('object')]
        assert got == [(o['name'], (o['bbox'][0] + 1, o['bbox'][1] + 1, o['bbox'][2],
                                    o['bbox'][3])) for o in objects]
        for o in root.findall('object'):
            assert [o.find(t).text for t in ('pose', 'truncated', 'difficult')] == \
                ['Unspecified', '0', '0']
        num_objects += len(got)
    assert marker['counts'] == dict(trainval=3, test=2, objects=num_objects)


def test_detection_objects_are_tight_disjoint_and_large():
    names = set()
    for i in range(40):
        img, objects = render_detection_image(np.random.RandomState([7, i]))
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        assert 1 <= len(objects) <= 3
        for j, o in enumerate(objects):
            x0, y0, x1, y1 = o['bbox']
            assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
            # mmdet's VOC config ignores boxes under 32 pixels (bbox_min_size=32)
            assert min(x1 - x0, y1 - y0) >= 32
            for p in objects[j + 1:]:
                a0, b0, a1, b1 = p['bbox']
                assert x1 <= a0 or a1 <= x0 or y1 <= b0 or b1 <= y0, 'overlapping objects'
            names.add(o['name'])
    assert names == set(DEMO_CLASSES)


@pytest.mark.parametrize('kind', SHAPES)
def test_shape_mask_extent(kind):
    mask = draw_shape_mask(kind, 20, (32, 32), 0.0, (64, 64))
    ys, xs = np.nonzero(mask)
    # extent 20 around 32: the outline runs from 22 to 42, both ends rasterized
    assert (ys.min(), ys.max()) == (22, 42)
    # the diamond is 0.72 times as wide as high: 24.8 to 39.2, rasterized as 24 to 39
    assert (xs.min(), xs.max()) == ((24, 39) if kind == 'diamond' else (22, 42))
    if kind == 'square':
        assert mask.sum() == 21 * 21
    if kind == 'circle':
        assert abs(mask.sum() / (np.pi * 10.5 ** 2) - 1) < 0.02
    if kind == 'ring':
        assert not mask[32, 32] and mask[32, 22] and mask[32, 42]  # hole and rim


def test_marker_skip_and_regenerate(tmp_path, capsys):
    out = tmp_path / 'cls'
    make_classification_demo(out, **SMALL_CLS)
    first = (out / 'train/circle/circle_00000.png').stat().st_mtime_ns
    make_classification_demo(out, train_per_class=2, val_per_class=1)
    assert 'skipped' in capsys.readouterr().out
    assert (out / 'train/circle/circle_00000.png').stat().st_mtime_ns == first
    # other parameters: regenerated
    marker = make_classification_demo(out, train_per_class=1, val_per_class=1)
    assert 'parameters changed' in capsys.readouterr().out
    assert marker['counts'] == dict(train=5, val=5)
    assert not (out / 'train/circle/circle_00001.png').exists()
    # --force: regenerated although complete
    make_classification_demo(out, train_per_class=1, val_per_class=1, force=True)
    assert 'forced' in capsys.readouterr().out


def test_killed_generation_is_redone(tmp_path, monkeypatch):
    out = tmp_path / 'cls'
    calls = []
    real = demo.render_classification_image

    def dies_on_the_fourth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a kill would, midway through writing images
        return real(*args, **kwargs)

    monkeypatch.setattr(demo, 'render_classification_image', dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        make_classification_demo(out, **SMALL_CLS)
    assert not out.exists()  # nothing under the final name
    assert (tmp_path / 'cls.partial').is_dir() and not (tmp_path / 'cls.partial' / MARKER).exists()
    monkeypatch.setattr(demo, 'render_classification_image', real)
    marker = make_classification_demo(out, **SMALL_CLS)
    assert marker['counts'] == dict(train=10, val=5)
    assert not (tmp_path / 'cls.partial').exists()
    assert (out / MARKER).is_file()


def test_refuses_to_overwrite_foreign_directory(tmp_path):
    (tmp_path / 'cls').mkdir()
    (tmp_path / 'cls' / 'my_notes.txt').write_text('not demo data')
    with pytest.raises(UserError, match='not demo data made by make_demo_data'):
        make_classification_demo(tmp_path / 'cls', force=True, **SMALL_CLS)
    assert (tmp_path / 'cls' / 'my_notes.txt').read_text() == 'not demo data'


def test_make_demo_data_layout(demo_data):
    assert demo_data.classes == DEMO_CLASSES
    assert demo_data.cls_root == osp.join(demo_data.root, 'cls')
    assert demo_data.voc_root == osp.join(demo_data.root, 'voc', 'VOCdevkit')
    assert demo_data.counts['cls'] == dict(train=40, val=20)
    assert (demo_data.counts['voc']['trainval'], demo_data.counts['voc']['test']) == (8, 4)
    assert osp.isfile(osp.join(demo_data.voc_root, 'VOC2007', 'ImageSets', 'Main',
                               'trainval.txt'))


def test_custom_dataset_loads_classification_demo(demo_data):
    from mmpretrain.datasets import CustomDataset
    folders = CustomDataset(data_root=demo_data.cls_root, data_prefix='train')
    assert folders.metainfo['classes'] == DEMO_CLASSES
    assert len(folders) == 40
    for i in range(len(folders)):
        info = folders.get_data_info(i)
        kind = osp.basename(osp.dirname(info['img_path']))
        assert info['gt_label'] == DEMO_CLASSES.index(kind)
    # the annotation-list variant gives the same samples
    lists = CustomDataset(data_root=demo_data.cls_root, data_prefix='train',
                          ann_file='meta/train.txt', metainfo=dict(classes=DEMO_CLASSES))
    assert [lists.get_data_info(i) for i in range(40)] == \
        [folders.get_data_info(i) for i in range(40)]
    val = CustomDataset(data_root=demo_data.cls_root, data_prefix='val',
                        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    sample = val[5]
    assert tuple(sample['inputs'].shape) == (3, 32, 32)
    assert sample['data_samples'].gt_label.tolist() == [1]  # 5th val image: cross


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'make_demo_data_tool', osp.join(REPO, 'tools', 'misc', 'make_demo_data.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool(tmp_path, capsys):
    tool = load_tool()
    with pytest.raises(SystemExit) as e:
        tool.main(['--help'])
    assert e.value.code == 0
    assert '--out' in capsys.readouterr().out
    out = tmp_path / 'demo'
    tool.main(['--out', str(out), '--train-per-class', '1', '--val-per-class', '1',
               '--trainval', '2', '--test', '1'])
    text = capsys.readouterr().out
    assert '5 train and 5 val images' in text and '2 trainval and 1 test images' in text
    assert (out / 'cls' / MARKER).is_file() and (out / 'voc' / MARKER).is_file()
    with pytest.raises(SystemExit) as e:
        tool.main(['--out', str(out), '--train-per-class', '1', '--val-per-class', '1',
                   '--trainval', '-1', '--quiet'])
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith('error: num_trainval must be a non-negative')
