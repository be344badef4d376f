import pytest
import torch

from epsd_mm.pruning import select_masks
from epsd_mm.utils.errors import UserError


def test_global_keeps_exact_count_and_breaks_ties_by_position():
    scores = {'a': torch.tensor([3., 1., 1., 1.]), 'b': torch.tensor([1., 5., 0., 1.])}
    masks, _ = select_masks(scores, 0.5, 'global')
    # 4 of 8 kept: 5, 3, then the first two of the five tied 1s in model order (a[1], a[2])
    assert masks['a'].tolist() == [True, True, True, False]
    assert masks['b'].tolist() == [False, True, False, False]


def test_global_count_is_round_of_sparsity_times_total():
    torch.manual_seed(0)
    scores = {'a': torch.rand(7, 3) + 0.9, 'b': torch.rand(101)}
    masks, _ = select_masks(scores, 0.55, 'global')
    total = 21 + 101
    assert sum(int(m.sum()) for m in masks.values()) == total - round(0.55 * total)


def test_layer_scope_prunes_each_tensor_alike():
    torch.manual_seed(0)
    scores = {'a': torch.rand(50), 'b': torch.rand(200) * 100}
    masks, _ = select_masks(scores, 0.8, 'layer')
    assert int(masks['a'].sum()) == 10 and int(masks['b'].sum()) == 40
    # within a tensor the best scores are the kept ones
    assert scores['a'][masks['a']].min() > scores['a'][~masks['a']].max()


def test_collapse_is_an_error_naming_the_layer():
    scores = {'conv.weight': torch.zeros(4), 'fc.weight': torch.ones(100)}
    with pytest.raises(UserError, match='conv.weight'):
        select_masks(scores, 0.5, 'global')


def test_min_kept_rescues_and_keeps_the_budget():
    scores = {'conv.weight': torch.zeros(4), 'fc.weight': torch.arange(1., 101.)}
    masks, info = select_masks(scores, 0.5, 'global', min_kept_per_layer=2)
    assert info['rescued'] == ['conv.weight']
    assert int(masks['conv.weight'].sum()) == 2
    assert int(masks['conv.weight'].sum() + masks['fc.weight'].sum()) == 52
    # fc gave up its two lowest kept entries (scores 49 and 50), not its best
    assert masks['fc.weight'][50:].all() and not masks['fc.weight'][:50].any()


@pytest.mark.parametrize('bad', [0, 1, 1.5, -0.1, 'x'])
def test_sparsity_outside_unit_interval_is_rejected(bad):
    with pytest.raises(UserError, match='between 0 and 1|number'):
        select_masks({'a': torch.rand(10)}, bad)


def test_non_finite_scores_are_rejected_with_the_layer_name():
    with pytest.raises(UserError, match='b.*NaN'):
        select_masks({'a': torch.rand(10), 'b': torch.tensor([1., float('nan')])}, 0.5)


def test_unknown_scope():
    with pytest.raises(UserError, match="'global', 'layer'"):
        select_masks({'a': torch.rand(10)}, 0.5, scope='row')
