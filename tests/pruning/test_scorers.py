import pytest
import torch

from epsd_mm.pruning import EPSD, SNIP, ProsPr, compute_masks, prunable_parameters
from epsd_mm.pruning.scorers import sum_losses
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
    with pytest.raises(UserError, match='unknown pruning criterion .*valid names: epsd, grasp, '
                       'magnitude, prospr, random, snip, synflow'):
        compute_masks(tiny_classifier(), None, 'snipp', 0.9)


def test_epsd_needs_an_sd_model():
    with pytest.raises(UserError, match='SDImageClassifier'):
        _score(EPSD(inner_steps=1), tiny_classifier())


def test_diverging_inner_steps_name_the_step():
    with pytest.raises(UserError, match='inner step [23]/3|scoring step'):
        _score(ProsPr(inner_steps=3, inner_lr=1e30), tiny_classifier())
