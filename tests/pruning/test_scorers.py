import pytest
import torch
from torch.func import functional_call

from epsd_mm.pruning import EPSD, SNIP, ProsPr, compute_masks, prunable_parameters, select_masks
from epsd_mm.pruning.metagrad import meta_gradients
from epsd_mm.pruning.scorers import sd_step_weights, sum_losses
from epsd_mm.utils.errors import UserError

from .helpers import batch, batches, tiny_classifier

ALL = ['random', 'magnitude', 'snip', 'grasp', 'synflow', 'prospr']


def _score(criterion, model):
    return criterion.score(model, prunable_parameters(model), batches(), 0.9, 'global')


def test_snip_is_abs_grad_times_weight_computed_by_hand():
    model = tiny_classifier()
    inputs, samples = batch(0)
    loss = sum_losses(model(inputs, samples, mode='loss'))
    loss.backward()
    expected = {n: (p.grad * p.detach()).abs() for n, p in prunable_parameters(model).items()}
    model.zero_grad(set_to_none=True)
    scores = _score(SNIP(), model)
    assert scores.keys() == expected.keys()
    for n in expected:
        assert torch.equal(scores[n], expected[n]), n


def test_prospr_with_zero_inner_steps_equals_snip():
    model = tiny_classifier()
    snip = _score(SNIP(), model)
    prospr = _score(ProsPr(inner_steps=0), model)
    for n in snip:
        assert torch.equal(snip[n], prospr[n]), n


def _samples_with_idx(seed):
    inputs, samples = batch(seed)
    for i, s in enumerate(samples):
        s.set_metainfo(dict(sample_idx=seed * len(samples) + i))
    return inputs, samples


def _indexed_batches():
    k = 0
    while True:
        yield _samples_with_idx(k)
        k += 1


@pytest.mark.parametrize('sd', [dict(type='CSKD'), dict(type='PSKD')])
def test_epsd_with_sd_weight_zero_equals_prospr_and_differs_otherwise(sd):
    params = lambda m: prunable_parameters(m)  # noqa: E731
    zero = tiny_classifier(sd=dict(sd, loss_weight=0.0))
    e0 = EPSD(inner_steps=2).score(zero, params(zero), _indexed_batches(), 0.9, 'global')
    p0 = ProsPr(inner_steps=2).score(zero, params(zero), _indexed_batches(), 0.9, 'global')
    for n in e0:
        assert torch.allclose(e0[n], p0[n], rtol=1e-5, atol=1e-12), n
    full = tiny_classifier(sd=dict(sd, loss_weight=1.0))
    e1 = EPSD(inner_steps=2).score(full, params(full), _indexed_batches(), 0.9, 'global')
    assert any(not torch.allclose(e1[n], p0[n], rtol=1e-3) for n in e1)


@pytest.mark.parametrize('method', ALL)
def test_every_criterion_leaves_the_model_exactly_as_found(method):
    model = tiny_classifier()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loader = [dict(inputs=list(batch(k)[0].mul(40).add(128).clamp(0, 255).byte()),
                   data_samples=batch(k)[1]) for k in range(4)]
    masks = compute_masks(model, loader, method, 0.9, show_progress=False,
                          min_kept_per_layer=1)
    assert abs(masks.sparsity - 0.9) < 2e-3
    assert model.training and all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    for k, v in state.items():
        assert after[k].dtype == v.dtype and torch.equal(after[k], v), k


def test_first_order_is_an_approximation_of_the_full_meta_gradient():
    model = tiny_classifier()
    full = _score(ProsPr(inner_steps=2), model)
    first = _score(ProsPr(inner_steps=2, first_order=True), model)
    assert all(torch.isfinite(v).all() for v in first.values())
    assert any(not torch.equal(full[n], first[n]) for n in full)


def test_unknown_criterion_lists_valid_names():
    with pytest.raises(UserError, match='unknown pruning criterion .*valid names: epsd, '
                       'epsd_plus, grasp, magnitude, prospr, random, snip, synflow'):
        compute_masks(tiny_classifier(), None, 'snipp', 0.9)


def test_epsd_needs_an_sd_model():
    with pytest.raises(UserError, match='SDImageClassifier'):
        _score(EPSD(inner_steps=1), tiny_classifier())


def test_diverging_inner_steps_name_the_step():
    with pytest.raises(UserError, match='inner step [23]/3|scoring step'):
        _score(ProsPr(inner_steps=3, inner_lr=1e30), tiny_classifier())


# ---------------------------------------------------------------- the meta-gradient loop
class _Scalar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.0, dtype=torch.float64))


def _quadratic(momentum=0.0, first_order=False, steps=2, mode='unrolled'):
    """theta = m * w0 with w0 = 2, inner loss w^2 / 2, outer losses w and 3 w."""
    chunk = [(torch.zeros(1), [None])]
    grads = meta_gradients(_Scalar(), ['w'], [chunk] * steps, chunk,
                           inner_loss=lambda step, p, x, ds: 0.5 * p['w'] ** 2,
                           outer_loss=lambda p, x, ds: dict(a=p['w'], b=3 * p['w']),
                           inner_lr=0.1, momentum=momentum, first_order=first_order, mode=mode)
    return {k: float(v['w']) for k, v in grads.items()}


def test_meta_gradient_of_plain_sgd_momentum_and_first_order_on_a_quadratic():
    # plain SGD: w2 = m * w0 * (1 - lr)^2 -> d/dm = 2 * 0.81
    assert _quadratic() == pytest.approx(dict(a=1.62, b=4.86), abs=1e-12)
    # momentum 0.9: b1 = g1, b2 = 0.9 g1 + g2 -> w2 = m * w0 * ((1 - lr)^2 - lr * 0.9)
    assert _quadratic(momentum=0.9) == pytest.approx(dict(a=1.44, b=4.32), abs=1e-12)
    # first order: the inner gradients are constants, so d w2 / dm = w0
    assert _quadratic(first_order=True) == pytest.approx(dict(a=2.0, b=6.0), abs=1e-12)
    # one step: the momentum buffer is the first gradient, so momentum changes nothing
    assert _quadratic(momentum=0.9, steps=1) == _quadratic(steps=1)
    # the memory-bounded path gives the same plain-SGD values and refuses momentum
    assert _quadratic(mode='bounded') == pytest.approx(dict(a=1.62, b=4.86), abs=1e-12)
    with pytest.raises(UserError, match="inner momentum needs meta_mode='unrolled'"):
        _quadratic(momentum=0.9, mode='bounded')
    with pytest.raises(UserError, match="inner_momentum=0.9 needs meta_mode='unrolled'"):
        ProsPr(inner_momentum=0.9)


def test_sd_step_weights():
    assert sd_step_weights(4, 'linear') == [0.0, 0.25, 0.5, 0.75]
    assert sd_step_weights(3) == [1.0, 1.0, 1.0]
    with pytest.raises(UserError, match="unknown sd_schedule 'cosine'"):
        sd_step_weights(3, 'cosine')


def _repeat(b):
    while True:
        yield b


def test_reusing_one_batch_equals_feeding_the_same_batch_every_step():
    reuse = ProsPr(inner_steps=2, new_data_in_inner=False)
    assert reuse.batches_needed == 1
    model = tiny_classifier()
    params = prunable_parameters(model)
    a = reuse.score(model, params, batches(), 0.9, 'global')
    b = ProsPr(inner_steps=2).score(model, params, _repeat(batch(0)), 0.9, 'global')
    for n in a:
        assert torch.equal(a[n], b[n]), n


def test_iterative_rounds_rescore_the_surviving_network():
    sparsity = 0.9
    model = tiny_classifier()
    rounds = ProsPr(inner_steps=1, rounds=2).score(model, prunable_parameters(model), batches(),
                                                   sparsity, 'global')
    # by hand: score, keep density 0.1 ** 0.5, mask the weights, score again
    model = tiny_classifier()
    params = prunable_parameters(model)
    first = ProsPr(inner_steps=1).score(model, params, batches(), sparsity, 'global')
    keep, _ = select_masks(first, 1 - (1 - sparsity) ** 0.5, min_kept_per_layer=1)
    model = tiny_classifier()
    params = prunable_parameters(model)
    with torch.no_grad():
        for n, p in params.items():
            p.mul_(keep[n])
    second = ProsPr(inner_steps=1).score(model, params, batches(), sparsity, 'global')
    for n in second:
        expected = torch.where(keep[n], second[n], torch.full_like(second[n], -1.0))
        assert torch.equal(rounds[n], expected), n


def test_layer_budget_scores_select_the_erk_masks_of_the_raw_scores():
    model = tiny_classifier()
    params = prunable_parameters(model)
    raw = ProsPr(inner_steps=1).score(model, params, batches(), 0.95, 'global')
    coded = ProsPr(inner_steps=1, layer_budget='erk').score(model, params, batches(), 0.95,
                                                            'global')
    expected, _ = select_masks(raw, 0.95, budget='erk', min_kept_per_layer=1)
    got, _ = select_masks(coded, 0.95)
    for n in expected:
        assert torch.equal(got[n], expected[n]), n
    with pytest.raises(UserError, match="needs scope='global'"):
        ProsPr(layer_budget='erk').score(model, params, batches(), 0.95, 'layer')



def test_synflow_budget_keeps_synflows_layer_counts_and_ranks_inside_by_score():
    """layer_budget='synflow': per tensor exactly as many entries as SynFlow keeps in the same
    initial network at the same sparsity, chosen inside each tensor by the criterion's own
    scores; the model's weights are left as they were (SynFlow runs on a copy)."""
    from epsd_mm.pruning.scorers import SynFlow
    sparsity = 0.9
    model = tiny_classifier()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    params = prunable_parameters(model)
    raw = ProsPr(inner_steps=1).score(model, params, batches(), sparsity, 'global')
    coded = ProsPr(inner_steps=1, layer_budget='synflow').score(model, params, batches(),
                                                                sparsity, 'global')
    for k, v in model.named_parameters():
        assert torch.equal(v, before[k]) and v.dtype == torch.float32, k
    reference = tiny_classifier()
    flow = SynFlow().score(reference, prunable_parameters(reference), batches(), sparsity,
                           'global')
    flow_masks, _ = select_masks(flow, sparsity, min_kept_per_layer=1)
    got, _ = select_masks(coded, sparsity)
    counts = [int(flow_masks[n].sum()) for n in params]
    assert [int(got[n].sum()) for n in params] == counts
    assert any(int(m.sum()) != int(s.sum()) for m, s in
               zip(select_masks(raw, sparsity)[0].values(), flow_masks.values()))
    for n, c in zip(params, counts):  # inside a tensor: the c best raw scores
        top = torch.zeros(raw[n].numel(), dtype=torch.bool)
        top[torch.argsort(raw[n].reshape(-1).double(), descending=True, stable=True)[:c]] = True
        assert torch.equal(got[n].reshape(-1), top), n


def test_explicit_counts_are_kept_exactly_and_checked():
    scores = dict(a=torch.tensor([5.0, 4.0, 3.0, 2.0]), b=torch.tensor([9.0, 8.0, 7.0, 6.0]))
    masks, _ = select_masks(scores, 0.5, counts=[2, 2])
    assert masks['a'].tolist() == [True, True, False, False]
    assert masks['b'].tolist() == [True, True, False, False]
    with pytest.raises(UserError, match='4 in all'):
        select_masks(scores, 0.5, counts=[1, 2])
    with pytest.raises(UserError, match='replace a layer budget'):
        select_masks(scores, 0.5, counts=[2, 2], budget='erk')

def _snip_of(model, key, data):
    """|dL_key/dm| = |g * w| of one term of the model's loss dict at theta_init, normalized."""
    params = prunable_parameters(model)
    loss = model(*data, mode='loss')[key]
    grads = torch.autograd.grad(loss, list(params.values()))
    scores = {n: (g * p.detach()).abs() for (n, p), g in zip(params.items(), grads)}
    total = sum(float(s.sum()) for s in scores.values())
    return {n: s / total for n, s in scores.items()}


def test_term_balanced_scores_normalize_each_term_then_mix():
    model = tiny_classifier(sd=dict(type='CSKD', loss_weight=1.0))
    params = prunable_parameters(model)
    ce = _snip_of(model, 'loss_cls', batch(0))
    sd = _snip_of(model, 'loss_sd_cskd', batch(0))
    got = EPSD(inner_steps=0, sd_balance=0.25).score(model, params, batches(), 0.9, 'global')
    for n in got:
        assert torch.allclose(got[n], 0.75 * ce[n] + 0.25 * sd[n], rtol=1e-5, atol=1e-12), n


def test_linear_sd_schedule_makes_the_first_inner_step_ce_only():
    model = tiny_classifier(sd=dict(type='CSKD', loss_weight=1.0))
    params = prunable_parameters(model)
    got = EPSD(inner_steps=1, sd_schedule='linear', meta_mode='unrolled').score(
        model, params, batches(), 0.9, 'global')
    # by hand: one SGD step on the CE term alone, then the full CS-KD loss
    masks = {n: torch.ones_like(p, requires_grad=True) for n, p in params.items()}
    theta = {n: p.detach() * masks[n] if n in masks else p.detach().clone().requires_grad_()
             for n, p in model.named_parameters()}
    ce = functional_call(model, theta, batch(0), {'mode': 'loss'})['loss_cls']
    grads = torch.autograd.grad(ce, list(theta.values()), create_graph=True, allow_unused=True)
    theta = {n: t if g is None else t - 0.1 * g for (n, t), g in zip(theta.items(), grads)}
    outer = sum_losses(functional_call(model, theta, batch(1), {'mode': 'loss'}))
    expected = torch.autograd.grad(outer, list(masks.values()))
    for (n, e) in zip(masks, expected):
        assert torch.allclose(got[n], e.abs(), rtol=1e-5, atol=1e-12), n


def test_pskd_scoring_alpha_of_one_is_rejected():
    model = tiny_classifier(sd=dict(type='PSKD', score_alpha=1.0))
    with pytest.raises(UserError, match=r"alpha = loss_weight \* score_alpha = 1.0 \* 1.0 = 1, "
                       "so the target is the network's own prediction"):
        _score(EPSD(inner_steps=1), model)


@pytest.mark.parametrize('bad,match', [
    (dict(sd_balance=1.5), 'sd_balance must be None or lie in'),
    (dict(sd_schedule='step'), "unknown sd_schedule 'step'"),
    (dict(rounds=0), 'rounds must be >= 1'),
    (dict(inner_momentum=1.0), r'inner_momentum must lie in \[0, 1\)'),
    (dict(layer_budget='uniform'), "unknown layer_budget 'uniform'"),
])
def test_bad_epsd_options_are_one_clear_error(bad, match):
    with pytest.raises(UserError, match=match):
        EPSD(**bad)


def test_epsd_plus_is_epsd_with_its_documented_settings():
    from epsd_mm.registry import CRITERIA
    plus = CRITERIA.build(dict(type='epsd_plus'))
    assert isinstance(plus, EPSD) and plus.name == 'epsd_plus'
    same = EPSD(layer_budget='erk', rounds=5)
    assert {k: v for k, v in vars(plus).items()} == {k: v for k, v in vars(same).items()}
    # rounds mask the model's weights in place (compute_masks restores them): fresh models
    a = _score(plus, tiny_classifier(sd=dict(type='CSKD', loss_weight=1.0)))
    b = _score(same, tiny_classifier(sd=dict(type='CSKD', loss_weight=1.0)))
    for n in a:
        assert torch.equal(a[n], b[n]), n


def test_epsd_plus_through_compute_masks_leaves_the_model_exactly_as_found():
    # its rounds mask the weights in place; compute_masks must restore them
    model = tiny_classifier(sd=dict(type='CSKD', loss_weight=1.0))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loader = [dict(inputs=list(batch(k)[0].mul(40).add(128).clamp(0, 255).byte()),
                   data_samples=batch(k)[1]) for k in range(4)]
    masks = compute_masks(model, loader, 'epsd_plus', 0.9, show_progress=False,
                          min_kept_per_layer=1)
    assert masks.method == 'epsd_plus' and abs(masks.sparsity - 0.9) < 2e-3
    after = model.state_dict()
    for k, v in state.items():
        assert torch.equal(after[k], v), k
