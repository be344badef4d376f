import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_checkpoint

from epsd_mm.analysis.compact import (
    COMPACT_KEY,
    COMPACT_STATE_KEY,
    RESUME_ONLY_KEYS,
    compact_checkpoint,
    compact_stats,
    compact_tensor,
    expand_checkpoint,
    expand_tensor,
    export_compact,
    load_from_epsdc,
    pack_mask,
    restore_compact,
    unpack_mask,
)
from epsd_mm.pruning import MaskSet
from epsd_mm.utils.errors import UserError

from . import MODEL_CFG, bits_equal, make_checkpoint, tiny_model

SHAPES = [(1, ), (7, ), (8, ), (9, ), (1023, ), (4, 3, 3, 3), (2, 5, 1, 7)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def _mask(shape, kind, seed=0):
    if kind == 'all':
        return torch.ones(shape, dtype=torch.bool)
    if kind == 'none':
        return torch.zeros(shape, dtype=torch.bool)
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < 0.3


@pytest.mark.parametrize('kind', ['random', 'all', 'none'])
@pytest.mark.parametrize('shape', SHAPES)
def test_pack_unpack_round_trip(shape, kind):
    mask = _mask(shape, kind)
    bits = pack_mask(mask)
    n = mask.numel()
    assert bits.dtype == torch.uint8 and bits.shape == ((n + 7) // 8, )
    # numpy's packbits layout, big bit order: the first entry is the top bit of byte 0
    assert torch.equal(bits, torch.from_numpy(np.packbits(mask.reshape(-1).numpy())))
    out = unpack_mask(bits, list(shape))
    assert out.dtype == torch.bool and torch.equal(out, mask)


def test_pack_known_bits():
    mask = torch.tensor([1, 0, 0, 0, 0, 0, 0, 1, 1], dtype=torch.bool)
    assert pack_mask(mask).tolist() == [0b10000001, 0b10000000]


@pytest.mark.parametrize('kind', ['random', 'all', 'none'])
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape', SHAPES)
def test_tensor_round_trip_is_bit_exact(shape, dtype, kind):
    mask = _mask(shape, kind, seed=1)
    g = torch.Generator().manual_seed(2)
    # masking by multiplication leaves -0.0 where a negative weight was pruned
    dense = (torch.randn(shape, generator=g).to(dtype)) * mask.to(dtype)
    entry = compact_tensor(dense, mask)
    assert entry['values'].dtype == dtype and entry['values'].dim() == 1
    assert entry['values'].numel() == int(mask.sum())
    assert entry['shape'] == list(shape)
    assert ('neg_zero' in entry) == bool(torch.signbit(dense[~mask]).any())
    restored, restored_mask = expand_tensor(entry)
    assert bits_equal(restored, dense)
    assert torch.equal(restored_mask, mask)


def test_tensor_round_trip_keeps_positive_zeros_positive():
    dense = torch.tensor([0.0, -1.5, 0.0, 2.0, -0.0, 0.0])
    mask = torch.tensor([False, True, False, True, False, False])
    entry = compact_tensor(dense, mask)
    restored, _ = expand_tensor(entry)
    assert torch.signbit(restored).tolist() == [False, True, False, False, True, False]
    assert bits_equal(restored, dense)


def test_nonzero_pruned_entries_are_refused():
    dense = torch.ones(10)
    mask = torch.arange(10) < 5
    with pytest.raises(UserError, match='5 pruned entries of .w. are not zero'):
        compact_tensor(dense, mask, 'w')
    with pytest.raises(UserError, match='shape'):
        compact_tensor(torch.zeros(3, 3), torch.ones(9, dtype=torch.bool), 'w')


def _random_checkpoint(sparsity, dtype=torch.float32, signed_zeros=True, seed=0):
    """A checkpoint of a few conv/linear-sized tensors at exactly ``sparsity``; with
    ``signed_zeros`` the pruned entries are +0.0 or -0.0, as masking by multiplication leaves
    them, else all +0.0."""
    g = torch.Generator().manual_seed(seed)
    shapes = {'conv1.weight': (64, 3, 3, 3), 'conv2.weight': (128, 64, 3, 3),
              'conv3.weight': (256, 128, 3, 3), 'fc.weight': (10, 256), 'fc.bias': (10, )}
    state, masks = {}, {}
    for name, shape in shapes.items():
        w = torch.randn(shape, generator=g).to(dtype)
        if name.endswith('weight'):
            n = w.numel()
            keep = torch.zeros(n, dtype=torch.bool)
            keep[torch.randperm(n, generator=g)[:round(n * (1 - sparsity))]] = True
            masks[name] = keep.reshape(shape)
            w = w * masks[name].to(dtype) if signed_zeros else w.masked_fill(~masks[name], 0)
        state[name] = w
    return dict(meta=dict(epoch=1), state_dict=state,
                pruning=MaskSet(masks, 'random', sparsity).to_dict())


@pytest.mark.parametrize('dtype,signed_zeros', [(torch.float32, True), (torch.float32, False),
                                                (torch.float16, False),
                                                (torch.bfloat16, False)])
def test_compact_size_bound_at_sparsity_09(tmp_path, dtype, signed_zeros):
    s = 0.9
    bound = 1.5 * (1 - s) + 0.02
    checkpoint = _random_checkpoint(s, dtype, signed_zeros)
    compact = compact_checkpoint(checkpoint)
    stats = compact_stats(compact)
    assert stats['sparsity'] == pytest.approx(s, abs=1e-4)
    n, kept = stats['numel'], stats['kept']
    size = torch.tensor([], dtype=dtype).element_size()
    # exactly: the kept values, one mask bit per entry and, when pruned entries hold -0.0,
    # one sign bit per pruned entry (each bit string padded to whole bytes)
    packed = compact[COMPACT_STATE_KEY]['packed'].values()
    mask_bytes = sum((int(np.prod(e['shape'])) + 7) // 8 for e in packed)
    sign_bytes = sum((int(np.prod(e['shape'])) - e['values'].numel() + 7) // 8
                     for e in packed) if signed_zeros else 0
    assert all(('neg_zero' in e) == signed_zeros for e in packed)
    assert stats['compact_bytes'] == kept * size + mask_bytes + sign_bytes
    assert stats['dense_bytes'] == n * size
    assert stats['ratio'] <= bound
    # the whole file, against the dense bytes of every state_dict tensor
    src, dst = tmp_path / 'dense.pth', tmp_path / 'compact.pth'
    torch.save(checkpoint, src)
    export_compact(str(src), str(dst))
    dense_bytes = sum(v.numel() * v.element_size() for v in checkpoint['state_dict'].values())
    assert osp.getsize(dst) / dense_bytes <= bound


@pytest.fixture(scope='module')
def pruned(tmp_path_factory):
    root = tmp_path_factory.mktemp('ckpt')
    path = str(root / 'epoch_1.pth')
    checkpoint, masks = make_checkpoint(path)
    compact_path = str(root / 'compact.pth')
    stats = export_compact(path, compact_path)
    return dict(root=root, path=path, checkpoint=checkpoint, masks=masks,
                compact_path=compact_path, stats=stats)


def test_compact_file_layout(pruned):
    compact = torch.load(pruned['compact_path'], map_location='cpu')  # weights_only: plain
    assert compact[COMPACT_KEY] == 1
    assert 'state_dict' not in compact  # an unaware loader finds no half model
    for key in RESUME_ONLY_KEYS:
        assert key not in compact
    assert 'masks' not in compact['pruning']
    assert compact['pruning']['method'] == 'random'
    assert compact['meta'] == pruned['checkpoint']['meta']
    packed = compact[COMPACT_STATE_KEY]['packed']
    assert list(packed) == pruned['masks'].names()
    assert pruned['stats']['dropped'] == ['optimizer', 'param_schedulers', 'message_hub']
    assert pruned['stats']['ratio'] <= 1.5 * (1 - 0.9) + 0.02
    assert pruned['stats']['dst_bytes'] < 0.15 * pruned['stats']['src_bytes']


def test_restore_equals_original_bit_for_bit(pruned, tmp_path):
    out = str(tmp_path / 'restored.pth')
    restore_compact(pruned['compact_path'], out)
    restored = torch.load(out, map_location='cpu')
    original = pruned['checkpoint']
    assert list(restored) == ['meta', 'state_dict', 'pruning']
    assert restored['meta'] == original['meta']
    sd, osd = restored['state_dict'], original['state_dict']
    assert list(sd) == list(osd)
    for k in osd:
        assert sd[k].dtype == osd[k].dtype, k
        assert torch.equal(sd[k], osd[k]), k
        assert bits_equal(sd[k], osd[k]), k
    assert sd._metadata == osd._metadata
    negative_zeros = sum(int(torch.signbit(osd[n][~m]).sum()) for n, m in pruned['masks'].items())
    assert negative_zeros > 0  # the round trip above really covered -0.0
    masks = MaskSet.from_dict(restored['pruning'])
    assert masks.equal(pruned['masks'])
    assert {k: v for k, v in restored['pruning'].items() if k != 'masks'} == \
        {k: v for k, v in original['pruning'].items() if k != 'masks'}


def test_errors(pruned, tmp_path):
    compact = torch.load(pruned['compact_path'], map_location='cpu')
    with pytest.raises(UserError, match='already a compact checkpoint'):
        compact_checkpoint(compact)
    with pytest.raises(UserError, match='not a compact checkpoint'):
        expand_checkpoint(pruned['checkpoint'])
    with pytest.raises(UserError, match='no "pruning" entry'):
        compact_checkpoint(dict(meta={}, state_dict={'w': torch.zeros(1)}))
    with pytest.raises(UserError, match='version'):
        expand_checkpoint(dict(compact, **{COMPACT_KEY: 99}))
    with pytest.raises(UserError, match='does not exist'):
        export_compact(str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth'))
    assert not osp.exists(tmp_path / 'out.pth')


def _assert_weights_equal(model, checkpoint):
    state = model.state_dict()
    for k, v in checkpoint['state_dict'].items():
        assert bits_equal(state[k], v), k


def test_scheme_loads_into_a_real_model(pruned):
    model = tiny_model(seed=123)  # other weights than the checkpoint's
    assert not torch.equal(model.state_dict()['backbone.conv1.weight'],
                           pruned['checkpoint']['state_dict']['backbone.conv1.weight'])
    loaded = load_checkpoint(model, 'epsdc://' + pruned['compact_path'], map_location='cpu',
                             strict=True)
    _assert_weights_equal(model, pruned['checkpoint'])
    assert MaskSet.from_dict(loaded['pruning']).equal(pruned['masks'])


def test_scheme_through_pretrained_init_cfg(pruned):
    url = 'epsdc://' + pruned['compact_path']
    model = tiny_model(seed=5, init_cfg=dict(type='Pretrained', checkpoint=url))
    _assert_weights_equal(model, pruned['checkpoint'])
    # the transfer case: only the backbone, through the prefix mmdet configs use
    backbone = dict(MODEL_CFG['backbone'],
                    init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=url))
    model = tiny_model(seed=6, backbone=backbone)
    state = model.state_dict()
    for k, v in pruned['checkpoint']['state_dict'].items():
        assert bits_equal(state[k], v) == k.startswith('backbone.'), k


def test_scheme_through_runner_load_from(pruned, tmp_path):
    cfg = Config(dict(
        model=dict(MODEL_CFG), work_dir=str(tmp_path / 'work'), default_scope='mmpretrain',
        load_from='epsdc://' + pruned['compact_path'], log_level='WARNING',
        custom_hooks=[dict(type='PruningHook', criterion='random', sparsity=0.5)]))
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    _assert_weights_equal(runner.model, pruned['checkpoint'])
    # the PruningHook takes its masks from the expanded checkpoint, not from scoring
    hook = next(h for h in runner.hooks if type(h).__name__ == 'PruningHook')
    assert hook.source == 'checkpoint' and hook.masks.equal(pruned['masks'])


def test_scheme_passes_plain_checkpoints_and_reports_missing_files(pruned, tmp_path):
    plain = load_from_epsdc('epsdc://' + pruned['path'], map_location='cpu')
    assert set(plain) == set(pruned['checkpoint'])  # message_hub loads (safe-globals shim)
    with pytest.raises(FileNotFoundError, match='can not be found'):
        load_from_epsdc('epsdc://' + str(tmp_path / 'nothing.pth'))
