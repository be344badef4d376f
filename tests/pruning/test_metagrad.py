"""The memory-bounded meta-gradient against the unrolled reference (epsd_mm.pruning.metagrad):
same scores up to float rounding and identical masks, for ProsPr and for EPSD with DLB, CS-KD and
PS-KD; micro-batches exact where they can be (BatchNorm in eval mode) and equal to separate
chunks where BatchNorm's batch statistics apply; the SD state replayed; per-step inner losses
and several outer losses."""
import pytest
import torch

from epsd_mm.pruning import EPSD, ProsPr, prunable_parameters, select_masks
from epsd_mm.pruning.metagrad import meta_gradients
from epsd_mm.pruning.scorers import model_loss

from .helpers import SDS, sd_batch, stream, tiny_classifier


def _model(kind, eval_mode=False):
    model = tiny_classifier(sd=None if kind == 'plain' else SDS[kind])
    return model.train(not eval_mode)


def _scores(kind, eval_mode=False, **crit):
    model = _model(kind, eval_mode)
    cls = ProsPr if kind == 'plain' else EPSD
    return cls(**crit).score(model, prunable_parameters(model), stream(kind), 0.9, 'global')


def _assert_same(a, b, rtol=1e-5):
    """Equal up to float rounding, relative to each tensor's scale, and the same 90 % masks."""
    for n in a:
        scale = float(b[n].abs().max()) or 1.0
        err = float((a[n] - b[n]).abs().max()) / scale
        assert err < rtol, (n, err)
    ma, _ = select_masks(a, 0.9, min_kept_per_layer=1)
    mb, _ = select_masks(b, 0.9, min_kept_per_layer=1)
    assert all(torch.equal(ma[n], mb[n]) for n in ma)


@pytest.mark.parametrize('kind', ['plain', 'dlb', 'cskd', 'pskd'])
def test_bounded_equals_unrolled(kind):
    ref = _scores(kind, inner_steps=3, meta_mode='unrolled')
    bounded = _scores(kind, inner_steps=3, meta_mode='bounded')
    _assert_same(bounded, ref)
    assert all(ref[n].abs().sum() > 0 for n in ref)


@pytest.mark.parametrize('kind', ['plain', 'dlb', 'cskd', 'pskd'])
def test_micro_batches_are_exact_with_batchnorm_in_eval_mode(kind):
    ref = _scores(kind, eval_mode=True, inner_steps=2, meta_mode='unrolled')
    micro = _scores(kind, eval_mode=True, inner_steps=2, meta_mode='bounded', micro_batch=2)
    _assert_same(micro, ref)


def test_micro_batches_in_train_mode_are_separate_batchnorm_batches():
    """Train-mode BatchNorm: micro-batches of 3 differ from whole batches of 6, and equal
    scoring the same samples as separate loader batches of 3 (DDP-without-SyncBN semantics)."""
    whole = _scores('dlb', inner_steps=2)
    micro = _scores('dlb', inner_steps=2, micro_batch=3)
    assert any(float((whole[n] - micro[n]).abs().max()) > 1e-3 * float(whole[n].abs().max())
               for n in whole)

    def halves():
        sd = _model('dlb').sd
        for inputs, samples in stream('dlb'):
            yield from sd.split_batch(inputs, samples, 3)

    model = _model('dlb')
    chunks = EPSD(inner_steps=2, batches_per_step=2).score(
        model, prunable_parameters(model), halves(), 0.9, 'global')
    _assert_same(micro, chunks, rtol=1e-5)


def test_first_order_bounded_equals_first_order_unrolled():
    _assert_same(_scores('dlb', inner_steps=3, first_order=True, meta_mode='bounded'),
                 _scores('dlb', inner_steps=3, first_order=True, meta_mode='unrolled'))


def _direct(model, mode, state=True, inner=None, outer=None, steps=3):
    """meta_gradients on DLB batches as EPSD calls it, with pluggable losses."""
    data = [[sd_batch('dlb', k)] for k in range(steps + 1)]
    sd = model.sd
    inner = inner or (lambda k, p, x, ds: model_loss(model, x, ds, sd=True, params=p))
    outer = outer or (lambda p, x, ds: model_loss(model, x, ds, sd=True, params=p))
    with sd.scoring():
        return meta_gradients(model, prunable_parameters(model), data[:-1], data[-1], inner,
                              outer, inner_lr=0.1, mode=mode,
                              state=(sd._get_state, sd._set_state) if state else None)


def test_recomputed_steps_need_the_dlb_carry_the_forward_pass_saw():
    """Without replaying the SD state, the recomputed steps would see the carry the forward pass
    left last (the outer batch's), and the meta-gradient would be wrong."""
    model = _model('dlb')
    ref = _direct(model, 'unrolled')['loss']
    _assert_same(_direct(model, 'bounded')['loss'], ref)
    wrong = _direct(model, 'bounded', state=False)['loss']
    assert any(float((wrong[n] - ref[n]).abs().max()) > 1e-3 * float(ref[n].abs().max())
               for n in ref)


def test_per_step_inner_losses_and_several_outer_losses():
    """An SD weight phased in over the steps, and the CE and SD terms as two outer losses:
    bounded equals unrolled for each, and the two meta-gradients add up to the total's."""
    model = _model('dlb')
    weights = [0.0, 0.5, 1.0]

    def inner(k, p, x, ds):
        from torch.func import functional_call
        losses = functional_call(model, p, (x, ds), {'mode': 'loss'})
        return losses['loss_cls'] + weights[k] * losses['loss_sd_dlb']

    def outer(p, x, ds):
        from torch.func import functional_call
        return functional_call(model, p, (x, ds), {'mode': 'loss'})

    ref = _direct(model, 'unrolled', inner=inner, outer=outer)
    got = _direct(model, 'bounded', inner=inner, outer=outer)
    assert list(got) == ['loss_cls', 'loss_sd_dlb'] == list(ref)
    for key in got:
        _assert_same(got[key], ref[key])
    total = _direct(model, 'bounded', inner=inner,
                    outer=lambda p, x, ds: sum(outer(p, x, ds).values()))['loss']
    summed = {n: got['loss_cls'][n] + got['loss_sd_dlb'][n] for n in total}
    _assert_same(summed, total, rtol=1e-5)


@pytest.mark.parametrize('bad, message', [
    (dict(meta_mode='checkpoint'), "meta_mode must be 'unrolled' or 'bounded'"),
    (dict(micro_batch=0), 'micro_batch must be a positive'),
])
def test_bad_options_are_user_errors(bad, message):
    from epsd_mm.utils.errors import UserError
    with pytest.raises(UserError, match=message):
        ProsPr(**bad)



def test_parameters_whose_gradients_autograd_shares_stay_exact():
    """For ``x @ (a + b)`` autograd returns one tensor as the gradient of both ``a`` and ``b``;
    the accumulated micro-batch gradients and the adjoints must not share it."""
    from torch import nn
    from torch.func import functional_call

    class Sum(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.a = nn.Parameter(torch.randn(5, 3, generator=g))
            self.b = nn.Parameter(torch.randn(5, 3, generator=g))

        def forward(self, x):
            return torch.tanh(x @ (self.a + self.b))

    model = Sum()
    g = torch.Generator().manual_seed(1)
    data = [[(torch.randn(6, 5, generator=g), list(range(6)))] for _ in range(3)]

    def loss(p, x, ds):
        return nn.functional.cross_entropy(functional_call(model, p, (x, )),
                                           torch.tensor(ds) % 3)

    def run(mode, micro):
        return meta_gradients(model, ['a', 'b'], data[:-1], data[-1],
                              lambda k, p, x, ds: loss(p, x, ds), loss, inner_lr=0.5,
                              mode=mode, micro_batch=micro)['loss']

    ref = run('unrolled', None)
    for micro in (None, 2):
        got = run('bounded', micro)
        for n in ('a', 'b'):
            assert torch.allclose(got[n], ref[n], rtol=1e-5, atol=1e-7), (micro, n)
