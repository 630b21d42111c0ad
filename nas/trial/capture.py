"""Per-layer self-attention Q, K, V from stock HF DistilBERT and BERT models, by forward hooks.

MiniLMv2's relation loss needs the queries, keys and values of each layer, which HF models do
not return (and, under the default SDPA attention, transformers 5 returns no attention weights
either). A forward hook on each layer's query/key/value ``nn.Linear`` records its output
``(batch, seq_len, width)``; the model itself is not modified, and the hooks are removed when
the ``with`` block ends. Hidden states need no hooks: ``output_hidden_states=True``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from nas.errors import CheckpointError
from nas.trial.layer_losses import QKV

# module names of the Q, K, V projections, per family: (pattern, names of Q, K, V in order)
_FAMILIES = (
    (
        re.compile(r"(?:^|\.)transformer\.layer\.(\d+)\.attention\.(q_lin|k_lin|v_lin)$"),
        ("q_lin", "k_lin", "v_lin"),
    ),  # DistilBERT
    (
        re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)$"),
        ("query", "key", "value"),
    ),  # BERT (MiniLM checkpoints too)
)


class CapturedQKV:
    """The Q, K, V that the hooks recorded in the model's latest forward pass."""

    def __init__(self, layers: int) -> None:
        self.depth = layers
        self._store: dict[tuple[int, int], torch.Tensor] = {}  # (layer, 0/1/2 for Q/K/V)

    def record(self, layer: int, role: int, output: torch.Tensor) -> None:
        self._store[(layer, role)] = output

    def take(self) -> list[QKV]:
        """Per layer, ``(Q, K, V)`` each ``(batch, seq_len, width)``, then forget them, so that
        a second ``take`` without a new forward pass is an error, not a stale batch."""
        missing = sorted(
            {i for i in range(self.depth) for r in range(3) if (i, r) not in self._store}
        )
        if missing:
            raise RuntimeError(
                f"capture_qkv: no Q/K/V recorded for layers {missing}; run the model's forward "
                f"pass inside the 'with capture_qkv(model)' block before each take()"
            )
        layers = [
            (self._store[(i, 0)], self._store[(i, 1)], self._store[(i, 2)])
            for i in range(self.depth)
        ]
        self._store.clear()
        return layers


@contextmanager
def capture_qkv(model: nn.Module) -> Iterator[CapturedQKV]:
    """Record each self-attention layer's Q, K, V on every forward pass of ``model``.

    Usage::

        pairs = layer_map("uniform", student_layers, teacher_layers)
        with capture_qkv(student) as s_qkv, capture_qkv(teacher) as t_qkv:
            for batch in batches:
                out = student(**batch, output_hidden_states=True)
                with torch.no_grad():
                    teacher(**batch)
                t_layers = t_qkv.take()
                targets = [t_layers[i] for i in pairs]
                loss = relation_loss(s_qkv.take(), targets, 12, batch["attention_mask"])

    Student tensors keep their graph (gradients flow through them); under gradient
    checkpointing the recomputed forward records again, which is harmless.

    Raises:
        CheckpointError: the model has no DistilBERT (``q_lin``/``k_lin``/``v_lin``) or BERT
            (``query``/``key``/``value``) self-attention projections.
    """
    targets = _projections(model)
    captured = CapturedQKV(len(targets))
    handles: list[RemovableHandle] = []
    try:
        for layer, modules in enumerate(targets):
            for role, module in enumerate(modules):
                handles.append(module.register_forward_hook(_hook(captured, layer, role)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


Hook = Callable[[nn.Module, tuple[Any, ...], torch.Tensor], None]


def _hook(captured: CapturedQKV, layer: int, role: int) -> Hook:
    def hook(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        captured.record(layer, role, output)

    return hook


def _projections(model: nn.Module) -> list[tuple[nn.Module, nn.Module, nn.Module]]:
    """Per layer (in order), its Q, K and V ``nn.Linear`` modules."""
    for pattern, roles in _FAMILIES:
        found: dict[int, dict[str, nn.Module]] = {}
        for name, module in model.named_modules():
            match = pattern.search(name)
            if match and isinstance(module, nn.Linear):
                found.setdefault(int(match.group(1)), {})[match.group(2)] = module
        if not found:
            continue
        if sorted(found) != list(range(len(found))) or any(len(m) != 3 for m in found.values()):
            raise CheckpointError(
                f"capture_qkv: {type(model).__name__} has incomplete attention projections "
                f"(layers {sorted(found)}); expected {', '.join(roles)} in every layer"
            )
        q, k, v = roles
        return [(found[i][q], found[i][k], found[i][v]) for i in range(len(found))]
    raise CheckpointError(
        f"capture_qkv: {type(model).__name__} has no DistilBERT (q_lin/k_lin/v_lin) or BERT "
        f"(attention.self.query/key/value) self-attention projections; intermediate attention "
        f"losses need a DistilBERT or BERT teacher and student"
    )
