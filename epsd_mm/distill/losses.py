"""The losses underneath the self-distillation methods, the mmpretrain way: a pure function that
holds the math, and a registered ``nn.Module`` with ``loss_weight`` around it.

Shapes: ``logits`` are ``(N, C)`` (N samples, C classes); the results are scalars.
"""
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS


def kd_loss(student_logits, teacher_logits, tau):
    """Temperature-scaled knowledge-distillation loss.

    ``tau**2 * KL(softmax(teacher / tau) || softmax(student / tau))``, summed over classes and
    averaged over the batch ("batchmean"). The ``tau**2`` factor keeps the gradient scale of the
    soft term independent of the temperature (Hinton et al., 2015), as CS-KD, PS-KD and DLB use
    it. The teacher side is detached here, so no gradient ever reaches it, whoever calls this.

    Args:
        student_logits (Tensor): ``(N, C)`` logits that receive the gradient.
        teacher_logits (Tensor): ``(N, C)`` logits of the teacher signal (detached inside).
        tau (float): the temperature, > 0.

    Returns:
        Tensor: the scalar loss.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f'kd_loss: student logits {tuple(student_logits.shape)} and teacher '
                         f'logits {tuple(teacher_logits.shape)} differ in shape')
    log_p_student = F.log_softmax(student_logits / tau, dim=1)
    # log-space target: exact for teacher probabilities that underflow to 0
    log_p_teacher = F.log_softmax(teacher_logits.detach() / tau, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction='batchmean', log_target=True)
    return kl * (tau * tau)


def soft_target_ce(logits, target_probs):
    """Cross-entropy against soft targets.

    ``mean_n( -sum_c target[n, c] * log_softmax(logits)[n, c] )``.

    With a one-hot target this is the ordinary cross-entropy. The target is a label, so it is
    detached.

    Args:
        logits (Tensor): ``(N, C)`` logits.
        target_probs (Tensor): ``(N, C)`` target distributions (rows sum to 1).

    Returns:
        Tensor: the scalar loss.
    """
    if logits.shape != target_probs.shape:
        raise ValueError(f'soft_target_ce: logits {tuple(logits.shape)} and targets '
                         f'{tuple(target_probs.shape)} differ in shape')
    log_p = F.log_softmax(logits, dim=1)
    return -(target_probs.detach().to(log_p.dtype) * log_p).sum(dim=1).mean()


@MODELS.register_module()
class KDLoss(nn.Module):
    """Temperature-scaled KD loss (see :func:`kd_loss`), teacher detached.

    Args:
        tau (float): the temperature. Defaults to 4.0.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, tau=4.0, loss_weight=1.0):
        super().__init__()
        if float(tau) <= 0:
            raise ValueError(f'KDLoss: tau must be > 0, got {tau}')
        self.tau = float(tau)
        self.loss_weight = float(loss_weight)

    def forward(self, student_logits, teacher_logits):
        """``loss_weight * kd_loss(student_logits, teacher_logits, tau)``; both ``(N, C)``."""
        return self.loss_weight * kd_loss(student_logits, teacher_logits, self.tau)


@MODELS.register_module()
class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy with soft targets (see :func:`soft_target_ce`).

    Args:
        loss_weight (float): multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, logits, target_probs):
        """``loss_weight * soft_target_ce(logits, target_probs)``; both ``(N, C)``."""
        return self.loss_weight * soft_target_ce(logits, target_probs)
