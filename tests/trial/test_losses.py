"""Loss functions against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from nas.trial.losses import (
    MASKED_LOGIT,
    distill_loss,
    kl_soft_loss,
    mse_soft_loss,
    qa_distill_loss,
)


def test_kl_soft_loss_matches_hand_value() -> None:
    # teacher logits [ln 3, 0] at T=1 -> p = [0.75, 0.25]; student logits [0, 0] -> q = [0.5, 0.5]
    # KL(p||q) = 0.75 ln(1.5) + 0.25 ln(0.5)
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    student = torch.zeros(1, 2)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kl_soft_loss(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_kl_soft_loss_scales_by_temperature_squared() -> None:
    # At T=2 the teacher logits [2 ln 3, 0] soften to the same p = [0.75, 0.25] as above;
    # the KL is unchanged and the loss is multiplied by T^2 = 4.
    teacher = torch.tensor([[2 * math.log(3.0), 0.0]])
    student = torch.zeros(1, 2)
    expected = 4 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert kl_soft_loss(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-6)


def test_kl_is_zero_for_identical_logits_and_averages_rows() -> None:
    logits = torch.randn(4, 5)
    assert kl_soft_loss(logits, logits.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-6)
    teacher = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    student = torch.zeros(2, 2)
    one_row = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kl_soft_loss(student, teacher, 1.0).item() == pytest.approx(one_row / 2, rel=1e-6)


def test_mse_soft_loss_hand_value_and_mask() -> None:
    student = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    assert mse_soft_loss(student, teacher).item() == pytest.approx((1 + 4 + 9 + 0) / 4)
    mask = torch.tensor([[True, True], [False, True]])
    assert mse_soft_loss(student, teacher, mask).item() == pytest.approx((1 + 4 + 0) / 3)


def test_distill_loss_mixes_soft_and_hard_by_alpha() -> None:
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    student = torch.zeros(1, 2)
    labels = torch.tensor([1])
    soft = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    hard = math.log(2.0)  # cross-entropy of a uniform 2-way prediction
    value = distill_loss(student, teacher, labels, alpha=0.25, temperature=1.0).item()
    assert value == pytest.approx(0.25 * soft + 0.75 * hard, rel=1e-6)
    assert distill_loss(student, teacher, labels, 0.0, 1.0).item() == pytest.approx(hard)
    mse = distill_loss(student, teacher, labels, 1.0, 1.0, soft="mse").item()
    assert mse == pytest.approx(math.log(3.0) ** 2 / 2, rel=1e-6)


def test_qa_loss_averages_start_and_end_and_ignores_padding() -> None:
    # One feature of 3 real tokens and 1 pad. Student uniform over the real tokens.
    student = torch.zeros(1, 4, 2)
    student[0, 3] = 50.0  # a large logit on the pad position must not matter
    teacher = torch.zeros(1, 4, 2)
    positions = torch.tensor([[0, 2]])
    mask = torch.tensor([[True, True, True, False]])
    hard_only = qa_distill_loss(student, teacher, positions, mask, alpha=0.0, temperature=1.0)
    assert hard_only.item() == pytest.approx(math.log(3.0), rel=1e-6)
    soft_only = qa_distill_loss(student, teacher, positions, mask, alpha=1.0, temperature=2.0)
    assert soft_only.item() == pytest.approx(0.0, abs=1e-6)
    assert MASKED_LOGIT < -1000


def test_losses_have_gradients() -> None:
    student = torch.randn(3, 4, requires_grad=True)
    loss = distill_loss(student, torch.randn(3, 4), torch.tensor([0, 1, 2]), 0.5, 2.0)
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
