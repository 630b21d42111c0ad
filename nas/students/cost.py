"""What a student costs: exact parameter counts, estimated training memory, a per-part breakdown.

Everything here is computed from the shape alone (no model is built), except
:func:`describe_student`, which reads a built model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from nas.errors import InvalidConfig
from nas.family_shapes import BiLSTMShape, CNNShape, FamilyShape
from nas.params import StudentShape
from nas.progress import human_bytes
from nas.students.build import check_task

ATTENTION_KINDS = ("sdpa", "eager")


def embedding_parameters(shape: StudentShape, vocab_size: int, max_positions: int) -> int:
    """Word + position embeddings and their LayerNorm."""
    return (vocab_size + max_positions) * shape.hidden_size + 2 * shape.hidden_size


def layer_parameters(shape: StudentShape) -> tuple[int, int]:
    """(attention, ffn) parameters of one layer, each with the LayerNorm that follows it."""
    d, f = shape.hidden_size, shape.ffn_dim
    attention = 4 * (d * d + d) + 2 * d  # q/k/v/out_lin (dim, dim) + bias, sa_layer_norm
    ffn = (d * f + f) + (f * d + d) + 2 * d  # lin1, lin2, output_layer_norm
    return attention, ffn


def head_parameters(shape: StudentShape, task_kind: str, num_labels: int = 2) -> int:
    """qa_outputs (dim -> 2), or pre_classifier (dim -> dim) + classifier (dim -> labels)."""
    check_task(task_kind, num_labels)
    d = shape.hidden_size
    if task_kind == "qa":
        return 2 * d + 2
    return (d * d + d) + (d * num_labels + num_labels)


def parameter_count(
    shape: StudentShape,
    vocab_size: int,
    max_positions: int,
    task_kind: str,
    num_labels: int = 2,
) -> int:
    """Exact parameter count of the student ``build_student`` makes, embeddings included.

    ``(V + P) d + 2d + L (4(d^2 + d) + 2d + 2 d f + f + d + 2d) + head``, with head ``2d + 2``
    for QA and ``d^2 + d + n d + n`` for classification. distilbert-base-uncased's shape (V=30522,
    P=512, d=768, L=6, f=3072) with a QA head gives 66,364,418.
    """
    attention, ffn = layer_parameters(shape)
    return (
        embedding_parameters(shape, vocab_size, max_positions)
        + shape.n_layers * (attention + ffn)
        + head_parameters(shape, task_kind, num_labels)
    )


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated bytes held during a training step, by kind."""

    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def __add__(self, other: MemoryEstimate) -> MemoryEstimate:
        """Both held at once (a student and the teacher beside it), kind by kind."""
        return MemoryEstimate(
            self.weights + other.weights,
            self.gradients + other.gradients,
            self.optimizer + other.optimizer,
            self.activations + other.activations,
        )

    def as_dict(self) -> dict[str, int]:
        """Bytes per kind plus ``total``."""
        return {**asdict(self), "total": self.total}

    def human(self) -> str:
        """One line, e.g. ``weights 253.2 MiB, gradients ..., total 2.1 GiB``."""
        return ", ".join(f"{key} {human_bytes(value)}" for key, value in self.as_dict().items())


def activation_bytes_per_token(
    shape: StudentShape,
    seq_len: int,
    element_bytes: int,
    attention: str = "sdpa",
    mask_bytes: int = 1,
) -> int:
    """Bytes autograd saves per token in one layer (see :func:`estimate_training_memory`)."""
    if attention not in ATTENTION_KINDS:
        raise InvalidConfig(f"attention={attention!r} is not one of {ATTENTION_KINDS}")
    d, f, h, e = shape.hidden_size, shape.ffn_dim, shape.n_heads, element_bytes
    saved = e * (8 * d + 2 * f)  # input, q, k, v, context, 2 LN inputs, LN out; lin1 out, gelu out
    saved += mask_bytes * d + 2 * 2 * 4  # FFN dropout mask; mean, rstd of 2 LayerNorms (fp32)
    # eager: probabilities, their dropout output, the dropout mask; fused: logsumexp per head
    scores = h * seq_len * (2 * e + mask_bytes) if attention == "eager" else h * 4
    return saved + scores


def estimate_training_memory(
    shape: StudentShape,
    vocab_size: int,
    max_positions: int,
    task_kind: str,
    num_labels: int,
    batch_size: int,
    seq_len: int,
    bytes_per_param: int = 4,
    amp: bool = False,
    *,
    attention: str = "sdpa",
    mask_bytes: int = 1,
) -> MemoryEstimate:
    """Estimate the memory of one AdamW training step of a student. An estimate, not a bound.

    With ``P`` parameters, ``b = bytes_per_param``, ``T = batch_size * seq_len`` tokens,
    activation element size ``e`` (2 under ``amp``, else ``b``) and dropout-mask element size
    ``m = mask_bytes`` (1: CUDA keeps bool masks; CPU keeps float masks, 4):

    * weights ``P b`` (+ ``2P`` under amp: autocast's cached fp16 copies of the weights);
    * gradients ``P b``; optimizer ``2 P b`` (AdamW ``exp_avg`` and ``exp_avg_sq``);
    * activations, the tensors autograd saves for backward:
      ``T (e d + m d + 16)`` for the embeddings (LayerNorm input, dropout mask, LayerNorm
      statistics, token ids), plus per layer and token ``e (8d + 2f) + m d + 16``: layer input,
      q, k, v, attention context, both LayerNorm inputs, the first LayerNorm's output, the FFN
      intermediate before and after GELU, the FFN dropout mask, LayerNorm statistics; plus
      attention per token: ``h S (2e + m)`` with ``attention="eager"`` (probabilities, their
      dropout output and mask: the ``batch * heads * seq^2`` tensors) or ``4h`` with ``"sdpa"``
      (fused CUDA kernels, the transformers default, keep a logsumexp only); plus the head:
      QA ``T (e d + m d + 8)``, classification ``batch (2 e d + m d + 8 n)``.

    On CPU with ``attention="eager"`` and ``mask_bytes=4`` the activation term matches the
    tensors autograd saves to within a few percent (see tests). Not counted: the CUDA context
    and kernels (~0.3-0.5 GiB), allocator caching and fragmentation, transient buffers and
    activation gradients during backward (about one layer's worth), autocast keeping
    LayerNorm/softmax outputs in fp32, and the CPU path of sdpa (which materializes the
    ``seq^2`` scores like eager).
    """
    if batch_size < 1 or seq_len < 1 or bytes_per_param < 1:
        raise InvalidConfig(
            f"batch_size={batch_size}, seq_len={seq_len}, bytes_per_param={bytes_per_param} "
            "must all be >= 1"
        )
    params = parameter_count(shape, vocab_size, max_positions, task_kind, num_labels)
    e = 2 if amp else bytes_per_param
    tokens, d = batch_size * seq_len, shape.hidden_size
    per_layer = activation_bytes_per_token(shape, seq_len, e, attention, mask_bytes)
    m = mask_bytes
    activations = shape.n_layers * tokens * per_layer + tokens * (e * d + m * d + 8 + 8)
    if task_kind == "qa":
        activations += tokens * (e * d + m * d + 8)
    else:
        activations += batch_size * (2 * e * d + m * d + 8 * num_labels)
    return MemoryEstimate(
        weights=params * bytes_per_param + (2 * params if amp else 0),
        gradients=params * bytes_per_param,
        optimizer=2 * params * bytes_per_param,
        activations=activations,
    )


def estimate_family_memory(
    shape: FamilyShape,
    vocab_size: int,
    num_labels: int,
    batch_size: int,
    seq_len: int,
    bytes_per_param: int = 4,
    amp: bool = False,
) -> MemoryEstimate:
    """Estimate one AdamW step of a ``bilstm`` / ``cnn`` / ``bow`` student. An estimate, not a
    bound: weights, gradients and AdamW state from the exact count (frozen embeddings are
    counted as trained, an over-estimate); activations per token of ``T = batch * seq_len``:
    the embedding output ``E``, plus for a BiLSTM each layer and direction's four gates, cell
    and hidden state (``6H``), for a CNN each width's convolution output and its ReLU
    (``2 F``), for bag-of-words nothing more (the mean is per sequence), at ``e`` bytes (2
    under ``amp``).
    """
    from nas.students.families import count_family_parameters

    params = count_family_parameters(shape, vocab_size, num_labels)
    e = 2 if amp else bytes_per_param
    per_token = shape.embedding_dim
    if isinstance(shape, BiLSTMShape):
        per_token += shape.n_layers * 2 * 6 * shape.hidden_size
    elif isinstance(shape, CNNShape):
        per_token += len(shape.filter_widths) * 2 * shape.n_filters
    return MemoryEstimate(
        weights=params * bytes_per_param + (2 * params if amp else 0),
        gradients=params * bytes_per_param,
        optimizer=2 * params * bytes_per_param,
        activations=batch_size * seq_len * per_token * e,
    )


def teacher_in_loop_memory(
    teacher: StudentShape,
    teacher_params: int,
    student_width: int,
    batch_size: int,
    seq_len: int,
    amp: bool = False,
    *,
    relations: bool = True,
    attention: str = "sdpa",
) -> MemoryEstimate:
    """What intermediate-layer losses add to a student's training step: the teacher running
    beside it without gradients (``nas.trial.intermediate``). An estimate, not a bound.

    With ``P_t`` teacher parameters, ``L_t`` layers of width ``d_t`` and ``h_t`` heads,
    ``T = batch_size * seq_len`` tokens and ``e`` = 2 under ``amp`` (the teacher runs in bf16
    on CUDA), else 4:

    * the teacher's weights ``P_t e`` (no gradients, no optimizer state);
    * the tensors kept for the losses until the backward pass: its hidden states
      ``(L_t + 1) T d_t e``, and with ``relations`` (MiniLMv2's loss) the Q, K and V of every
      layer, ``3 L_t T d_t e``; plus one layer's attention scores while it runs,
      ``batch h_t S^2 e`` (``attention="eager"``, and sdpa on CPU), which no_grad frees after
      the layer;
    * TinyBERT's projection ``W_h`` when the widths differ: ``d_s d_t + d_t`` float32
      parameters with gradients and AdamW state (16 bytes each).
    """
    e = 2 if amp else 4
    tokens, d_t = batch_size * seq_len, teacher.hidden_size
    kept = (teacher.n_layers + 1) * tokens * d_t * e
    if relations:
        kept += 3 * teacher.n_layers * tokens * d_t * e
    if attention == "eager":
        kept += batch_size * teacher.n_heads * seq_len * seq_len * e
    projection = 0 if student_width == d_t else student_width * d_t + d_t
    return MemoryEstimate(
        weights=teacher_params * e + 4 * projection,
        gradients=4 * projection,
        optimizer=8 * projection,
        activations=kept,
    )


class StudentPart(NamedTuple):
    """One part of a built student: its name, shape and parameter count."""

    name: str
    shape: tuple[int, ...]
    params: int


def _part_of(name: str) -> str:
    parts = name.split(".")
    if parts[:2] == ["distilbert", "embeddings"]:
        return "embeddings"
    if parts[:2] == ["distilbert", "transformer"]:
        kind = "attention" if parts[4] in ("attention", "sa_layer_norm") else "ffn"
        return f"layer.{parts[3]}.{kind}"
    return "head"


def describe_student(model: Any) -> list[StudentPart]:
    """Parts of a built DistilBERT student with their shapes; their params sum to the total.

    Shapes: ``embeddings`` (vocab, positions, dim); ``layer.i.attention`` (heads, head_dim,
    dim) with its LayerNorm; ``layer.i.ffn`` (dim, ffn_dim) with its LayerNorm; ``head``
    (dim, 2) for QA or (dim, dim, num_labels) for pre_classifier + classifier.
    """
    config = model.config
    d, h = config.dim, config.n_heads
    counts: dict[str, int] = {}
    for name, param in model.named_parameters():
        part = _part_of(name)
        counts[part] = counts.get(part, 0) + param.numel()
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings": (config.vocab_size, config.max_position_embeddings, d)
    }
    for i in range(config.n_layers):
        shapes[f"layer.{i}.attention"] = (h, d // h, d)
        shapes[f"layer.{i}.ffn"] = (d, config.hidden_dim)
    has_classifier = hasattr(model, "classifier")
    shapes["head"] = (d, d, config.num_labels) if has_classifier else (d, 2)
    return [StudentPart(part, shapes.get(part, ()), n) for part, n in counts.items()]


def student_report(model: Any, memory: MemoryEstimate | None = None) -> str:
    """Text for ``nas student``: one line per part, the parameter count, and memory if given."""
    parts = describe_student(model)
    width = max(len(part.name) for part in parts)
    lines = [
        f"{part.name:<{width}}  {'x'.join(map(str, part.shape)):<18} {part.params:>12,}"
        for part in parts
    ]
    lines.append(f"{'total':<{width}}  {'':<18} {sum(p.params for p in parts):>12,}")
    if memory is not None:
        lines.append(f"estimated training memory: {memory.human()}")
    return "\n".join(lines)
