"""Intermediate-layer losses, layer maps and Q/K/V capture, against values worked out by hand."""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel, DistilBertConfig, DistilBertModel

from nas.errors import CheckpointError, InvalidConfig
from nas.trial.capture import capture_qkv
from nas.trial.layer_losses import (
    HiddenProjection,
    hidden_cosine_loss,
    hidden_mse_loss,
    layer_map,
    layer_outputs,
    pkd_loss,
    relation_loss,
)

# KL([0.75, 0.25] || [0.5, 0.5]): a teacher row with logits [ln 3, 0] against a uniform student
KL_3_TO_1 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)


def tiny_distilbert(dim: int = 32, layers: int = 2, heads: int = 2) -> DistilBertModel:
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=50, dim=dim, hidden_dim=64, n_layers=layers, n_heads=heads,
        max_position_embeddings=16,
    )  # fmt: skip
    return DistilBertModel(config)


def tiny_bert(hidden: int = 48, layers: int = 4, heads: int = 4) -> BertModel:
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=50, hidden_size=hidden, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=heads, max_position_embeddings=16,
    )  # fmt: skip
    return BertModel(config)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[2, 7, 9, 4, 3], [2, 5, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return ids, mask


# --- layer maps --------------------------------------------------------------------------------


def test_uniform_map_ends_on_the_last_teacher_layer() -> None:
    assert layer_map("uniform", 4, 12) == [2, 5, 8, 11]
    assert layer_map("uniform", 6, 12) == [1, 3, 5, 7, 9, 11]
    assert layer_map("uniform", 4, 6) == [1, 2, 4, 5]  # ceil(1.5, 3, 4.5, 6) - 1
    assert layer_map("uniform", 4, 2) == [0, 0, 1, 1]  # deeper student: layers repeat
    assert layer_map("uniform", 3, 3) == [0, 1, 2]


def test_last_and_skip_maps_are_pkds() -> None:
    # PKD (12 -> 6): PKD-Last pairs teacher layers 7..11, PKD-Skip 2, 4, .., 10 (1-based) with
    # student layers 1..5; the maps add the last pair
    assert layer_map("last", 6, 12) == [6, 7, 8, 9, 10, 11]
    assert layer_map("skip", 6, 12) == [1, 3, 5, 7, 9, 11]
    assert layer_map("skip", 4, 12, every=2) == [1, 3, 5, 7]
    assert layer_map("skip", 5, 12) == [1, 3, 5, 7, 9]  # every = 12 // 5 = 2


@pytest.mark.parametrize(
    ("kind", "student", "teacher", "every", "words"),
    [
        ("last", 6, 4, None, "'uniform' or a student of at most 4 layers"),
        ("skip", 4, 12, 4, "every between 1 and 3"),
        ("skip", 6, 4, None, "teacher layer 0"),
        ("skip", 2, 4, 0, "every=0"),
        ("uniform", 0, 4, None, "at least 1"),
        ("middle", 2, 4, None, "use one of uniform, last, skip"),
        ("last", 2, 4, 2, "'last' takes no 'every' (got 2)"),
    ],
)
def test_layer_map_rejects_missing_teacher_layers(
    kind: str, student: int, teacher: int, every: int | None, words: str
) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(words)):
        layer_map(kind, student, teacher, every)  # type: ignore[arg-type]


def test_layer_outputs_skip_the_embeddings() -> None:
    states = tuple(torch.full((1, 1, 1), float(i)) for i in range(4))  # embeddings + 3 layers
    assert [float(s) for s in layer_outputs(states, [0, 2])] == [1.0, 3.0]
    with pytest.raises(ValueError, match="out of range for a 3-layer model"):
        layer_outputs(states, [3])


# --- hidden states -----------------------------------------------------------------------------


def test_hidden_mse_hand_value_mask_and_layer_mean() -> None:
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (batch 1, seq 2, width 2)
    teacher = torch.zeros(1, 2, 2)
    assert hidden_mse_loss([student], [teacher]).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    mask = torch.tensor([[1, 0]])
    assert hidden_mse_loss([student], [teacher], mask).item() == pytest.approx((1 + 4) / 2)
    pairs = hidden_mse_loss([student, teacher], [teacher, teacher], mask)
    assert pairs.item() == pytest.approx(2.5 / 2)  # mean over the two layer pairs


def test_projection_is_tinyberts_w_h() -> None:
    projection = HiddenProjection(2, 3)
    linear = projection.proj[0]
    assert isinstance(linear, nn.Linear)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))  # (out, in)
        linear.bias.zero_()
    student = torch.tensor([[[1.0, 2.0]]])  # H_S W_h = [1, 2, 3]
    teacher = torch.tensor([[[1.0, 2.0, 0.0]]])
    assert hidden_mse_loss(projection([student]), [teacher]).item() == pytest.approx(9 / 3)
    with pytest.raises(ValueError, match="project the student's states"):
        hidden_mse_loss([student], [teacher])


def test_projection_shared_per_layer_and_identity() -> None:
    assert len(HiddenProjection(2, 3).proj) == 1
    per_layer = HiddenProjection(2, 3, layers=2)
    assert sum(isinstance(p, nn.Linear) for p in per_layer.proj) == 2
    with torch.no_grad():
        for value, linear in enumerate(per_layer.proj, start=1):
            assert isinstance(linear, nn.Linear)
            linear.weight.zero_()
            linear.bias.fill_(float(value))
    out = per_layer([torch.ones(1, 1, 2), torch.ones(1, 1, 2)])
    assert [o.tolist() for o in out] == [[[[1.0] * 3]], [[[2.0] * 3]]]  # each its own W_h
    with pytest.raises(ValueError, match="holds 2 projections but got 1"):
        per_layer([torch.zeros(1, 1, 2)])
    same = HiddenProjection(4, 4, layers=3)
    assert not list(same.parameters())
    states = [torch.randn(1, 2, 4) for _ in range(3)]
    assert all(a is b for a, b in zip(same(states), states, strict=True))


def test_cosine_loss_over_real_tokens() -> None:
    student = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])
    teacher = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])  # cos 1, 0, -1
    assert hidden_cosine_loss([student], [teacher]).item() == pytest.approx((0 + 1 + 2) / 3)
    mask = torch.tensor([[True, True, False]])
    assert hidden_cosine_loss([student], [teacher], mask).item() == pytest.approx(0.5)


def test_pkd_compares_normalised_cls_states() -> None:
    # [3, 4] / 5 = [0.6, 0.8] against [4, 3] / 5 = [0.8, 0.6]: squared error 0.04 per entry
    student = torch.tensor([[[3.0, 4.0], [9.0, 9.0]], [[1.0, 1.0], [0.0, 5.0]]])
    teacher = torch.tensor([[[4.0, 3.0], [-9.0, 1.0]], [[2.0, 2.0], [7.0, 0.0]]])
    assert pkd_loss([student], [teacher]).item() == pytest.approx((0.04 + 0.0) / 2)
    assert pkd_loss([student * 10], [teacher]).item() == pytest.approx(0.02)  # scale-free


# --- self-attention relations ------------------------------------------------------------------


def teacher_rows(width: int, pad: bool = False) -> torch.Tensor:
    """Token 0 = [a, 0, ...] with a^2 / sqrt(2) = ln 3, token 1 = 0 (and a pad token = token 0),
    so a relation head of width 2 over the first two entries has rows [ln 3, 0] and [0, 0]."""
    a = math.sqrt(math.sqrt(2.0) * math.log(3.0))
    x = torch.zeros(1, 3 if pad else 2, width)
    x[0, 0, 0] = a
    if pad:
        x[0, 2, 0] = a
    return x


def test_relation_loss_hand_value_sums_q_k_v() -> None:
    t = teacher_rows(2)
    student = (torch.zeros(1, 2, 4),) * 3  # another width: relations uniform
    teacher = (t, t, torch.zeros(1, 2, 2))
    # Q-Q and K-K: token 0 KL_3_TO_1, token 1 zero -> KL_3_TO_1 / 2 each; V-V zero
    value = relation_loss([student], [teacher], relation_heads=1)
    assert value.item() == pytest.approx(KL_3_TO_1, rel=1e-5)


def test_relation_heads_scale_by_their_own_width() -> None:
    # teacher width 4 in 2 relation heads of width 2: head 0 holds the rows, head 1 is zero;
    # student width 2 in 2 heads of width 1
    t = teacher_rows(4)
    value = relation_loss([(torch.zeros(1, 2, 2),) * 3], [(t, t, t)], relation_heads=2)
    assert value.item() == pytest.approx(3 * KL_3_TO_1 / 4, rel=1e-5)


def test_relation_loss_masks_padding() -> None:
    t = teacher_rows(2, pad=True)
    s = torch.zeros(1, 3, 2)
    s[0, 2] = 9.0  # the student's pad token, a query and key that must not matter
    mask = torch.tensor([[1, 1, 0]])
    masked = relation_loss([(s, s, s)], [(t, t, t)], 1, mask)
    assert masked.item() == pytest.approx(3 * KL_3_TO_1 / 2, rel=1e-5)
    unmasked = relation_loss([(s, s, s)], [(t, t, t)], 1)
    assert unmasked.item() != pytest.approx(masked.item(), rel=1e-2)


def test_relation_loss_is_zero_for_the_same_qkv_and_checks_heads() -> None:
    qkv = (torch.randn(2, 5, 12), torch.randn(2, 5, 12), torch.randn(2, 5, 12))
    assert relation_loss([qkv], [qkv], 4).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(InvalidConfig, match="relation_heads=5 does not divide the student's"):
        relation_loss([qkv], [qkv], 5)


# --- Q/K/V capture and stock models ------------------------------------------------------------


def test_capture_qkv_distilbert_records_each_projection() -> None:
    model = tiny_distilbert().eval()
    ids, mask = batch()
    with capture_qkv(model) as captured:
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        layers = captured.take()
        with pytest.raises(RuntimeError, match="run the model's forward pass"):
            captured.take()  # no stale batch
    assert len(layers) == 2 and all(x.shape == (2, 5, 32) for qkv in layers for x in qkv)
    attention = model.transformer.layer[1].attention
    expected = [attention.q_lin, attention.k_lin, attention.v_lin]
    for got, linear in zip(layers[1], expected, strict=True):
        torch.testing.assert_close(got, linear(out.hidden_states[1]))
    assert not attention.q_lin._forward_hooks  # removed at exit


def test_capture_qkv_bert() -> None:
    model = tiny_bert().eval()
    ids, mask = batch()
    with capture_qkv(model) as captured:
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    layers = captured.take()
    assert len(layers) == 4
    attention = model.encoder.layer[2].attention.self
    torch.testing.assert_close(layers[2][0], attention.query(out.hidden_states[2]))
    torch.testing.assert_close(layers[2][2], attention.value(out.hidden_states[2]))


def test_capture_qkv_rejects_other_architectures() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="Sequential has no DistilBERT"), capture_qkv(model):
        pass


def all_losses(
    student: nn.Module, teacher: nn.Module, projection: HiddenProjection, heads: int
) -> list[torch.Tensor]:
    ids, mask = batch()
    with capture_qkv(student) as s_qkv, capture_qkv(teacher) as t_qkv:
        s_out = student(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        t_out = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        s_layers, t_layers = s_qkv.take(), t_qkv.take()
    pairs = layer_map("uniform", len(s_layers), len(t_layers))
    s_states = projection(layer_outputs(s_out.hidden_states, range(len(s_layers))))
    t_states = layer_outputs(t_out.hidden_states, pairs)
    return [
        hidden_mse_loss(s_states, t_states, mask),
        hidden_cosine_loss(s_states, t_states, mask),
        pkd_loss(s_states, t_states),
        relation_loss(s_layers, [t_layers[i] for i in pairs], heads, mask),
    ]


def test_gradients_reach_the_student_and_never_the_teacher() -> None:
    # teacher BERT 4 x 48 (4 heads), student DistilBERT 2 x 32 (2 heads); the teacher runs
    # with gradients on, so only the losses' detaching keeps them off it
    student, teacher = tiny_distilbert(), tiny_bert()
    projection = HiddenProjection(32, 48)
    losses = all_losses(student, teacher, projection, heads=8)
    for loss in losses:
        assert loss.item() > 0
    torch.stack(losses).sum().backward()
    for name in (
        "transformer.layer.0.attention.q_lin.weight",
        "embeddings.word_embeddings.weight",
    ):
        grad = student.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    linear = projection.proj[0]
    assert isinstance(linear, nn.Linear) and linear.weight.grad is not None
    assert linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_losses_are_zero_for_a_student_identical_to_its_teacher() -> None:
    teacher = tiny_distilbert(layers=2).eval()
    student = copy.deepcopy(teacher)
    for loss in all_losses(student, teacher, HiddenProjection(32, 32), heads=4):
        assert loss.item() == pytest.approx(0.0, abs=1e-5)
