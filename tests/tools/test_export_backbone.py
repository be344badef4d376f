"""tools/export_backbone.py: a classification checkpoint becomes a backbone checkpoint."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import torch

import epsd_mm  # noqa: F401
from epsd_mm.pruning import MaskSet
from epsd_mm.utils.errors import UserError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'export_backbone.py')


def _tool():
    spec = importlib.util.spec_from_file_location('export_backbone_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_backbone = _tool().export_backbone


def _classifier():
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier', _scope_='mmpretrain',
        backbone=dict(type='ResNet', depth=18, stem_channels=16, base_channels=16),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=128)))
    model.init_weights()
    return model


@pytest.fixture(scope='module')
def cls_ckpt(tmp_path_factory):
    """A pruned classification checkpoint in mmengine's layout (plus training state)."""
    from epsd_mm.pruning import compute_masks
    model = _classifier()
    masks = compute_masks(model, None, dict(type='random', seed=0), 0.9, show_progress=False)
    masks.apply_(model)
    path = str(tmp_path_factory.mktemp('cls') / 'epoch_8.pth')
    torch.save(dict(meta=dict(epoch=8, dataset_meta=dict(classes=['a', 'b'])),
                    state_dict=model.state_dict(), pruning=masks.to_dict(),
                    optimizer=dict(state={}, param_groups=[]), self_distill=dict(carry=None)),
               path)
    return path, model.state_dict(), masks


def test_export_keeps_the_backbone_and_its_masks(cls_ckpt, tmp_path):
    src, state, masks = cls_ckpt
    out = str(tmp_path / 'backbone.pth')
    report = export_backbone(src, out)

    backbone_keys = [k for k in state if k.startswith('backbone.')]
    assert report['kept_keys'] == backbone_keys
    assert report['dropped_keys'] == ['head.fc.weight', 'head.fc.bias']
    assert report['dropped_masks'] == ['head.fc.weight']
    assert report['dropped_entries'] == ['optimizer', 'self_distill']

    ckpt = torch.load(out, map_location='cpu')
    assert set(ckpt) == {'meta', 'state_dict', 'pruning'}
    assert list(ckpt['state_dict']) == backbone_keys
    assert all(torch.equal(ckpt['state_dict'][k], state[k]) for k in backbone_keys)
    assert 'dataset_meta' not in ckpt['meta'] and ckpt['meta']['epoch'] == 8

    exported = MaskSet.from_dict(ckpt['pruning'])
    names = [n for n in masks.names() if n.startswith('backbone.')]
    assert exported.names() == names == report['kept_masks']
    assert all(torch.equal(exported[n], masks[n]) for n in names)
    # the sparsity is re-measured over the backbone's masks alone
    kept = sum(int(masks[n].sum()) for n in names)
    numel = sum(masks[n].numel() for n in names)
    assert ckpt['pruning']['sparsity'] == pytest.approx(1 - kept / numel, abs=1e-12)
    assert report['sparsity'] == ckpt['pruning']['sparsity']
    assert ckpt['pruning']['method'] == 'random'
    assert exported.zero_violations(ckpt['state_dict']) == 0


def test_exported_file_loads_into_the_detector_backbone(cls_ckpt, tmp_path):
    from mmdet.registry import MODELS
    src, _, _ = cls_ckpt
    out = str(tmp_path / 'backbone.pth')
    export_backbone(src, out)
    ckpt = torch.load(out, map_location='cpu')
    detector_backbone = MODELS.build(dict(
        type='ResNet', _scope_='mmdet', depth=18, stem_channels=16, base_channels=16,
        out_indices=(0, 1, 2, 3), frozen_stages=1))
    # every entry of the detector's backbone, and nothing else
    detector_backbone.load_state_dict(
        {k[len('backbone.'):]: v for k, v in ckpt['state_dict'].items()}, strict=True)
    # and every mask fits it by name and shape (PruningHook strict=True accepts the file)
    wrapper = torch.nn.Module()
    wrapper.backbone = detector_backbone
    MaskSet.load(out).check_fits(wrapper)


def test_dense_and_bare_checkpoints(tmp_path):
    model = _classifier()
    dense = str(tmp_path / 'dense.pth')
    torch.save(dict(state_dict=model.state_dict()), dense)
    report = export_backbone(dense, str(tmp_path / 'a.pth'))
    assert report['sparsity'] is None and report['kept_masks'] == []
    assert 'pruning' not in torch.load(str(tmp_path / 'a.pth'), map_location='cpu')

    bare = str(tmp_path / 'bare.pth')
    torch.save(model.state_dict(), bare)  # a state dict without mmengine's wrapping
    export_backbone(bare, str(tmp_path / 'b.pth'), prefix='backbone')  # '.' is added
    assert all(k.startswith('backbone.') for k in
               torch.load(str(tmp_path / 'b.pth'), map_location='cpu')['state_dict'])


def test_bad_inputs_fail_clearly_and_write_nothing(cls_ckpt, tmp_path):
    src, state, masks = cls_ckpt
    out = str(tmp_path / 'out.pth')
    with pytest.raises(UserError, match=r'checkpoint .*missing\.pth does not exist'):
        export_backbone(str(tmp_path / 'missing.pth'), out)
    with pytest.raises(UserError, match=r"no state_dict entry .* starts with 'neck\.'; its "
                                        r'entries start with backbone\., head\.'):
        export_backbone(src, out, prefix='neck.')
    with pytest.raises(UserError, match='is the input checkpoint'):
        export_backbone(src, src)

    # pruned entries that are not zero: the file contradicts its own masks
    broken = dict(state)
    broken['backbone.layer2.0.conv1.weight'] = torch.ones_like(
        state['backbone.layer2.0.conv1.weight'])
    bad = str(tmp_path / 'bad.pth')
    torch.save(dict(state_dict=broken, pruning=masks.to_dict()), bad)
    n = int((~masks['backbone.layer2.0.conv1.weight']).sum())
    with pytest.raises(UserError, match=rf'^{n} pruned entries of .* are not zero'):
        export_backbone(bad, out)
    assert not osp.exists(out)


def test_cli(cls_ckpt, tmp_path):
    src, _, _ = cls_ckpt
    out = str(tmp_path / 'cli.pth')
    run = subprocess.run([sys.executable, TOOL, src, out], capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert f'wrote {out}' in run.stdout
    assert 'masks:   kept 20 (sparsity 0.' in run.stdout
    assert 'dropped 1: head.fc.weight' in run.stdout
    assert osp.isfile(out)

    run = subprocess.run([sys.executable, TOOL, src, out, '--prefix', 'neck.'],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2
    assert run.stderr.startswith('error: no state_dict entry') and 'Traceback' not in run.stderr
