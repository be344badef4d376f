"""Published checkpoints (tools/publish_model.py) open where a user of mmdet and mmpretrain
opens them: in a process that cannot import epsd_mm, with ``init_detector`` +
``inference_detector`` and with mmpretrain's ``ImageClassificationInferencer``, through the
plain demo configs (configs/demo/*_infer.py). And ``--tta`` runs with a PruningHook.

The checkpoints are real Runner checkpoints (message hub, optimizer, SD state, masks) of the
demo detector and the demo DLB classifier, trained for two iterations on the session's demo
data.
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import epsd_mm  # noqa: F401
from epsd_mm.analysis.publish import PUBLISHED_KEYS, plain, publish_checkpoint
from epsd_mm.pruning import MaskSet
from epsd_mm.utils.errors import UserError
from tests.detection.test_transfer import demo_det_cfg, save_cls_checkpoint, short_run

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_INFER = osp.join(ROOT, 'configs', 'demo', 'frcnn_demo_infer.py')
CLS_INFER = osp.join(ROOT, 'configs', 'demo', 'cls_demo_infer.py')
DLB_DEMO = osp.join(ROOT, 'configs', 'demo', 'epsd_dlb_demo.py')
PUBLISH = osp.join(ROOT, 'tools', 'publish_model.py')
TEST = osp.join(ROOT, 'tools', 'test.py')

# The child process: epsd_mm made unimportable however it is installed (an editable install
# hooks a finder or a path into site-packages; a meta-path entry placed first refuses the name
# before any of them is asked), checked, then only torch, mmengine and mmdet/mmpretrain.
BLOCK_EPSD_MM = '''
import json, sys
class _NoEpsdMM:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'epsd_mm':
            raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)
sys.meta_path.insert(0, _NoEpsdMM())
try:
    import epsd_mm  # noqa
    raise SystemExit('epsd_mm is importable in the child')
except ModuleNotFoundError:
    pass
import torch
ckpt = torch.load(CKPT, map_location='cpu', weights_only=True)
'''

DET_CHILD = BLOCK_EPSD_MM + '''
from mmdet.apis import inference_detector, init_detector
model = init_detector(CONFIG, CKPT, device='cpu')
result = inference_detector(model, IMAGE)
state = model.state_dict()
print('RESULT ' + json.dumps(dict(
    keys=sorted(ckpt), classes=list(model.dataset_meta['classes']),
    same_weights=all(torch.equal(state[k], v) for k, v in ckpt['state_dict'].items()),
    missing=sorted(set(state) - set(ckpt['state_dict'])),
    bboxes=result.pred_instances.bboxes.tolist(), scores=result.pred_instances.scores.tolist(),
    labels=result.pred_instances.labels.tolist(),
    epsd_mm_loaded=any(m.split('.')[0] == 'epsd_mm' for m in sys.modules))))
'''

CLS_CHILD = BLOCK_EPSD_MM + '''
from mmpretrain.apis import ImageClassificationInferencer
inferencer = ImageClassificationInferencer(CONFIG, pretrained=CKPT, device='cpu')
result = inferencer(IMAGE)[0]
state = inferencer.model.state_dict()
print('RESULT ' + json.dumps(dict(
    keys=sorted(ckpt), classes=list(inferencer.classes),
    same_weights=all(torch.equal(state[k], v) for k, v in ckpt['state_dict'].items()),
    missing=sorted(set(state) - set(ckpt['state_dict'])),
    scores=result['pred_scores'].tolist(), pred_class=result['pred_class'],
    epsd_mm_loaded=any(m.split('.')[0] == 'epsd_mm' for m in sys.modules))))
'''


def run_child(code, tmp_path, **values):
    """Run ``code`` in ``python -I`` (no PYTHONPATH, no user site, no script dir on the path)
    from an empty directory, with ``values`` as its constants; return its JSON line."""
    prelude = ''.join(f'{k} = {v!r}\n' for k, v in values.items())
    cwd = tmp_path / 'elsewhere'
    cwd.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, '-I', '-c', prelude + code], cwd=str(cwd),
                          capture_output=True, text=True, timeout=300,
                          env={'OMP_NUM_THREADS': '1', 'PATH': os.environ.get('PATH', ''),
                               'HOME': os.environ.get('HOME', str(cwd))})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    # an inferencer draws a progress bar on stdout too
    return json.loads(proc.stdout[proc.stdout.rindex('RESULT ') + len('RESULT '):].split('\n')[0])


@pytest.fixture(scope='module')
def trained_detector(demo_data, tmp_path_factory):
    """``(runner, checkpoint)``: the demo detector (real config, PruningHook keeping a pruned
    backbone's masks) after 2 iterations, and its Runner checkpoint."""
    tmp = tmp_path_factory.mktemp('publish_det')
    cls_ckpt = str(tmp / 'cls.pth')
    save_cls_checkpoint(cls_ckpt)
    runner = Runner.from_cfg(demo_det_cfg(demo_data, str(tmp / 'det'), cls_ckpt, max_iters=2))
    runner.train()
    return runner, str(tmp / 'det' / 'iter_2.pth')


def demo_cls_cfg(demo_data, work_dir, max_iters):
    """The DLB demo classifier config (pruning with epsd at 0.9, DLB, SelfDistillHook) on the
    session's small demo data, for ``max_iters`` iterations, checkpoint at the end, no
    validation."""
    cfg = Config.fromfile(DLB_DEMO)
    cfg.work_dir = work_dir
    cfg.train_dataloader.dataset.data_root = demo_data.cls_root
    short_run(cfg, max_iters)
    cfg.log_processor = dict(by_epoch=False)
    return cfg


@pytest.fixture(scope='module')
def trained_classifier(demo_data, tmp_path_factory):
    """``(runner, checkpoint)``: the DLB demo classifier (SDImageClassifier, PruningHook with
    the random criterion, SelfDistillHook) after 2 iterations, and its Runner checkpoint."""
    tmp = tmp_path_factory.mktemp('publish_cls')
    cfg = demo_cls_cfg(demo_data, str(tmp / 'cls'), max_iters=2)
    cfg.custom_hooks[0].criterion = dict(type='random')
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner, str(tmp / 'cls' / 'iter_2.pth')


def test_training_checkpoint_needs_epsd_mm_and_the_published_one_does_not(trained_detector,
                                                                          tmp_path):
    runner, ckpt = trained_detector
    # the starting point: torch's own weights-only loading refuses the Runner's file
    from epsd_mm.analysis.publish import _stock_weights_only_load
    with pytest.raises(Exception, match='HistoryBuffer'):
        _stock_weights_only_load(ckpt)

    r = publish_checkpoint(ckpt, str(tmp_path / 'out' / 'frcnn_demo.pth'))
    assert re.fullmatch(r'frcnn_demo-[0-9a-f]{8}\.pth', osp.basename(r['path']))
    assert osp.basename(r['path'])[len('frcnn_demo-'):-4] == r['sha256'][:8]
    import hashlib
    with open(r['path'], 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == r['sha256']
    assert sorted(r['dropped']) == ['message_hub', 'optimizer', 'param_schedulers']
    assert r['kept'] == list(PUBLISHED_KEYS) and r['masks'] == 20
    # nothing else in the directory: no temporary file left behind
    assert sorted(glob.glob(str(tmp_path / 'out' / '*')) + glob.glob(
        str(tmp_path / 'out' / '.*'))) == [r['path']]

    published = _stock_weights_only_load(r['path'])
    full = torch.load(ckpt, map_location='cpu')
    assert list(published['state_dict']) == list(full['state_dict'])
    assert all(torch.equal(published['state_dict'][k], v) for k, v in full['state_dict'].items())
    masks = MaskSet.from_dict(published['pruning'])
    assert masks.equal(MaskSet.from_dict(full['pruning']))
    assert masks.zero_violations(published['state_dict']) == 0
    assert published['meta']['dataset_meta']['classes'] == full['meta']['dataset_meta'][
        'classes']
    assert published['meta']['iter'] == 2


def test_published_detector_opens_with_init_detector_without_epsd_mm(trained_detector,
                                                                     demo_data, tmp_path):
    runner, ckpt = trained_detector
    proc = subprocess.run([sys.executable, PUBLISH, ckpt, str(tmp_path / 'det')],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (published,) = glob.glob(str(tmp_path / 'det-*.pth'))
    assert f'wrote {published}' in proc.stdout
    assert 'dropped message_hub, optimizer, param_schedulers' in proc.stdout or \
        'dropped optimizer, param_schedulers, message_hub' in proc.stdout, proc.stdout
    image = sorted(glob.glob(osp.join(demo_data.voc_root, 'VOC2007', 'JPEGImages', '*.jpg')))[0]

    out = run_child(DET_CHILD, tmp_path, CKPT=published, CONFIG=DET_INFER, IMAGE=image)
    assert out['epsd_mm_loaded'] is False
    assert out['keys'] == ['meta', 'pruning', 'state_dict']
    assert out['same_weights'] is True and out['missing'] == []
    assert out['classes'] == list(demo_data.classes)

    # the same predictions as the trained model itself, in this process
    from mmdet.apis import inference_detector
    model = runner.model
    model.cfg = Config.fromfile(DET_INFER)
    model.eval()
    expected = inference_detector(model, image).pred_instances
    assert len(out['scores']) == len(expected.scores)
    assert torch.allclose(torch.tensor(out['scores']).reshape(-1), expected.scores, atol=1e-5)
    assert torch.allclose(torch.tensor(out['bboxes']).reshape(-1, 4), expected.bboxes,
                          atol=1e-3)
    assert out['labels'] == expected.labels.tolist()


def test_published_classifier_opens_with_mmpretrain_inferencer_without_epsd_mm(
        trained_classifier, demo_data, tmp_path):
    runner, ckpt = trained_classifier
    full = torch.load(ckpt, map_location='cpu')
    assert {'message_hub', 'optimizer', 'self_distill', 'pruning'} <= set(full)
    r = publish_checkpoint(ckpt, str(tmp_path / 'cls_demo'))
    assert 'self_distill' in r['dropped'] and r['masks'] == 21
    image = sorted(glob.glob(osp.join(demo_data.cls_root, 'val', '*', '*.png')))[0]

    out = run_child(CLS_CHILD, tmp_path, CKPT=r['path'], CONFIG=CLS_INFER, IMAGE=image)
    assert out['epsd_mm_loaded'] is False
    assert out['same_weights'] is True and out['missing'] == []
    assert out['classes'] == list(demo_data.classes)

    from mmengine.dataset import Compose, pseudo_collate
    model = runner.model
    model.eval()
    data = Compose(Config.fromfile(CLS_INFER).test_pipeline)(dict(img_path=image))
    with torch.no_grad():
        expected = model.test_step(pseudo_collate([data]))[0].pred_score
    assert torch.allclose(torch.tensor(out['scores']), expected, atol=1e-5)
    assert out['pred_class'] == demo_data.classes[int(expected.argmax())]


def test_plain_turns_numpy_and_config_types_into_python_ones():
    import numpy as np
    from mmengine.config import ConfigDict
    value = plain(ConfigDict(a=np.float64(0.5), b=np.arange(3), c=(np.int64(2), 'x'),
                             d=torch.Size([2, 3]), e=torch.float32, f={1, 2}))
    assert value == dict(a=0.5, b=[0, 1, 2], c=(2, 'x'), d=(2, 3), e='torch.float32', f=[1, 2])
    assert type(value) is dict and type(value['a']) is float and type(value['c'][0]) is int


def test_publish_of_a_bare_state_dict_or_missing_file_is_a_user_error(tmp_path):
    bare = tmp_path / 'bare.pth'
    torch.save({'w': torch.zeros(2)}, bare)
    with pytest.raises(UserError, match='no "state_dict"'):
        publish_checkpoint(str(bare), str(tmp_path / 'x'))
    proc = subprocess.run([sys.executable, PUBLISH, str(tmp_path / 'nope.pth'),
                           str(tmp_path / 'x')], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.startswith('error: checkpoint ')
    assert 'Traceback' not in proc.stderr and not glob.glob(str(tmp_path / 'x*'))


def test_tta_with_a_pruning_hook(trained_detector, demo_data, tmp_path):
    """--tta wraps the detector in DetTTAModel (parameters renamed module.*); the hook still
    checks the checkpoint's masks against the detector itself, and the config's tta_pipeline
    (both flips, annotations loaded after them) evaluates."""
    runner, ckpt = trained_detector
    config = osp.join(ROOT, 'configs', 'demo', 'frcnn_demo.py')
    data = [f'test_dataloader.dataset.data_root={demo_data.voc_root}/',
            'model.backbone.init_cfg=None', f'custom_hooks.0.mask_file={ckpt}']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, TEST, config, ckpt, '--tta', '--work-dir',
                           str(tmp_path / 'tta'), '--cfg-options', *data], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'masks do not fit' not in log
    assert re.search(r'pascal_voc/mAP: \d', log), log[-2000:]
    assert 'Cannot find ``tta' not in log  # the config's own tta_model and tta_pipeline


def test_masks_under_a_tta_wrapper_name_the_wrapper_when_they_do_not_fit(trained_detector):
    """Applied to the wrapper itself, the masks fail, and the message says why (a prefix), not
    that the checkpoint came from another model."""
    from mmdet.models import DetTTAModel
    runner, ckpt = trained_detector
    masks = MaskSet.from_dict(torch.load(ckpt, map_location='cpu')['pruning'])
    tta = DetTTAModel(module=runner.model, tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                                                         max_per_img=100))
    masks.check_fits(runner.model)
    with pytest.raises(UserError, match=r"20 of 20 masks mismatch.*once 'module\.' is put "
                                        r'before its name.*DetTTAModel'):
        masks.check_fits(tta)
    renamed = MaskSet({f'module.{n}': m for n, m in masks.items()})
    with pytest.raises(UserError, match=r"once 'module\.' is removed"):
        renamed.check_fits(runner.model)
    other = MaskSet({'backbone.conv1.weight': torch.ones(3, 3, 7, 7)})
    with pytest.raises(UserError, match='Use masks computed for this architecture'):
        other.check_fits(runner.model)
