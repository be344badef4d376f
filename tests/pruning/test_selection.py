import pytest
import torch

from epsd_mm.pruning import select_masks
from epsd_mm.pruning.selection import layer_counts, masks_as_scores
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


def _t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_min_kept_floors_first_then_fills_the_budget_globally():
    # the first repro: keeping one in each tensor fits the budget of 3
    scores = {'A': _t(10, 9, *[.5] * 8), 'B': _t(8, *[.1] * 4), 'C': _t(*[.01] * 5)}
    masks, info = select_masks(scores, 0.85, 'global', min_kept_per_layer=1)
    assert masks['A'].tolist() == [True] + [False] * 9
    assert masks['B'].tolist() == [True] + [False] * 4
    assert masks['C'].tolist() == [True] + [False] * 4
    assert info['rescued'] == ['C']


def test_min_kept_never_pushes_another_tensor_below_its_floor():
    # the second repro: B kept only 1 of its 2
    scores = {'A': _t(10, 9, 8.5, *[.5] * 7), 'B': _t(8, 7, 6.5, .1, .1),
              'C': _t(*[.01] * 5)}
    masks, info = select_masks(scores, 0.7, 'global', min_kept_per_layer=2)
    assert masks['A'].tolist() == [True, True] + [False] * 8
    assert masks['B'].tolist() == [True, True, False, False, False]
    assert masks['C'].tolist() == [True, True, False, False, False]
    assert info['rescued'] == ['C']


def test_floors_beyond_the_budget_name_the_reachable_sparsity():
    scores = {n: torch.rand(5) for n in 'ABC'}
    # 15 weights, 14 pruned at 0.9: 1 kept, but the floors need 6 -> at most 1 - 6/15 = 0.6
    with pytest.raises(UserError, match=r'keeps 6 of 15, so the highest reachable sparsity is '
                       r'0\.6000; lower the sparsity or min_kept_per_layer'):
        select_masks(scores, 0.9, 'global', min_kept_per_layer=2)


def test_layer_scope_keeps_at_least_k_per_tensor():
    masks, info = select_masks({'a': torch.arange(50.), 'b': torch.arange(400.)}, 0.99,
                               'layer', min_kept_per_layer=2)
    # a: round(0.5) = 0 -> 2; b: round(4.0) = 4 >= 2
    assert masks['a'].nonzero().flatten().tolist() == [48, 49]
    assert int(masks['b'].sum()) == 4 and info['rescued'] == ['a']


def test_erk_counts_are_proportional_to_the_sum_of_dims_capped_at_the_size():
    # weights 10 and 40: eps = 26 / 50 -> 5.2 and 20.8 -> 5 + 20, the remainder to 20.8
    assert layer_counts([(8, 2), (20, 20)], 26, 'erk') == [5, 21]
    # the small tensor is capped dense (4), the rest goes to the other one
    assert layer_counts([(2, 2), (20, 20)], 100, 'erk') == [4, 96]
    # lower bounds are respected and the counts still add up
    assert layer_counts([(8, 2), (20, 20)], 26, 'erk', lower=[7, 0]) == [7, 19]


def test_fanin_floors_take_their_share_of_the_budget():
    # fan-ins 3 and 6, floors 10 * 0.5 * (3, 6) / 9 = 1.67, 3.33 -> 1, 3
    assert layer_counts([(4, 3, 1, 1), (2, 6)], 10, 'fanin') == [1, 3]
    scores = {'a': torch.zeros(4, 3, 1, 1), 'b': torch.arange(12.).reshape(2, 6)}
    masks, _ = select_masks(scores, 1 - 10 / 24, 'global', budget='fanin')
    # a's floor keeps its first entry (ties by position); the other 9 are b's best
    assert masks['a'].flatten().tolist() == [True] + [False] * 11
    assert masks['b'].flatten().tolist() == [False] * 3 + [True] * 9


def test_erk_budget_ranks_inside_each_tensor():
    scores = {'a': torch.arange(16.).reshape(8, 2) / 100, 'b': torch.arange(400.).reshape(20, 20)}
    masks, _ = select_masks(scores, 1 - 26 / 416, 'global', budget='erk')
    assert masks['a'].flatten().nonzero().flatten().tolist() == [11, 12, 13, 14, 15]
    assert masks['b'].flatten().nonzero().flatten().tolist() == list(range(379, 400))


def test_budget_needs_global_scope_and_a_known_name():
    with pytest.raises(UserError, match="needs scope='global'"):
        select_masks({'a': torch.rand(10)}, 0.5, scope='layer', budget='erk')
    with pytest.raises(UserError, match="unknown layer budget 'rigl'"):
        select_masks({'a': torch.rand(10)}, 0.5, budget='rigl')


def test_masks_as_scores_reproduce_the_masks_under_global_top_k():
    torch.manual_seed(0)
    scores = {'a': torch.rand(6, 3, 3, 3), 'b': torch.rand(10, 6) * 100, 'c': torch.rand(4, 10)}
    masks, _ = select_masks(scores, 0.9, budget='erk', min_kept_per_layer=1)
    again, _ = select_masks(masks_as_scores(masks, scores), 0.9, min_kept_per_layer=1)
    for n in masks:
        assert torch.equal(masks[n], again[n]), n
