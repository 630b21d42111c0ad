"""The intermediate-layer losses of one trial: the teacher in the loop, the layer map, the
projection, and the weighted sum the training step adds to the logit loss.

Built once per trial, before training (:class:`LayerDistiller`); per step the loop runs the
student with ``output_hidden_states=True`` and the teacher the same way under ``no_grad``
(:meth:`LayerDistiller.teacher_states`), then adds :meth:`LayerDistiller.loss`. The projection
(TinyBERT's ``W_h``) lives here, not in the student: its parameters train with the student's
and are never saved or exported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from nas.errors import InvalidConfig
from nas.layer_plan import TeacherShape
from nas.params import LayerLosses
from nas.trial.capture import CapturedQKV, capture_qkv
from nas.trial.layer_losses import (
    QKV,
    HiddenProjection,
    hidden_cosine_loss,
    hidden_mse_loss,
    layer_map,
    layer_outputs,
    pkd_loss,
    relation_loss,
)


def model_shape(model: nn.Module, where: str) -> TeacherShape:
    """Depth, width and family of a loaded HF model, from its config."""
    config = getattr(model, "config", None)
    raw = {} if config is None else config.to_dict()
    return TeacherShape.from_config(raw, where)


class LayerDistiller:
    """The layer losses of one trial, with its teacher (eval mode, no gradients)."""

    def __init__(
        self, losses: LayerLosses, student: nn.Module, teacher: nn.Module, where: str
    ) -> None:
        t_layers, t_width = model_shape(teacher, where).check_hidden_states("a layer loss")
        s_layers, s_width = model_shape(student, "the student").check_hidden_states("a layer loss")
        if losses.relation_weight > 0:
            for who, width in (("teacher", t_width), ("student", s_width)):
                if width % losses.relation_heads:
                    raise InvalidConfig(
                        f"relation_heads = {losses.relation_heads} does not divide the {who}'s "
                        f"width {width}; choose a count dividing {t_width} and {s_width}"
                    )
        self.losses = losses
        self.pairs = layer_map(losses.layer_map, s_layers, t_layers)  # type: ignore[arg-type]
        self.projection = HiddenProjection(s_width, t_width)  # TinyBERT's single shared W_h
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher_type_ids = "token_type_ids" in _forward_args(teacher)

    def to(self, device: torch.device) -> LayerDistiller:
        self.teacher.to(device)
        self.projection.to(device)
        return self

    @contextlib.contextmanager
    def capturing(self, student: nn.Module) -> Iterator[tuple[CapturedQKV, CapturedQKV] | None]:
        """Q/K/V hooks on both models while the relation loss is on, else nothing."""
        if self.losses.relation_weight <= 0:
            yield None
            return
        with capture_qkv(student) as s_qkv, capture_qkv(self.teacher) as t_qkv:
            yield s_qkv, t_qkv

    @torch.no_grad()
    def teacher_states(
        self, batch: dict[str, torch.Tensor], bf16: bool
    ) -> tuple[torch.Tensor, ...]:
        """The teacher's ``hidden_states`` of ``batch`` (embeddings first), without gradients."""
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if self.teacher_type_ids and "token_type_ids" in batch:
            inputs["token_type_ids"] = batch["token_type_ids"]
        device = batch["input_ids"].device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = self.teacher(**inputs, output_hidden_states=True)
        return tuple(out.hidden_states)

    def loss(
        self,
        student_states: Sequence[torch.Tensor],
        teacher_states: Sequence[torch.Tensor],
        qkv: tuple[CapturedQKV, CapturedQKV] | None,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """The weighted sum of the losses that are on, over the mapped layer pairs."""
        student_layers = list(range(len(self.pairs)))
        s_out = layer_outputs(student_states, student_layers)
        t_out = layer_outputs(teacher_states, self.pairs)
        w = self.losses
        total = torch.zeros((), device=mask.device)
        if w.hidden_weight > 0 or w.pkd_weight > 0:
            projected = self.projection(s_out)
        if w.hidden_weight > 0:
            hidden = hidden_mse_loss if w.hidden_kind == "mse" else hidden_cosine_loss
            total = total + w.hidden_weight * hidden(projected, t_out, mask)
        if w.pkd_weight > 0:
            keep = max(len(self.pairs) - 1, 1)  # PKD leaves the last layer to the logit loss
            total = total + w.pkd_weight * pkd_loss(projected[:keep], t_out[:keep])
        if qkv is not None:
            s_qkv: list[QKV] = qkv[0].take()
            t_all = qkv[1].take()
            targets = [t_all[i] for i in self.pairs]
            total = total + w.relation_weight * relation_loss(
                s_qkv, targets, w.relation_heads, mask
            )
        return total


def _forward_args(model: nn.Module) -> Any:
    import inspect

    return inspect.signature(model.forward).parameters
