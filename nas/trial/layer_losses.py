"""Intermediate-layer distillation losses: pure functions of tensors, and the layer maps.

Each loss takes one entry per mapped layer pair (student layer ``i`` paired with teacher layer
``layer_map(...)[i]``) and returns the mean over the pairs, so that a loss weight means the same
for a 2-layer and a 6-layer student (the papers sum over layers, TinyBERT eq. 10; for a fixed
depth that differs by the constant ``L_S``). Teacher tensors are targets: they are detached, so
no gradient reaches the teacher even when it ran with gradients on.

Masks are ``(batch, seq_len)`` with True (or 1, as HF's ``attention_mask``) on real tokens;
padded positions take no part in any loss.

Hidden states come from HF's ``output_hidden_states=True``: a tuple of ``L + 1`` tensors, the
embeddings first, so transformer layer ``i`` (0-based, as the layer maps count) is
``hidden_states[i + 1]`` (:func:`layer_outputs`). Q, K and V come from
:func:`nas.trial.capture.capture_qkv`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import InvalidConfig

# re-exported: the layer-map rule lives in nas.layer_plan; the trial reads it from here
from nas.layer_plan import LAYER_MAPS as LAYER_MAPS
from nas.layer_plan import LayerMap as LayerMap
from nas.layer_plan import layer_map as layer_map
from nas.trial.losses import MASKED_LOGIT

QKV = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # each (batch, seq_len, width)
PROJECTION_INIT_STD = 0.02  # TinyBERT initialises its W_h as BERT's linear layers (std 0.02)


# --- layer maps: nas.layer_plan.layer_map (the rule the search space is checked by, too) --------


def layer_outputs(
    hidden_states: Sequence[torch.Tensor], layers: Sequence[int]
) -> list[torch.Tensor]:
    """The outputs of the given 0-based transformer layers from HF's ``hidden_states`` tuple
    (whose entry 0 is the embeddings)."""
    depth = len(hidden_states) - 1
    bad = [i for i in layers if not 0 <= i < depth]
    if bad:
        raise ValueError(f"layers {bad} out of range for a {depth}-layer model (0 to {depth - 1})")
    return [hidden_states[i + 1] for i in layers]


# --- hidden states -----------------------------------------------------------------------------


class HiddenProjection(nn.Module):
    """TinyBERT's learned ``W_h`` (Jiao et al. 2020, eq. 7): student states ``(..., d_S)`` to
    the teacher's width ``d_T``.

    One matrix shared by every mapped layer when ``layers == 1`` (TinyBERT's single ``W_h``),
    else one per mapped layer. No parameters when the widths are equal (the states pass
    unchanged), so a student identical to its teacher scores 0.

    It lives outside the student: it is not a submodule of the HF model, so the student's
    ``save_pretrained`` and nas's export never see it (it is dropped at export by construction).
    Its parameters must be given to the optimizer next to the student's and moved to its device.
    """

    def __init__(self, student_width: int, teacher_width: int, layers: int = 1) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"HiddenProjection: layers={layers}; use 1 (shared) or more")
        self.student_width, self.teacher_width = student_width, teacher_width
        self.proj = nn.ModuleList(
            nn.Identity()
            if student_width == teacher_width
            else nn.Linear(student_width, teacher_width)
            for _ in range(layers)
        )
        for module in self.proj:
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=PROJECTION_INIT_STD)
                nn.init.zeros_(module.bias)

    def forward(self, states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Each state ``(..., d_S)`` projected to ``(..., d_T)``, one per mapped layer."""
        if len(self.proj) > 1 and len(states) != len(self.proj):
            raise ValueError(
                f"HiddenProjection holds {len(self.proj)} projections but got {len(states)} states"
            )
        if len(self.proj) == 1:
            return [self.proj[0](s) for s in states]
        return [p(s) for p, s in zip(self.proj, states, strict=True)]


def hidden_mse_loss(
    student: Sequence[torch.Tensor],
    teacher: Sequence[torch.Tensor],
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """TinyBERT's hidden-state loss ``MSE(H_S W_h, H_T)`` (Jiao et al. 2020, eq. 7).

    Args:
        student: per mapped layer, ``(batch, seq_len, d_T)`` student states already projected
            (:class:`HiddenProjection`).
        teacher: per mapped layer, ``(batch, seq_len, d_T)`` teacher states.
        mask: ``(batch, seq_len)``; the mean runs over real tokens and the width (TinyBERT's
            code also averages over padding, whose states are arbitrary).
    """
    losses = []
    for s, t in _pairs(student, teacher, "hidden_mse_loss"):
        diff = ((s.float() - t.float()) ** 2).mean(-1)  # (batch, seq_len)
        losses.append(_token_mean(diff, mask))
    return torch.stack(losses).mean()


def hidden_cosine_loss(
    student: Sequence[torch.Tensor],
    teacher: Sequence[torch.Tensor],
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """DistilBERT's cosine embedding loss (Sanh et al. 2019, section 3): ``1 - cos(h_S, h_T)``
    per token, averaged over real tokens (DistilBERT applies it to the last layer only; here
    to every mapped pair).

    Args:
        student: per mapped layer, ``(batch, seq_len, d)`` states (projected if widths differ).
        teacher: per mapped layer, ``(batch, seq_len, d)``.
        mask: ``(batch, seq_len)``, True on real tokens.
    """
    losses = []
    for s, t in _pairs(student, teacher, "hidden_cosine_loss"):
        cos = F.cosine_similarity(s.float(), t.float(), dim=-1)  # (batch, seq_len)
        losses.append(_token_mean(1.0 - cos, mask))
    return torch.stack(losses).mean()


def pkd_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    """Patient KD (Sun et al. 2019, eq. 3): squared error between the L2-normalised [CLS]
    states (position 0) of the mapped layers.

    Eq. 3 sums the squared distance over the width; this averages over it, as the authors'
    released code does (``F.mse_loss``), so their loss weights (beta 100 to 1000) carry over.

    Args:
        student: per mapped layer, ``(batch, seq_len, d)`` states (projected if widths differ).
        teacher: per mapped layer, ``(batch, seq_len, d)``.
    """
    losses = []
    for s, t in _pairs(student, teacher, "pkd_loss"):
        s_cls = F.normalize(s[:, 0].float(), p=2, dim=-1)  # (batch, d)
        t_cls = F.normalize(t[:, 0].float(), p=2, dim=-1)
        losses.append(F.mse_loss(s_cls, t_cls))
    return torch.stack(losses).mean()


# --- self-attention relations ------------------------------------------------------------------


def relation_loss(
    student: Sequence[QKV],
    teacher: Sequence[QKV],
    relation_heads: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """MiniLMv2's self-attention relation distillation (Wang et al. 2021, eqs. 1-4).

    Each of Q, K, V ``(batch, seq_len, width)`` is split into ``relation_heads`` heads of width
    ``d_r = width / relation_heads``; the relation of a head is ``softmax(A A^T / sqrt(d_r))``
    ``(batch, heads, seq_len, seq_len)``; the loss is ``KL(teacher || student)`` of the Q-Q, K-K
    and V-V relations, averaged over relation heads and real query tokens, and summed over the
    three relations as in the paper. Teacher and student may differ in width and attention head
    count: only the relation head count is shared, and it must divide both widths.

    Args:
        student: per mapped layer, the student's ``(Q, K, V)``.
        teacher: per mapped layer, the teacher's ``(Q, K, V)``.
        relation_heads: the number of relation heads (MiniLMv2 uses 12 for base teachers, 16
            for large).
        mask: ``(batch, seq_len)``; padded keys get no probability, padded queries no weight.
    """
    losses = []
    for s_qkv, t_qkv in _pairs(student, teacher, "relation_loss"):
        per_layer = [
            _relation_kl(s, t, relation_heads, mask) for s, t in zip(s_qkv, t_qkv, strict=True)
        ]
        losses.append(torch.stack(per_layer).sum())
    return torch.stack(losses).mean()


def _relation_kl(
    student: torch.Tensor, teacher: torch.Tensor, heads: int, mask: torch.Tensor | None
) -> torch.Tensor:
    if student.shape[:2] != teacher.shape[:2]:
        raise ValueError(
            f"relation_loss: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} "
            f"differ in batch or sequence length; feed both models the same batch"
        )
    log_s = _log_relations(student, heads, mask, "student")
    log_t = _log_relations(teacher.detach(), heads, mask, "teacher")
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # (batch, heads, seq_len)
    query_mask = None if mask is None else mask[:, None, :].expand_as(kl)
    return _token_mean(kl, query_mask)


def _log_relations(
    x: torch.Tensor, heads: int, mask: torch.Tensor | None, who: str
) -> torch.Tensor:
    """``log softmax(A_r A_r^T / sqrt(d_r))`` per relation head: ``(batch, heads, seq, seq)``."""
    batch, seq_len, width = x.shape
    if heads < 1 or width % heads:
        raise InvalidConfig(
            f"relation_heads={heads} does not divide the {who}'s width {width}; use a count "
            f"that divides both the teacher's and the student's widths"
        )
    d_r = width // heads
    a = x.float().view(batch, seq_len, heads, d_r).transpose(1, 2)  # (batch, heads, seq, d_r)
    scores = a @ a.transpose(-1, -2) / math.sqrt(d_r)  # (batch, heads, seq, seq)
    if mask is not None:
        scores = scores.masked_fill(~mask.bool()[:, None, None, :], MASKED_LOGIT)
    return F.log_softmax(scores, dim=-1)


# --- shared ------------------------------------------------------------------------------------


def _pairs(student: Sequence, teacher: Sequence, name: str) -> list[tuple]:
    """Student and detached teacher entries, paired; widths must match (but for Q/K/V)."""
    if len(student) != len(teacher) or not student:
        raise ValueError(
            f"{name}: {len(student)} student and {len(teacher)} teacher layers; pass one "
            f"entry per mapped layer pair (at least one)"
        )
    pairs: list[tuple] = []
    for s, t in zip(student, teacher, strict=True):
        if isinstance(t, torch.Tensor):
            if s.shape != t.shape:
                raise ValueError(
                    f"{name}: student states {tuple(s.shape)} and teacher states "
                    f"{tuple(t.shape)} differ; project the student's states to the teacher's "
                    f"width first (HiddenProjection)"
                )
            t = t.detach()
        pairs.append((s, t))
    return pairs


def _token_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` over the positions where ``mask`` (same shape) is true."""
    if mask is None:
        return values.mean()
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)
