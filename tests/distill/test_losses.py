"""The KD and soft-target CE losses on fixed tensors against hand computation."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from epsd_mm.distill.losses import kd_loss, soft_target_ce

STUDENT = [[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]
TEACHER = [[3.0, 2.0, 1.0], [1.0, 0.0, 0.0]]


def _softmax(row, tau):
    e = [math.exp(v / tau) for v in row]
    return [v / sum(e) for v in e]


def _kd_by_hand(student, teacher, tau):
    total = 0.0
    for s, t in zip(student, teacher):
        p_s, p_t = _softmax(s, tau), _softmax(t, tau)
        total += sum(pt * math.log(pt / ps) for pt, ps in zip(p_t, p_s))
    return tau * tau * total / len(student)


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_kd_loss_value_tau_squared_and_no_teacher_gradient(tau):
    student = torch.tensor(STUDENT, dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor(TEACHER, dtype=torch.float64, requires_grad=True)
    loss = kd_loss(student, teacher, tau)
    assert loss.item() == pytest.approx(_kd_by_hand(STUDENT, TEACHER, tau), rel=1e-12)
    # the tau^2 factor, explicitly: loss / tau^2 is the plain KL at temperature tau
    kl = F.kl_div(F.log_softmax(student / tau, 1), F.softmax(teacher / tau, 1),
                  reduction='batchmean')
    assert (loss / tau**2).item() == pytest.approx(kl.item(), rel=1e-12)
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_kd_loss_zero_for_identical_logits_and_module_weight():
    x = torch.tensor(STUDENT)
    assert kd_loss(x, x.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-7)
    module = MODELS.build(dict(type='KDLoss', tau=4.0, loss_weight=0.5))
    s, t = torch.tensor(STUDENT), torch.tensor(TEACHER)
    assert torch.equal(module(s, t), 0.5 * kd_loss(s, t, 4.0))
    with pytest.raises(ValueError):
        kd_loss(s, t[:1], 4.0)


def test_soft_target_ce_value_onehot_and_no_target_gradient():
    logits = torch.tensor(STUDENT, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], dtype=torch.float64,
                          requires_grad=True)
    by_hand = 0.0
    for row, t in zip(STUDENT, target.tolist()):
        log_z = math.log(sum(math.exp(v) for v in row))
        by_hand += -sum(tc * (v - log_z) for tc, v in zip(t, row))
    loss = soft_target_ce(logits, target)
    assert loss.item() == pytest.approx(by_hand / 2, rel=1e-12)
    loss.backward()
    assert target.grad is None and logits.grad is not None
    # a one-hot target is the ordinary cross-entropy
    labels = torch.tensor([2, 0])
    onehot = F.one_hot(labels, 3).double()
    assert soft_target_ce(logits, onehot).item() == pytest.approx(
        F.cross_entropy(logits, labels).item(), rel=1e-12)
    module = MODELS.build(dict(type='SoftTargetCrossEntropy', loss_weight=2.0))
    assert torch.equal(module(logits, target), 2.0 * soft_target_ce(logits, target))
