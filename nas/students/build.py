"""Student models: stock DistilBERT, seeded by slicing a pretrained DistilBERT or BERT checkpoint.

A student is a plain ``DistilBertForQuestionAnswering`` or ``DistilBertForSequenceClassification``
(an exported student loads with ``AutoModel*.from_pretrained``, no custom code). It can have any
layer count, hidden size, head count dividing the hidden size and FFN size
(:class:`nas.params.StudentShape`, where those rules live). Its weights are:

* **layers** mapped from the source by :func:`layer_map` (evenly spaced when fewer, source layers
  ``0..L-1`` then fresh layers when more);
* **hidden channels** the top ``hidden_size`` source channels by :func:`hidden_importance`, the
  same set in the embeddings, in every layer and in the head (the residual stream must agree);
* **attention** whole head blocks of the top heads, or the top rows within them when the head
  size differs (:func:`attention_maps`; q is then scaled by ``sqrt(head_dim / source head_dim)``
  so the copied part of the attention logits keeps the source's scale);
* **FFN neurons** the top ``ffn_dim`` neurons of each layer by :func:`ffn_importance`;
* everything the source lacks (extra layers, heads, channels, neurons, a head of another task)
  keeps DistilBERT's own initialization, which ``post_init`` ran on the fresh model.

A BERT source is renamed to DistilBERT's layout and its segment-0 token-type embedding is folded
into the word embeddings (DistilBERT has no segments), so a same-shape student reproduces BERT
exactly when ``token_type_ids`` are 0; BERT's pooler/classifier are not used (tanh pooler vs
DistilBERT's ReLU pre_classifier). Kept index sets are sorted, so a student with the source's own
shape is an exact copy. Slicing the hidden channels of a LayerNorm is an approximation: the
student normalizes with the mean and variance of the kept channels only, which is close when the
dropped channels are the weak ones. LayerNorm eps is DistilBERT's fixed 1e-12 (BERT's default).

**Ranking by what the source computes.** In a pretrained transformer, weights are small exactly
where a channel's activations are large (on MiniLM the old weight-norm channel score had rank
correlation -0.84 with mean |activation|), so nas ranks by activations measured on calibration
features, training features run once through the source (:mod:`nas.students.calibration`,
``calibration`` of the study config): hidden channels by mean |LayerNorm output|, FFN neurons
by mean |activation| times their ``lin2`` column norm, heads by the mean norm of their output
in the residual stream. Without data (``calibration=None``) the ranking is data-free and says
so (:data:`DATA_FREE_RANKING`): channels by mean |LayerNorm gain| (rank correlation +0.95 with
the activations), FFN neurons by ``||lin1 row|| * ||lin2 column||``, heads by weight norms.

Reading checkpoints and mapping their names lives in :mod:`nas.students.sources`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nas.errors import InvalidConfig
from nas.params import StudentShape
from nas.students.sources import (
    EMB,
    NORMS,
    SourceModel,
    layer_prefix,
    load_source,
)

if TYPE_CHECKING:
    from transformers import DistilBertConfig, PreTrainedModel

    from nas.students.calibration import ActivationStats


TASK_KINDS = ("qa", "classification")


# Slicing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexMap:
    """Which source indices of one axis go to which student indices (both ``(k,)`` int64)."""

    src: torch.Tensor
    dst: torch.Tensor


def top_map(scores: torch.Tensor, size: int) -> IndexMap:
    """The ``size`` best-scored source indices, sorted, to student ``0..size-1``.

    A student axis larger than the source gets every source index in the first slots; the rest
    keeps its initialization.
    """
    k = min(size, scores.numel())
    src = torch.topk(scores, k).indices.sort().values
    return IndexMap(src, torch.arange(k))


def _norms(matrix: torch.Tensor, dim: int) -> torch.Tensor:
    """L2 norms along ``dim`` (faster on CPU than ``Tensor.norm`` for column norms)."""
    return (matrix * matrix).sum(dim=dim).sqrt()


def layer_map(n_source: int, n_student: int) -> tuple[int | None, ...]:
    """Source layer of each student layer; None means freshly initialized.

    Fewer layers: evenly spaced with the first and last kept, ``floor(i * (L - 1) / (n - 1))``
    (6 -> 3 gives 0, 2, 5; 12 -> 6 gives 0, 2, 4, 6, 8, 11); one layer takes layer 0, whose
    input is what the copied embeddings produce. More layers: ``0..L-1`` then None.
    """
    if n_student >= n_source:
        return (*range(n_source), *([None] * (n_student - n_source)))
    if n_student == 1:
        return (0,)
    return tuple(i * (n_source - 1) // (n_student - 1) for i in range(n_student))


DATA_FREE_RANKING = "data-free ranking (LayerNorm gains): pass --data for activation ranking"


def ranking_description(calibration: ActivationStats | None) -> str:
    """How :func:`build_student` ranks channels and neurons with these statistics."""
    return DATA_FREE_RANKING if calibration is None else calibration.describe()


def hidden_importance(
    source: SourceModel, calibration: ActivationStats | None = None
) -> torch.Tensor:
    """Score each hidden (residual-stream) channel of the source, ``(dim,)``.

    With calibration statistics: the channel's mean absolute LayerNorm output (what the
    residual stream carries, :mod:`nas.students.calibration`). Data-free: its mean absolute
    LayerNorm gain over the embeddings LayerNorm and every layer's two, which tracks the
    activations closely in pretrained transformers (rank correlation +0.95 on MiniLM), where
    weight norms do not (they are small exactly where the activations are large).
    """
    if calibration is not None:
        calibration.check_fits(source)
        return calibration.hidden
    t = source.tensors
    gains = [t[EMB + "LayerNorm.weight"].abs()]
    for i in range(source.n_layers):
        gains += [t[f"{layer_prefix(i)}{name}.weight"].abs() for name in NORMS]
    return torch.stack(gains).mean(dim=0)


def attention_maps(
    source: SourceModel,
    layer: int,
    shape: StudentShape,
    calibration: ActivationStats | None = None,
) -> tuple[IndexMap, IndexMap]:
    """Rows of q/k and of v (= out_lin columns) that one student layer takes from the source.

    Heads are ranked by the mean norm of their contribution to the residual stream (calibration
    statistics; on MiniLM this keeps the source's representation better than weight norms or
    random heads), data-free by ``||q_h|| * ||k_h|| + ||v_h|| * ||out_h||`` (Frobenius norms of
    the head's q/k/v row blocks and out_lin column block); the top ``min(student, source)`` heads
    are kept in source order, one per student head. With equal head sizes whole head blocks are
    copied; a smaller student head takes the head's top rows, q/k rows ranked by
    ``||q_j|| * ||k_j||`` and v rows by ``||v_j|| * ||out_j||``; a larger one gets all rows in its
    first slots. Student heads beyond the source's keep their initialization.
    """
    t, p = source.tensors, layer_prefix(layer)
    heads, hd = source.n_heads, source.head_dim

    def row_norms(name: str, dim: int) -> torch.Tensor:  # -> (heads, hd)
        return _norms(t[f"{p}attention.{name}.weight"], dim).reshape(heads, hd)

    q, k, v = (row_norms(name, 1) for name in ("q_lin", "k_lin", "v_lin"))  # (inner, dim)
    out = row_norms("out_lin", 0)  # out_lin (dim, inner): its columns
    qk, vo = q * k, v * out  # (heads, hd) row scores

    def frob(norms: torch.Tensor) -> torch.Tensor:  # (heads, hd) -> (heads,)
        return norms.pow(2).sum(dim=1).sqrt()

    if calibration is not None:
        calibration.check_fits(source)
        head_scores = calibration.heads[layer]  # (heads,)
    else:
        head_scores = frob(q) * frob(k) + frob(v) * frob(out)
    kept = top_map(head_scores, shape.n_heads).src
    maps = []
    for scores in (qk, vo):
        src, dst = [], []
        for slot, head in enumerate(kept.tolist()):
            rows = top_map(scores[head], shape.head_dim)
            src.append(head * hd + rows.src)
            dst.append(slot * shape.head_dim + rows.dst)
        maps.append(IndexMap(torch.cat(src), torch.cat(dst)))
    return maps[0], maps[1]


def ffn_importance(
    source: SourceModel, layer: int, calibration: ActivationStats | None = None
) -> torch.Tensor:
    """Score each FFN neuron of one layer, ``(ffn_dim,)``: what it writes to the residual stream.

    With calibration statistics: mean ``|activation(lin1 x)|`` times ``||lin2 column||``.
    Data-free: ``||lin1 row|| * ||lin2 column||``.
    """
    p = layer_prefix(layer)
    lin2 = _norms(source.tensors[p + "ffn.lin2.weight"], 0)  # (dim, ffn) -> (ffn,)
    if calibration is not None:
        calibration.check_fits(source)
        return calibration.ffn[layer] * lin2
    return _norms(source.tensors[p + "ffn.lin1.weight"], 1) * lin2  # (ffn, dim) -> (ffn,)


def ffn_map(
    source: SourceModel, layer: int, ffn_dim: int, calibration: ActivationStats | None = None
) -> IndexMap:
    """The ``ffn_dim`` best FFN neurons of one layer by :func:`ffn_importance`."""
    return top_map(ffn_importance(source, layer, calibration), ffn_dim)


@dataclass(frozen=True)
class _Copy:
    """Copy ``value[rows.src][:, cols.src] * scale`` to student ``name[rows.dst][:, cols.dst]``."""

    name: str
    value: torch.Tensor
    rows: IndexMap | None = None  # None: the whole axis
    cols: IndexMap | None = None
    scale: float = 1.0


def _layer_plan(
    source: SourceModel,
    shape: StudentShape,
    hidden: IndexMap,
    student: int,
    layer: int,
    calibration: ActivationStats | None,
) -> list[_Copy]:
    t, sp, p = source.tensors, layer_prefix(layer), layer_prefix(student)
    qk, vo = attention_maps(source, layer, shape, calibration)
    ffn = ffn_map(source, layer, shape.ffn_dim, calibration)
    # Keep the copied part's attention logits at the source's scale: 1/sqrt(head_dim) changes.
    q_scale = (shape.head_dim / source.head_dim) ** 0.5
    plan = []
    for name, rows, cols, scale in (
        ("attention.q_lin", qk, hidden, q_scale),
        ("attention.k_lin", qk, hidden, 1.0),
        ("attention.v_lin", vo, hidden, 1.0),
        ("attention.out_lin", hidden, vo, 1.0),
        ("ffn.lin1", ffn, hidden, 1.0),
        ("ffn.lin2", hidden, ffn, 1.0),
    ):
        plan.append(_Copy(p + name + ".weight", t[sp + name + ".weight"], rows, cols, scale))
        plan.append(_Copy(p + name + ".bias", t[sp + name + ".bias"], rows, None, scale))
    for name in NORMS:
        plan += [
            _Copy(p + f"{name}.{kind}", t[sp + f"{name}.{kind}"], hidden)
            for kind in ("weight", "bias")
        ]
    return plan


def _embedding_and_head_plan(
    source: SourceModel, hidden: IndexMap, task_kind: str, num_labels: int
) -> list[_Copy]:
    t = source.tensors
    plan = [
        _Copy(EMB + "word_embeddings.weight", t[EMB + "word_embeddings.weight"], None, hidden),
        _Copy(
            EMB + "position_embeddings.weight", t[EMB + "position_embeddings.weight"], None, hidden
        ),
        _Copy(EMB + "LayerNorm.weight", t[EMB + "LayerNorm.weight"], hidden),
        _Copy(EMB + "LayerNorm.bias", t[EMB + "LayerNorm.bias"], hidden),
    ]
    if task_kind == "qa" and source.has_qa_head:
        plan.append(_Copy("qa_outputs.weight", t["qa_outputs.weight"], None, hidden))  # (2, dim)
        plan.append(_Copy("qa_outputs.bias", t["qa_outputs.bias"]))
    if task_kind == "classification" and source.num_labels == num_labels:
        plan += [
            _Copy("pre_classifier.weight", t["pre_classifier.weight"], hidden, hidden),
            _Copy("pre_classifier.bias", t["pre_classifier.bias"], hidden),
            _Copy("classifier.weight", t["classifier.weight"], None, hidden),  # (labels, dim)
            _Copy("classifier.bias", t["classifier.bias"]),
        ]
    return plan


def _student_index(index_map: IndexMap | None) -> slice | torch.Tensor:
    """Student index of one axis: a slice when it is ``0..k-1`` (fast, no advanced indexing)."""
    if index_map is None:
        return slice(None)
    k = index_map.dst.numel()
    return slice(0, k) if torch.equal(index_map.dst, torch.arange(k)) else index_map.dst


def _source_block(value: torch.Tensor, index_map: IndexMap | None, axis: int) -> torch.Tensor:
    if index_map is None or torch.equal(index_map.src, torch.arange(value.shape[axis])):
        return value
    return value.index_select(axis, index_map.src)


def _apply(model: torch.nn.Module, plan: list[_Copy]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for copy in plan:
            target = params[copy.name]
            block = _source_block(_source_block(copy.value, copy.rows, 0), copy.cols, 1)
            rows, cols = _student_index(copy.rows), _student_index(copy.cols)
            if isinstance(rows, torch.Tensor) and isinstance(cols, torch.Tensor):
                rows, cols = rows[:, None], cols[None, :]
            index = (rows,) if target.dim() == 1 else (rows, cols)
            slot_shape = target[index].shape
            assert block.shape == slot_shape, (
                f"{copy.name}: source block {tuple(block.shape)} != slot {tuple(slot_shape)}"
            )
            target[index] = block * copy.scale if copy.scale != 1.0 else block


def check_task(task_kind: str, num_labels: int) -> None:
    """Raise InvalidConfig unless ``task_kind`` is known and ``num_labels`` fits it."""
    if task_kind not in TASK_KINDS:
        raise InvalidConfig(f"task_kind={task_kind!r} is not one of {TASK_KINDS}")
    if task_kind == "qa" and num_labels != 2:
        raise InvalidConfig(f"num_labels={num_labels} for QA; QA heads have 2 (start, end)")
    if num_labels < 1:
        raise InvalidConfig(f"num_labels={num_labels} must be >= 1; count the label names")


def student_config(
    shape: StudentShape,
    source: SourceModel,
    task_kind: str,
    num_labels: int = 2,
) -> DistilBertConfig:
    """DistilBERT config of a student: the source's vocabulary, positions, pad id and activation.

    Dropouts and ``initializer_range`` are DistilBERT's defaults.

    Raises:
        InvalidConfig: unknown ``task_kind``, or ``num_labels != 2`` for QA.
    """
    from transformers import DistilBertConfig

    check_task(task_kind, num_labels)
    config = DistilBertConfig(
        vocab_size=source.vocab_size,
        max_position_embeddings=source.max_positions,
        n_layers=shape.n_layers,
        n_heads=shape.n_heads,
        dim=shape.hidden_size,
        hidden_dim=shape.ffn_dim,
        activation=source.activation,
        pad_token_id=source.pad_token_id,
    )
    config.num_labels = num_labels
    return config


def build_student(
    params: Mapping[str, Any] | StudentShape,
    source: str | Path | SourceModel,
    task_kind: str,
    num_labels: int = 2,
    *,
    seed: int | None = None,
    calibration: ActivationStats | None = None,
) -> PreTrainedModel:
    """Build a DistilBERT student of the sampled shape, seeded from ``source``, in train mode.

    A fresh ``DistilBertForQuestionAnswering`` (``task_kind="qa"``) or
    ``DistilBertForSequenceClassification(num_labels)`` is initialized by DistilBERT's own
    ``_init_weights`` (``post_init``), then everything the source has is overwritten with the
    sliced source weights (see the module docstring for the rules).

    Args:
        params: trial parameters with n_layers, n_heads, hidden_size, ffn_dim (or a shape).
        source: checkpoint folder / hub name, or a loaded :class:`SourceModel`.
        task_kind: "qa" or "classification".
        num_labels: classification labels; must be 2 for QA.
        seed: seeds the initialization of what is not copied (global RNG untouched); None uses
            the global RNG.
        calibration: the source's activation statistics
        (:func:`nas.students.calibration.calibration_stats`)
            to rank hidden channels and FFN neurons by; None ranks data-free
            (:data:`DATA_FREE_RANKING`; callers should say so).

    Raises:
        InvalidConfig: the shape or task cannot be built.
        CheckpointError: the source cannot be read.
    """
    from transformers import DistilBertForQuestionAnswering, DistilBertForSequenceClassification

    shape = params if isinstance(params, StudentShape) else StudentShape.from_params(params)
    check_task(task_kind, num_labels)  # before the (slow) source load
    src = source if isinstance(source, SourceModel) else load_source(source)
    config = student_config(shape, src, task_kind, num_labels)
    cls = (
        DistilBertForQuestionAnswering
        if task_kind == "qa"
        else DistilBertForSequenceClassification
    )
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = cls(config)  # post_init() runs DistilBERT's _init_weights on every module
    hidden = top_map(hidden_importance(src, calibration), shape.hidden_size)
    plan = _embedding_and_head_plan(src, hidden, task_kind, num_labels)
    for student, layer in enumerate(layer_map(src.n_layers, shape.n_layers)):
        if layer is not None:
            plan += _layer_plan(src, shape, hidden, student, layer, calibration)
    _apply(model, plan)
    return model.train()


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``, embeddings and head included (shared ones once)."""
    return sum(p.numel() for p in model.parameters())
