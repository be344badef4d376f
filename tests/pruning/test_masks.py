import pytest
import torch

from epsd_mm.pruning import MaskSet, compute_masks
from epsd_mm.utils.errors import UserError

from .helpers import batches, tiny_classifier


def _masks(model, sparsity=0.8, method='random'):
    return compute_masks(model, None, dict(type=method, seed=0), sparsity, show_progress=False)


def _train(model, optimizer, steps=5):
    it = batches()
    for _ in range(steps):
        inputs, samples = next(it)
        loss = sum(v for k, v in model(inputs, samples, mode='loss').items() if 'loss' in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize('opt', ['sgd', 'adamw'])
def test_pruned_entries_stay_exactly_zero_through_optimizer_steps(opt):
    model = tiny_classifier()
    masks = _masks(model)
    masks.apply_(model)
    if opt == 'sgd':
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4,
                                    nesterov=True)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    masks.enforce(model, optimizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _train(model, optimizer)
    assert masks.zero_violations(model) == 0
    params = dict(model.named_parameters())
    for name, m in masks.items():
        # the kept entries did train, so the zeros are not from a frozen model
        assert not torch.equal(params[name][m], before[name][m])
        state = optimizer.state[params[name]]
        for key in ('momentum_buffer', 'exp_avg', 'exp_avg_sq'):  # nothing accumulated
            if key in state:
                assert (state[key][~m] == 0).all(), key
        # +0.0, not -0.0: compact checkpoints store no sign bits for pruned entries
        assert not torch.signbit(params[name][~m]).any()
    masks.release()
    # released: the optimizer runs unhooked again
    _train(model, optimizer, steps=2)
    assert masks.zero_violations(model) > 0


def test_without_enforcement_momentum_would_revive_pruned_entries():
    # the control experiment: the same training without enforce() breaks the invariant
    model = tiny_classifier()
    masks = _masks(model)
    masks.apply_(model)
    _train(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4))
    assert masks.zero_violations(model) > 0


def test_roundtrip_save_load_bit_for_bit(tmp_path):
    model = tiny_classifier()
    masks = _masks(model, 0.9)
    path = tmp_path / 'masks.pth'
    masks.save(str(path))
    loaded = MaskSet.load(str(path))
    assert loaded.equal(masks) and loaded.checksum() == masks.checksum()
    assert loaded.method == 'random' and loaded.target_sparsity == 0.9
    assert abs(loaded.sparsity - 0.9) < 1e-3
    # a checkpoint with the top-level "pruning" key loads the same way
    torch.save({'state_dict': model.state_dict(), 'pruning': masks.to_dict()},
               str(tmp_path / 'ckpt.pth'))
    assert MaskSet.load(str(tmp_path / 'ckpt.pth')).equal(masks)


def test_masks_of_another_model_are_refused_with_the_first_mismatches():
    small, wide = tiny_classifier(width=8), tiny_classifier(width=16)
    masks = _masks(small)
    with pytest.raises(UserError, match=r'do not fit.*backbone\.conv1\.weight: mask 8x3x3x3 but '
                       r'parameter 16x3x3x3'):
        masks.check_fits(wide)


def test_split_for_ignores_absent_modules_but_not_absent_parameters_or_wrong_shapes():
    model = tiny_classifier()
    masks = _masks(model)
    extra = MaskSet(dict(masks.items(), **{'roi_head.fc.weight': torch.ones(2, 2)}))
    applied, ignored = extra.split_for(model)
    assert ignored == ['roi_head.fc.weight'] and applied.names() == masks.names()
    deeper = MaskSet(dict(masks.items(), **{'backbone.layer1.2.conv1.weight': torch.ones(2)}))
    with pytest.raises(UserError, match=r'backbone\.layer1\.2\.conv1\.weight: no such'):
        deeper.split_for(model)
    wrong = MaskSet({'backbone.conv1.weight': torch.ones(1, 1)})
    with pytest.raises(UserError, match='backbone.conv1.weight'):
        wrong.split_for(model)


def test_missing_or_foreign_mask_file(tmp_path):
    with pytest.raises(UserError, match='does not exist'):
        MaskSet.load(str(tmp_path / 'none.pth'))
    torch.save({'state_dict': {}}, str(tmp_path / 'plain.pth'))
    with pytest.raises(UserError, match='holds no masks'):
        MaskSet.load(str(tmp_path / 'plain.pth'))


def test_select_keeps_order_masks_and_metadata():
    masks = MaskSet({'backbone.b.weight': torch.tensor([True, False]),
                     'head.fc.weight': torch.tensor([False, False, True]),
                     'backbone.a.weight': torch.tensor([False, True, True])},
                    method='epsd', target_sparsity=0.5, extra=dict(scope='global'))
    sub = masks.select(lambda n: n.startswith('backbone.'))
    assert sub.names() == ['backbone.b.weight', 'backbone.a.weight']
    assert torch.equal(sub['backbone.a.weight'], torch.tensor([False, True, True]))
    assert (sub.method, sub.target_sparsity, sub.extra) == ('epsd', 0.5, dict(scope='global'))
    assert sub.numel == 5 and sub.kept == 3
    assert len(masks) == 3  # the original is untouched


def test_jaccard_is_kept_by_both_over_kept_by_either():
    a = MaskSet({'x': torch.tensor([True, True, False, False]), 'y': torch.tensor([True])})
    b = MaskSet({'x': torch.tensor([True, False, True, False]), 'y': torch.tensor([True])})
    # both: x[0], y[0] = 2; either: x[0], x[1], x[2], y[0] = 4
    assert a.jaccard(b) == b.jaccard(a) == 0.5
    assert a.jaccard(a) == 1.0
    none = MaskSet({'x': torch.zeros(4, dtype=torch.bool), 'y': torch.zeros(1, dtype=torch.bool)})
    assert none.jaccard(none) == 1.0
