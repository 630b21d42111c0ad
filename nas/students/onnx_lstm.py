"""``nn.LSTM`` as ONNX's own ``LSTM`` operator, for :func:`nas.students.onnx.export_onnx`.

torch.export cannot keep a sequence axis dynamic through ``nn.LSTM``: its default decomposition
unrolls the time steps (the sequence length becomes a constant), and the while-loop one that
``torch.onnx.export`` registers for dynamic shapes fails on stacked LSTMs (the graph reshapes to
the export's sequence length; torch 2.13). So, for the export only, each one-layer
unidirectional ``batch_first`` LSTM of a copy of the model calls :func:`lstm`, an opaque custom
op (``nas_onnx::lstm``) that torch.export records as one node, and :func:`onnx_lstm` writes that
node as one ONNX ``LSTM`` (gates reordered from PyTorch's i, f, g, o to ONNX's i, o, f, c).
The model itself is not changed; the copy computes the same values (its op runs ``torch.lstm``).

Imports onnxscript: load it only once the onnx extra is known to be installed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from onnxscript import opset20 as op
from torch import nn


@torch.library.custom_op("nas_onnx::lstm", mutates_args=())
def lstm(
    x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    """One-layer forward LSTM over ``x`` ``(batch, seq, in)`` from zero states: ``(batch, seq,
    hidden)``, as ``nn.LSTM(batch_first=True)`` computes it."""
    zeros = x.new_zeros(1, x.shape[0], w_hh.shape[1])  # (layers, batch, hidden)
    params = [w_ih, w_hh, b_ih, b_hh]
    out, _, _ = torch.lstm(x, (zeros, zeros), params, True, 1, 0.0, False, False, True)
    return out


@lstm.register_fake
def _lstm_shape(
    x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    return x.new_empty(x.shape[0], x.shape[1], w_hh.shape[1])


# ONNX axes inputs: onnxscript makes a constant of a list (its stubs ask for an INT64 tensor)
_AXIS_0: Any = [0]
_AXIS_1: Any = [1]


def _onnx_gates(w: Any, hidden: int) -> Any:
    """PyTorch's gate blocks (i, f, g, o) along axis 0 in ONNX's order (i, o, f, c); constant
    slices of a weight, so the optimizer folds them into the initializer."""
    i, f, g, o = (op.Slice(w, [k * hidden], [(k + 1) * hidden], _AXIS_0) for k in range(4))
    return op.Concat(i, o, f, g, axis=0)


def onnx_lstm(x: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> Any:
    """:func:`lstm` as ONNX: ``LSTM`` over ``x`` transposed to ``(seq, batch, in)``."""
    h = int(w_hh.shape[1])  # static: the weights are the model's
    w = op.Unsqueeze(_onnx_gates(w_ih, h), _AXIS_0)  # (directions, 4 hidden, in)
    r = op.Unsqueeze(_onnx_gates(w_hh, h), _AXIS_0)  # (directions, 4 hidden, hidden)
    b = op.Unsqueeze(op.Concat(_onnx_gates(b_ih, h), _onnx_gates(b_hh, h), axis=0), _AXIS_0)
    y, _, _ = op.LSTM(op.Transpose(x, perm=[1, 0, 2]), w, r, b, hidden_size=h)
    return op.Transpose(op.Squeeze(y, _AXIS_1), perm=[1, 0, 2])  # (seq, 1, batch, h) -> (b, s, h)


TRANSLATIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    torch.ops.nas_onnx.lstm.default: onnx_lstm
}


class _ExportedLSTM(nn.Module):
    """An ``nn.LSTM`` (one layer, one direction, batch_first, biases) calling :func:`lstm`."""

    def __init__(self, module: nn.LSTM) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        m = self.module
        return lstm(x, m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0), None


def supported(module: nn.LSTM) -> bool:
    """Whether :class:`_ExportedLSTM` computes what ``module`` does."""
    return (
        module.num_layers == 1
        and not module.bidirectional
        and module.batch_first
        and module.bias
        and module.proj_size == 0
    )


def with_onnx_lstms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose LSTMs call :func:`lstm` (``model`` itself is untouched).

    Raises:
        ValueError: an LSTM this translation does not cover (more layers, bidirectional, ...).
    """
    view = copy.deepcopy(model)
    for name, module in list(view.named_modules()):
        if not isinstance(module, nn.LSTM):
            continue
        if not supported(module):
            raise ValueError(f"{name} is an nn.LSTM the ONNX translation does not cover")
        parent, _, leaf = name.rpartition(".")
        setattr(view.get_submodule(parent), leaf, _ExportedLSTM(module))
    return view


def has_lstm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.LSTM) for m in model.modules())
