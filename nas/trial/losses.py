"""Distillation losses: pure functions of tensors.

``loss = alpha * soft + (1 - alpha) * hard`` where ``soft`` is either the KL divergence between
temperature-softened teacher and student distributions, scaled by ``T**2`` so that its gradients
keep their size as T changes (Hinton et al. 2015, "Distilling the Knowledge in a Neural
Network"), or the mean squared error between raw logits (Tang et al. 2019, "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks"); ``hard`` is the cross-entropy
with the gold labels. ``alpha`` is the weight of the soft (distillation) loss.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

SoftLoss = Literal["kl", "mse"]
# Logit given to padded positions in QA: exp() of it is 0 in fp32 and bf16, and it stays finite.
MASKED_LOGIT = -1.0e4


def kl_soft_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, averaged over rows.

    Args:
        student: ``(rows, classes)`` logits.
        teacher: ``(rows, classes)`` logits.
        temperature: softening temperature ``T > 0``.
    """
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def mse_soft_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error between logits over the unmasked entries (``mask`` True = keep)."""
    diff = (student - teacher) ** 2  # (rows, classes)
    if mask is None:
        return diff.mean()
    weights = mask.to(diff.dtype)
    return (diff * weights).sum() / weights.sum().clamp_min(1.0)


def distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    temperature: float,
    soft: SoftLoss = "kl",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mixed loss for one set of logits (a classifier's, or a QA start or end distribution).

    Args:
        student: ``(batch, classes)`` student logits.
        teacher: ``(batch, classes)`` teacher logits.
        labels: ``(batch,)`` gold class (or token position) indices.
        alpha: weight of the soft loss in [0, 1]; ``1 - alpha`` weighs the cross-entropy.
        temperature: softening temperature of the KL term (unused by MSE).
        soft: "kl" or "mse".
        mask: ``(batch, classes)`` True where a class is real; padded positions are excluded.
    """
    if mask is not None:
        student = student.masked_fill(~mask, MASKED_LOGIT)
        teacher = teacher.masked_fill(~mask, MASKED_LOGIT)
    hard = F.cross_entropy(student, labels)
    if alpha == 0.0:
        return hard
    if soft == "kl":
        soft_value = kl_soft_loss(student, teacher, temperature)
    else:
        soft_value = mse_soft_loss(student, teacher, mask)
    return alpha * soft_value + (1.0 - alpha) * hard


def mixed_distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    temperature: float,
    soft: SoftLoss = "kl",
) -> torch.Tensor:
    """:func:`distill_loss` for a batch mixing labelled rows and transfer rows (label < 0,
    ``nas.trial.augment.UNLABELLED``): a labelled row weighs ``alpha * soft + (1 - alpha) *
    hard``, a transfer row its soft loss alone (it has no label; at ``alpha`` 0 too). The mean
    over the rows; a batch without transfer rows gives :func:`distill_loss`'s value.

    Args:
        student: ``(batch, classes)`` student logits.
        teacher: ``(batch, classes)`` teacher logits.
        labels: ``(batch,)`` gold classes, negative on transfer rows.
    """
    labelled = labels >= 0  # (batch,)
    if soft == "kl":
        log_p_student = F.log_softmax(student / temperature, dim=-1)
        log_p_teacher = F.log_softmax(teacher / temperature, dim=-1)
        kl = F.kl_div(log_p_student, log_p_teacher, reduction="none", log_target=True)
        per_row = kl.sum(-1) * temperature**2  # (batch,)
    else:
        per_row = ((student - teacher) ** 2).mean(-1)
    hard = F.cross_entropy(student[labelled], labels[labelled], reduction="sum")
    weights = torch.where(labelled, alpha, 1.0).to(per_row.dtype)
    return ((weights * per_row).sum() + (1.0 - alpha) * hard) / len(labels)


def qa_distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    positions: torch.Tensor,
    mask: torch.Tensor,
    alpha: float,
    temperature: float,
    soft: SoftLoss = "kl",
) -> torch.Tensor:
    """Mean of the start and end losses of extractive QA.

    Args:
        student: ``(batch, seq_len, 2)`` start/end logits of the student.
        teacher: ``(batch, seq_len, 2)`` start/end logits of the teacher.
        positions: ``(batch, 2)`` gold start/end token indices (0, the CLS token, for no answer).
        mask: ``(batch, seq_len)`` True on real tokens, False on padding.
    """
    losses = [
        distill_loss(
            student[..., i], teacher[..., i], positions[:, i], alpha, temperature, soft, mask
        )
        for i in (0, 1)
    ]
    return (losses[0] + losses[1]) / 2
