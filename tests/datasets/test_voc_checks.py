"""CheckedVOCDataset: loads the VOC demo as mmdet does, and names the file of every bad input."""
import os.path as osp
import shutil
import xml.etree.ElementTree as ET

import pytest
import torch

from epsd_mm.datasets import DEMO_CLASSES, CheckedVOCDataset
from epsd_mm.utils.errors import UserError

HINT = 'create it with `python tools/misc/make_demo_data.py --out data/demo`'


def voc_cfg(data_root, split='trainval', **kwargs):
    cfg = dict(type='CheckedVOCDataset', data_root=data_root,
               ann_file=f'VOC2007/ImageSets/Main/{split}.txt',
               data_prefix=dict(sub_data_root='VOC2007/'),
               metainfo=dict(classes=DEMO_CLASSES), pipeline=[])
    cfg.update(kwargs)
    return cfg


def build(cfg):
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope

    # as under an mmdet config (default_scope='mmdet'): the pipeline's names are mmdet's
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(cfg)


def xml_boxes(path):
    """(label, [xmin, ymin, xmax, ymax]) per object, parsed independently of mmdet."""
    root = ET.parse(path).getroot()
    return [(DEMO_CLASSES.index(o.find('name').text),
             [int(o.find(f'bndbox/{t}').text) for t in ('xmin', 'ymin', 'xmax', 'ymax')])
            for o in root.findall('object')]


@pytest.fixture
def voc_copy(demo_data, tmp_path):
    """A writable copy of the demo VOCdevkit; returns (data_root, path of 000001.xml)."""
    root = tmp_path / 'VOCdevkit'
    shutil.copytree(demo_data.voc_root, root)
    return str(root), str(root / 'VOC2007' / 'Annotations' / '000001.xml')


def test_loads_demo_with_the_xml_boxes(demo_data):
    ds = build(voc_cfg(demo_data.voc_root))
    assert isinstance(ds, CheckedVOCDataset)
    assert ds.metainfo['classes'] == DEMO_CLASSES
    # custom classes: no 'VOC2007', so VOCMetric labels its table with these names
    assert ds.metainfo['dataset_type'] is None
    assert len(ds) == 8
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['img_id'] == f'{i + 1:06d}'
        assert (info['width'], info['height']) == (128, 128)
        expected = xml_boxes(info['xml_path'])
        # mmdet converts VOC's 1-based coordinates by subtracting 1
        assert [(x['bbox_label'], x['bbox']) for x in info['instances']] == \
            [(label, [v - 1 for v in box]) for label, box in expected]
        assert all(x['ignore_flag'] == 0 for x in info['instances'])
    assert len(build(voc_cfg(demo_data.voc_root, split='test'))) == 4


def test_voc_classes_keep_dataset_type(demo_data):
    from mmdet.datasets import VOCDataset
    cfg = voc_cfg(demo_data.voc_root)
    cfg['metainfo'] = dict(classes=VOCDataset.METAINFO['classes'])
    ds = build(cfg)
    assert ds.metainfo['dataset_type'] == 'VOC2007'
    assert len(ds) == 8
    assert all(len(ds.get_data_info(i)['instances']) == 0 for i in range(8))  # no VOC names


def test_pipeline_and_perfect_predictions_give_map_1(demo_data):
    from mmdet.evaluation import VOCMetric
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs')]
    ds = build(voc_cfg(demo_data.voc_root, split='test', test_mode=True, pipeline=pipeline))
    metric = VOCMetric(metric='mAP', eval_mode='11points')
    metric.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        sample = ds[i]
        assert tuple(sample['inputs'].shape) == (3, 128, 128)
        gt = sample['data_samples'].gt_instances
        expected = xml_boxes(ds.get_data_info(i)['xml_path'])
        assert gt.labels.tolist() == [label for label, _ in expected]
        assert gt.bboxes.tensor.tolist() == [[float(v - 1) for v in box] for _, box in expected]
        metric.process({}, [dict(
            gt_instances=dict(labels=gt.labels, bboxes=gt.bboxes.tensor),
            ignored_instances=dict(labels=torch.zeros(0, dtype=torch.long),
                                   bboxes=torch.zeros(0, 4)),
            pred_instances=dict(labels=gt.labels, bboxes=gt.bboxes.tensor,
                                scores=torch.ones(len(gt.labels))))])
    assert metric.compute_metrics(metric.results)['mAP'] == pytest.approx(1.0)


def test_unknown_class_is_skipped_as_in_mmdet(voc_copy):
    data_root, xml = voc_copy
    tree = ET.parse(xml)
    n = len(tree.findall('object'))
    tree.find('object/name').text = 'unicorn'
    tree.write(xml)
    info = build(voc_cfg(data_root)).get_data_info(0)
    assert len(info['instances']) == n - 1


def test_missing_size_reads_the_image_as_in_mmdet(voc_copy):
    data_root, xml = voc_copy
    tree = ET.parse(xml)
    tree.getroot().remove(tree.find('size'))
    tree.write(xml)
    info = build(voc_cfg(data_root)).get_data_info(0)
    assert (info['width'], info['height']) == (128, 128)


def edit(xml, fn):
    tree = ET.parse(xml)
    fn(tree.getroot())
    tree.write(xml)


def remove(parent_path, child):
    def fn(root):
        parent = root.find(parent_path)
        parent.remove(parent.find(child))
    return fn


def set_text(path, text):
    def fn(root):
        root.find(path).text = text
    return fn


def rename_root(root):
    root.tag = 'annotations'


def inverted(root):
    box = root.find('object/bndbox')
    box.find('xmin').text, box.find('xmax').text = box.find('xmax').text, box.find('xmin').text


MALFORMED = {  # what the message says after the file name; {} is the first object's class
    'no_bndbox': (remove('object', 'bndbox'), 'object 1 ({}) has no <bndbox>'),
    'no_name': (remove('object', 'name'), 'object 1 has no <name>'),
    'no_xmax': (remove('object/bndbox', 'xmax'), 'object 1 ({}): <bndbox> has no <xmax>'),
    'text_coordinate': (set_text('object/bndbox/ymin', 'twelve'),
                        "object 1 ({}): <ymin> is 'twelve', not a number"),
    'nan_coordinate': (set_text('object/bndbox/xmin', 'nan'),
                       "object 1 ({}): <xmin> is 'nan', not a finite number"),
    'inverted_box': (inverted, 'object 1 ({}): the box (xmin={}, ymin={}, xmax={}, ymax={}) '
                     'has xmax < xmin or ymax < ymin'),
    'no_width': (remove('size', 'width'), '<size> has no <width>'),
    'float_height': (set_text('size/height', '128.5'),
                     "<size><height> is '128.5', not an integer"),
    'zero_width': (set_text('size/width', '0'), '<size><width> is 0, must be positive'),
    'bad_difficult': (set_text('object/difficult', 'yes'),
                      "object 1 ({}): <difficult> is 'yes', not 0 or 1"),
    'wrong_root': (rename_root, 'the root element is <annotations>, expected <annotation>'),
}


@pytest.mark.parametrize('case', sorted(MALFORMED))
def test_malformed_annotation_names_the_file(voc_copy, case):
    data_root, xml = voc_copy
    obj = ET.parse(xml).find('object')
    name = obj.find('name').text
    xmin, ymin, xmax, ymax = (obj.find(f'bndbox/{t}').text for t in ('xmin', 'ymin', 'xmax',
                                                                      'ymax'))
    fn, problem = MALFORMED[case]
    edit(xml, fn)
    problem = problem.format(name, xmax, ymin, xmin, ymax)  # the inverted box swaps x
    with pytest.raises(UserError) as e:
        build(voc_cfg(data_root))
    assert str(e.value) == f'malformed VOC annotation {xml}: {problem}'


def test_unparsable_xml_names_the_file(voc_copy):
    data_root, xml = voc_copy
    with open(xml) as f:
        text = f.read()
    with open(xml, 'w') as f:
        f.write(text[:len(text) // 2])  # a truncated file
    with pytest.raises(UserError, match='not well-formed XML') as e:
        build(voc_cfg(data_root))
    assert str(e.value).startswith(f'malformed VOC annotation {xml}: ')


def test_missing_paths_are_named(voc_copy, tmp_path):
    data_root, xml = voc_copy
    voc = osp.join(data_root, 'VOC2007')
    nowhere = str(tmp_path / 'nowhere')
    with pytest.raises(UserError) as e:
        build(voc_cfg(nowhere, missing_hint=HINT))
    assert str(e.value) == f'VOC data_root not found: {nowhere}; {HINT}'

    cfg = voc_cfg(data_root, missing_hint=HINT)
    cfg['ann_file'] = 'VOC2007/ImageSets/Main/val.txt'
    with pytest.raises(UserError) as e:
        build(cfg)
    assert str(e.value) == (f'VOC image-set file (ann_file) not found: '
                            f'{osp.join(voc, "ImageSets/Main/val.txt")}; {HINT}')

    img = osp.join(voc, 'JPEGImages', '000002.jpg')
    shutil.move(img, img + '.moved')
    with pytest.raises(UserError) as e:
        build(voc_cfg(data_root))
    trainval = osp.join(voc, 'ImageSets/Main/trainval.txt')
    assert str(e.value) == f'image of 000002 listed in {trainval} not found: {img}'
    shutil.move(img + '.moved', img)

    shutil.move(xml, xml + '.moved')
    with pytest.raises(UserError) as e:
        build(voc_cfg(data_root))
    assert str(e.value) == f'VOC annotation of 000001 listed in {trainval} not found: {xml}'


def test_reaches_a_tool_as_one_line(voc_copy, capsys):
    from epsd_mm.utils.errors import cli_main
    data_root, xml = voc_copy
    edit(xml, remove('object', 'bndbox'))

    @cli_main
    def main():
        build(voc_cfg(data_root))

    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: malformed VOC annotation {xml}') and err.count('\n') == 1


def test_a_box_entirely_outside_its_image_is_named(voc_copy):
    # such a box trains with loss: nan
    data_root, xml = voc_copy
    root = ET.parse(xml).getroot()
    width, height = (int(root.find(f'size/{t}').text) for t in ('width', 'height'))
    name = root.find('object/name').text
    ymin, ymax = (root.find(f'object/bndbox/{t}').text for t in ('ymin', 'ymax'))

    def shift_right(root):
        box = root.find('object/bndbox')
        box.find('xmin').text, box.find('xmax').text = str(width + 10), str(width + 50)

    edit(xml, shift_right)
    with pytest.raises(UserError) as e:
        build(voc_cfg(data_root))
    assert str(e.value) == (
        f'malformed VOC annotation {xml}: object 1 ({name}): the box (xmin={width + 10}, '
        f'ymin={ymin}, xmax={width + 50}, ymax={ymax}) lies entirely outside the '
        f'{width}x{height} image (its loss would be NaN)')


def test_an_empty_image_set_file_is_named(voc_copy):
    data_root, _ = voc_copy
    ann = osp.join(data_root, 'VOC2007', 'ImageSets', 'Main', 'trainval.txt')
    open(ann, 'w').close()
    with pytest.raises(UserError) as e:
        build(voc_cfg(data_root))
    assert str(e.value) == (f'the VOC image-set file {ann} lists no image; list one image id '
                            'per line (e.g. 000005)')


def test_a_set_whose_objects_are_all_of_unknown_classes_is_named(voc_copy):
    data_root, _ = voc_copy
    ann = osp.join(data_root, 'VOC2007', 'ImageSets', 'Main', 'trainval.txt')
    ids = open(ann).read().split()

    def unknown_classes(root):
        for obj in root.findall('object'):
            obj.find('name').text = 'unicorn'

    for img_id in ids:
        edit(osp.join(data_root, 'VOC2007', 'Annotations', f'{img_id}.xml'), unknown_classes)
    with pytest.raises(UserError) as e:
        build(voc_cfg(data_root, filter_cfg=dict(filter_empty_gt=True, min_size=32)))
    assert str(e.value) == (
        f'none of the {len(ids)} images listed in {ann} is kept: none has an object of this '
        f"dataset's classes ({', '.join(DEMO_CLASSES)}) or all are smaller than "
        'filter_cfg.min_size=32; check the <name> of the objects in the annotations, or the '
        'classes in metainfo')
