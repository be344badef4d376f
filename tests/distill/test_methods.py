"""CS-KD, PS-KD and DLB loss dicts on a tiny real mmpretrain classifier, against the same values
computed by hand from the model's logits; their state, scoring episodes and functional_call."""
import pytest
import torch
from mmpretrain.registry import MODELS
from torch.func import functional_call

from epsd_mm.distill import DLB, PSKD, SDImageClassifier
from epsd_mm.registry import SD_METHODS, build_checked
from epsd_mm.utils.errors import UserError

from .helpers import (
    NUM_CLASSES,
    build_classifier,
    ce,
    classifier_cfg,
    images,
    kd,
    logits_of,
    samples,
)


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------- model and registry
def test_registry_names_and_typo_lists_valid_names():
    for name, cls in [('CSKD', 'CSKD'), ('cskd', 'CSKD'), ('PSKD', 'PSKD'), ('dlb', 'DLB')]:
        assert type(build_checked(SD_METHODS, name, 'x')).__name__ == cls
    with pytest.raises(UserError, match='unknown self-distillation method .*valid names: '
                                        'CSKD, DLB, PSKD, cskd, dlb, pskd'):
        MODELS.build(classifier_cfg(sd=dict(type='DLBB')))


def test_state_dict_keys_are_a_plain_image_classifiers():
    sd_model = build_classifier(sd=dict(type='PSKD'))
    plain = build_classifier(sd=None)
    assert type(plain).__name__ == 'ImageClassifier'
    assert list(sd_model.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(sd_model.state_dict(), strict=True)
    assert not any('sd' == n.split('.')[0] for n, _ in sd_model.named_modules() if n)


def test_tensor_and_predict_use_the_first_view():
    model = build_classifier(sd=dict(type='DLB')).eval()
    x1, x2 = images(4, 1), images(4, 2)
    ds = samples([0, 1, 2, 0])
    two = model(torch.cat([x1, x2]), ds, mode='predict')
    one = model(x1, samples([0, 1, 2, 0]), mode='predict')
    assert all(torch.equal(a.pred_score, b.pred_score) for a, b in zip(two, one))
    assert torch.equal(model(torch.cat([x1, x2]), ds, mode='tensor'), model(x1))


# ---------------------------------------------------------------------------- CS-KD
def test_cskd_loss_equals_hand_computation_and_weight_zero_is_ce():
    model = build_classifier(sd=dict(type='CSKD', tau=4.0, loss_weight=2.0))
    x = images(6, 0)
    ds = samples([0, 1, 2, 0, 1, 2])
    losses = model(x, ds, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_sd_cskd'}
    student, teacher = logits_of(model, x[:3]), logits_of(model, x[3:])
    labels = torch.tensor([0, 1, 2])
    close(losses['loss_cls'], ce(student, labels))
    close(losses['loss_sd_cskd'], 2.0 * kd(student, teacher, 4.0))
    # the teacher half gets no gradient: only the student half's inputs matter for the grad
    xg = x.clone().requires_grad_(True)
    model(xg, ds, mode='loss')['loss_sd_cskd'].backward()
    assert xg.grad[:3].abs().sum() > 0 and torch.equal(xg.grad[3:], torch.zeros_like(x[3:]))

    with model.sd_disabled():
        disabled = model(x, ds, mode='loss')
    model.sd.loss_weight = 0.0
    assert set(disabled) == {'loss_cls'} and set(model(x, ds, mode='loss')) == {'loss_cls'}
    assert torch.equal(model(x, ds, mode='loss')['loss_cls'], disabled['loss_cls'])
    logits, labels_ = model.task_logits(x, ds)
    assert torch.equal(labels_, labels) and logits.shape == (3, NUM_CLASSES)


def test_cskd_without_pairs_says_which_sampler():
    model = build_classifier(sd=dict(type='CSKD'))
    with pytest.raises(UserError, match='ClassPairBatchSampler'):
        model(images(4, 0), samples([0, 1, 1, 0]), mode='loss')


# ---------------------------------------------------------------------------- PS-KD
def test_pskd_schedule_memory_update_and_round_trip():
    model = build_classifier(sd=dict(type='PSKD', alpha_T=0.8))
    sd = model.sd
    x, ds = images(4, 0), samples([0, 1, 2, 1], start=2)
    with pytest.raises(UserError, match='SelfDistillHook'):
        model(x, ds, mode='loss')
    sd.set_num_samples(6)
    for epoch, alpha in [(0, 0.2), (1, 0.4), (3, 0.8)]:
        sd.set_epoch(epoch, 4)
        assert sd.alpha_t == pytest.approx(alpha)
    labels = torch.tensor([0, 1, 2, 1])
    onehot = torch.nn.functional.one_hot(labels, NUM_CLASSES).float()

    # epoch 0: nothing seen yet, the past prediction is the one-hot label
    sd.set_epoch(0, 4)
    logits0 = logits_of(model, x)
    losses = model(x, ds, mode='loss')
    close(losses['loss_cls'], 0.8 * ce(logits0, labels))
    close(losses['loss_sd_pskd'], 0.2 * ce(logits0, labels))
    assert torch.equal(sd.memory[2:6], logits0.softmax(1))
    assert sd.seen.tolist() == [False, False, True, True, True, True]
    assert torch.equal(sd.memory[:2], torch.zeros(2, NUM_CLASSES))

    # epoch 1: the target mixes in the stored predictions; the parts sum to the soft-target CE
    sd.set_epoch(1, 4)
    saved = PSKD(alpha_T=0.8)
    saved.load_state_dict(sd.state_dict())
    logits1 = logits_of(model, x)
    losses = model(x, ds, mode='loss')
    target = 0.6 * onehot + 0.4 * logits0.softmax(1)
    close(losses['loss_cls'] + losses['loss_sd_pskd'],
          -(target * logits1.log_softmax(1)).sum(1).mean())
    close(losses['loss_sd_pskd'],
          0.4 * -(logits0.softmax(1) * logits1.log_softmax(1)).sum(1).mean())

    # round trip: a restored method continues exactly
    state = saved.state_dict()
    assert state['epoch'] == 1 and state['max_epochs'] == 4
    restored = PSKD(alpha_T=0.8)
    restored.set_num_samples(6)
    restored.load_state_dict(state)
    assert torch.equal(restored.memory, saved.memory) and torch.equal(restored.seen, saved.seen)
    model.sd = restored
    again = model(x, ds, mode='loss')
    assert torch.equal(again['loss_sd_pskd'], losses['loss_sd_pskd'])
    assert torch.equal(restored.memory, sd.memory)

    # weight 0: exactly the CE under sd_disabled(), memory untouched
    model.sd = PSKD(loss_weight=0.0)
    with model.sd_disabled():
        disabled = model(x, ds, mode='loss')
    zero = model(x, ds, mode='loss')
    assert set(zero) == {'loss_cls'} and torch.equal(zero['loss_cls'], disabled['loss_cls'])
    assert model.sd.memory is None


def test_pskd_scoring_uses_primed_predictions_and_restores_state():
    model = build_classifier(sd=dict(type='PSKD', alpha_T=0.8, score_alpha=0.5))
    sd = model.sd
    sd.set_num_samples(8)
    x, ds = images(4, 0), samples([0, 1, 2, 1])
    model(x, ds, mode='loss')
    memory = sd.memory.clone()
    with sd.scoring():
        assert sd.scoring_mode and sd.memory is None
        with torch.no_grad():
            sd.prime(model, x[:2], ds[:2])
        p_init = logits_of(model, x[:2]).softmax(1)
        with torch.no_grad():  # one "inner step" elsewhere: p_prev stays the primed one
            for p in model.parameters():
                p.mul_(0.9)
        logits = logits_of(model, x)
        losses = model(x, ds, mode='loss')
        labels = torch.tensor([0, 1, 2, 1])
        prev = torch.cat([p_init, torch.nn.functional.one_hot(labels[2:], NUM_CLASSES).float()])
        close(losses['loss_sd_pskd'], 0.5 * -(prev * logits.log_softmax(1)).sum(1).mean())
        close(losses['loss_cls'], 0.5 * ce(logits, labels))
        assert sd.memory is None
    assert not sd.scoring_mode and torch.equal(sd.memory, memory)
    with pytest.raises(RuntimeError, match='boom'), sd.scoring():
        raise RuntimeError('boom')
    assert torch.equal(sd.memory, memory) and sd._scratch == {}


# ---------------------------------------------------------------------------- DLB
def _dlb_batch(seed, labels):
    return torch.cat([images(len(labels), seed), images(len(labels), seed + 100)]), \
        samples(labels)


def test_dlb_carries_the_previous_batch():
    model = build_classifier(sd=dict(type='DLB', tau=3.0, loss_weight=0.5))
    (xa, da), (xb, db), (xc, dc) = (_dlb_batch(0, [0, 1, 2]), _dlb_batch(1, [2, 2, 1, 0]),
                                    _dlb_batch(2, [1, 0]))
    la, lb = torch.tensor([0, 1, 2]), torch.tensor([2, 2, 1, 0])
    first = model(xa, da, mode='loss')
    za = logits_of(model, xa[:3])
    close(first['loss_cls'], ce(za, la))
    assert first['loss_sd_dlb'].item() == 0.0
    assert torch.equal(model.sd.carry['inputs'], xa[3:])
    close(model.sd.carry['logits'], za)

    second = model(xb, db, mode='loss')
    zb, za2 = logits_of(model, xb[:4]), logits_of(model, xa[3:])
    close(second['loss_cls'], ce(torch.cat([zb, za2]), torch.cat([lb, la])))
    close(second['loss_sd_dlb'], 0.5 * kd(za2, za, 3.0))
    assert torch.equal(model.sd.carry['inputs'], xb[4:])
    assert torch.equal(model.sd.carry['labels'], lb)

    # state_dict round trip: a restored method gives the same next loss
    state = model.sd.state_dict()
    assert state['carry']['inputs'].device.type == 'cpu'
    twin = DLB(tau=3.0, loss_weight=0.5)
    twin.load_state_dict(state)
    third = model(xc, dc, mode='loss')
    model.sd = twin
    assert torch.equal(model(xc, dc, mode='loss')['loss_sd_dlb'], third['loss_sd_dlb'])

    # weight 0 == sd_disabled: CE on the current first view, carry neither used nor updated
    carry = model.sd.carry
    with model.sd_disabled():
        disabled = model(xa, da, mode='loss')
    model.sd.loss_weight = 0.0
    zero = model(xa, da, mode='loss')
    assert set(zero) == {'loss_cls'} and torch.equal(zero['loss_cls'], disabled['loss_cls'])
    close(zero['loss_cls'], ce(logits_of(model, xa[:3]), la))
    assert model.sd.carry is carry


def test_dlb_needs_two_views():
    model = build_classifier(sd=dict(type='DLB'))
    with pytest.raises(UserError, match='MultiView.*multiview_collate'):
        model(images(3, 0), samples([0, 1, 2]), mode='loss')


def test_dlb_functional_call_reforwards_previous_batch_with_substituted_params():
    model = build_classifier(sd=dict(type='DLB'), seed=0)
    other = build_classifier(sd=dict(type='DLB'), seed=1)
    (xa, da), (xb, db) = _dlb_batch(0, [0, 1, 2]), _dlb_batch(1, [2, 0, 1])
    model(xa, da, mode='loss')
    other.sd.load_state_dict(model.sd.state_dict())
    params = dict(other.named_parameters())
    with model.sd.scoring():  # scoring starts from an empty carry ...
        assert model.sd.carry is None
        model.sd.load_state_dict(other.sd.state_dict())
        substituted = functional_call(model, params, (xb, db), {'mode': 'loss'})
    assert torch.equal(model.sd.carry['inputs'], xa[3:])  # ... and restores the real one
    expected = other(xb, db, mode='loss')
    close(substituted['loss_sd_dlb'], expected['loss_sd_dlb'])
    close(substituted['loss_cls'], expected['loss_cls'])
    own = model(xb, db, mode='loss')
    assert (own['loss_sd_dlb'] - expected['loss_sd_dlb']).abs() > 1e-4


def test_sd_disabled_is_restored_and_is_an_sd_classifier():
    model = build_classifier(sd=dict(type='CSKD'))
    assert isinstance(model, SDImageClassifier)
    with pytest.raises(RuntimeError), model.sd_disabled():
        assert model._sd_off
        raise RuntimeError
    assert not model._sd_off


def _pskd_rank(rank, init_file, out):
    import torch.distributed as torch_dist
    # a forked child must not enter the OpenMP pool its parent already started (it can hang)
    torch.set_num_threads(1)
    torch_dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                                  world_size=2)
    try:
        model = build_classifier(sd=dict(type='PSKD'), seed=0)
        model.sd.set_num_samples(6)
        if rank == 0:  # a scoring episode communicates with no one: rank 1 is not in it
            with model.sd.scoring():
                model(images(2, 9), samples([0, 1]), mode='loss')
        # unequal per-rank batches: 3 samples on rank 0, 2 on rank 1
        n = 3 - rank
        x, ds = images(n, rank), samples([0, 1, 2][:n], start=3 * rank)
        model(x, ds, mode='loss')
        torch.save(dict(memory=model.sd.memory, seen=model.sd.seen,
                        own=logits_of(model, x).softmax(1)), f'{out}/pskd{rank}.pth')
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_pskd_memory_is_identical_on_every_rank(tmp_path):
    import torch.multiprocessing as mp
    mp.start_processes(_pskd_rank, args=(str(tmp_path / 'init'), str(tmp_path)), nprocs=2,
                       start_method='fork')
    r0, r1 = (torch.load(tmp_path / f'pskd{r}.pth') for r in range(2))
    assert torch.equal(r0['memory'], r1['memory']) and torch.equal(r0['seen'], r1['seen'])
    assert r0['seen'].tolist() == [True, True, True, True, True, False]
    assert torch.equal(r0['memory'][:3], r0['own']) and torch.equal(r0['memory'][3:5], r1['own'])
