"""Small non-transformer students: ``bilstm`` (Tang et al. 2019), ``cnn`` (Kim 2014), ``bow``.

Each is a ``torch.nn.Module`` mapping the teacher's WordPiece ids, ``(input_ids,
attention_mask)`` both ``(batch, seq_len)`` and right-padded as nas collates them, to logits
``(batch, num_labels)``. Each has a frozen shape dataclass; :func:`build_family` builds any of
them and :func:`count_family_parameters` gives the exact count from the shape alone.

**Embeddings** start from a source's word embeddings (``(vocab, d)``, e.g. the teacher's) reduced
to the family's width ``E`` by PCA fitted on that matrix: the matrix is centred and projected on
its top ``E`` right singular vectors (``torch.linalg.svd``), the linear projection that keeps
the most variance; equal widths copy the matrix. Without a source they are random (PyTorch's
``N(0, 1)``). They may be frozen; frozen embeddings are still counted by every count here and
by the cost objective, because they ship with the model.

**Padding never changes the logits**: pooling reads only non-padding positions, the backward
LSTM runs over each sequence reversed within its own length, and the CNN uses wide convolutions
over zeroed padding with the windows that see only padding masked out.

Weights are saved as safetensors beside ``nas_family.json`` (family, shape, vocabulary size,
labels); :func:`load_family` rebuilds the module from those alone, no pickle.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from nas.errors import CheckpointError, InvalidConfig
from nas.family_shapes import (
    FAMILY_FILE,
    BiLSTMShape,
    BowShape,
    CNNShape,
    FamilyShape,
    check_positive,
    family_shape,
)

CONFIG_FILE = FAMILY_FILE
WEIGHTS_FILE = "model.safetensors"


# Masked pooling ----------------------------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``(batch, seq, d)`` over positions where ``mask`` ``(batch, seq)`` is 1."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of ``x`` ``(batch, seq, d)`` over positions where ``mask`` ``(batch, seq)`` is 1."""
    return x.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(x.dtype).min).amax(dim=1)


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x`` ``(batch, seq, d)`` within its first ``lengths[b]``
    positions, leaving the padding after it in place (applying it twice is the identity)."""
    seq = x.shape[1]
    t = torch.arange(seq, device=x.device).unsqueeze(0)  # (1, seq)
    n = lengths.unsqueeze(1)  # (batch, 1)
    index = torch.where(t < n, n - 1 - t, t)  # (batch, seq)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


# Models ------------------------------------------------------------------------------------


class FamilyModel(nn.Module):
    """What every family shares: its shape, vocabulary, labels and the token embedding."""

    def __init__(self, shape: FamilyShape, vocab_size: int, num_labels: int) -> None:
        super().__init__()
        check_positive(shape.family, vocab_size=vocab_size, num_labels=num_labels)
        self.shape = shape
        self.vocab_size = vocab_size
        self.num_labels = num_labels
        self.embedding = nn.Embedding(vocab_size, shape.embedding_dim)

    @property
    def family(self) -> str:
        return self.shape.family


class BiLSTMStudent(FamilyModel):
    def __init__(self, shape: BiLSTMShape, vocab_size: int, num_labels: int) -> None:
        super().__init__(shape, vocab_size, num_labels)
        h = shape.hidden_size
        widths = [shape.embedding_dim, *([2 * h] * (shape.n_layers - 1))]
        # One unidirectional LSTM per direction and layer (the same parameters as nn.LSTM's
        # bidirectional layer), so that the backward one can run within each sequence's length.
        self.forward_lstms = nn.ModuleList(nn.LSTM(w, h, batch_first=True) for w in widths)
        self.backward_lstms = nn.ModuleList(nn.LSTM(w, h, batch_first=True) for w in widths)
        self.dropout = nn.Dropout(shape.dropout)
        self.fc = nn.Linear(2 * h, shape.fc_dim)
        self.classifier = nn.Linear(shape.fc_dim, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        shape: BiLSTMShape = self.shape  # type: ignore[assignment]
        lengths = attention_mask.long().sum(dim=1).clamp(min=1)  # (batch,)
        x = self.embedding(input_ids)  # (batch, seq, E)
        for fwd, bwd in zip(self.forward_lstms, self.backward_lstms, strict=True):
            out_f, _ = fwd(x)  # (batch, seq, h): position t reads tokens 0..t only
            out_b, _ = bwd(reverse_within_length(x, lengths))
            x = torch.cat([out_f, reverse_within_length(out_b, lengths)], dim=-1)
        if shape.pooling == "last":
            h = shape.hidden_size
            last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, h)  # (batch, 1, h)
            pooled = torch.cat([x[:, :, :h].gather(1, last).squeeze(1), x[:, 0, h:]], dim=-1)
        elif shape.pooling == "max":
            pooled = masked_max(x, attention_mask)
        else:
            pooled = masked_mean(x, attention_mask)
        hidden = torch.relu(self.fc(self.dropout(pooled)))  # (batch, fc_dim)
        return self.classifier(self.dropout(hidden))  # (batch, labels)


class CNNStudent(FamilyModel):
    def __init__(self, shape: CNNShape, vocab_size: int, num_labels: int) -> None:
        super().__init__(shape, vocab_size, num_labels)
        e, f = shape.embedding_dim, shape.n_filters
        # Wide convolutions (padding w - 1 each side): a sequence shorter than a window still
        # has windows, and padding tokens (zeroed) look like the convolution's own zero padding.
        self.convs = nn.ModuleList(nn.Conv1d(e, f, w, padding=w - 1) for w in shape.filter_widths)
        self.dropout = nn.Dropout(shape.dropout)
        self.classifier = nn.Linear(len(shape.filter_widths) * f, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(torch.float32)
        lengths = attention_mask.long().sum(dim=1).clamp(min=1)  # (batch,)
        x = self.embedding(input_ids) * mask.unsqueeze(-1)  # (batch, seq, E), padding zeroed
        x = x.transpose(1, 2)  # (batch, E, seq)
        pooled = []
        for conv, width in zip(self.convs, self.shape.filter_widths, strict=True):  # type: ignore[union-attr]
            out = torch.relu(conv(x))  # (batch, f, seq + width - 1)
            # Output j is the window starting at token j - (width - 1); it holds a real token
            # iff j < length + width - 1. The later ones see only padding: masked out.
            j = torch.arange(out.shape[-1], device=out.device).unsqueeze(0)
            valid = j < (lengths + width - 1).unsqueeze(1)  # (batch, seq + width - 1)
            pooled.append(out.masked_fill(~valid.unsqueeze(1), 0.0).amax(dim=-1))  # ReLU >= 0
        return self.classifier(self.dropout(torch.cat(pooled, dim=-1)))  # (batch, labels)


class BowStudent(FamilyModel):
    def __init__(self, shape: BowShape, vocab_size: int, num_labels: int) -> None:
        super().__init__(shape, vocab_size, num_labels)
        width = shape.hidden_dim or shape.embedding_dim
        self.hidden = (
            nn.Linear(shape.embedding_dim, shape.hidden_dim) if shape.hidden_dim else None
        )
        self.dropout = nn.Dropout(shape.dropout)
        self.classifier = nn.Linear(width, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(masked_mean(self.embedding(input_ids), attention_mask))  # (batch, E)
        if self.hidden is not None:
            x = self.dropout(torch.relu(self.hidden(x)))  # (batch, hidden_dim)
        return self.classifier(x)  # (batch, labels)


MODELS: dict[str, type[FamilyModel]] = {
    "bilstm": BiLSTMStudent,
    "cnn": CNNStudent,
    "bow": BowStudent,
}


# Parameter counts --------------------------------------------------------------------------


def _lstm_parameters(inputs: int, hidden: int) -> int:
    """One direction of one LSTM layer: four gates, input and recurrent weights, two biases."""
    return 4 * hidden * (inputs + hidden) + 2 * 4 * hidden


def count_family_parameters(shape: FamilyShape, vocab_size: int, num_labels: int) -> int:
    """Exact parameter count of :func:`build_family`'s model, from the shape alone.

    Embeddings (``vocab_size * embedding_dim``) are included, frozen or not: they ship with the
    model, and the cost objective counts them.
    """
    total = vocab_size * shape.embedding_dim
    c = num_labels
    if isinstance(shape, BiLSTMShape):
        h, widths = shape.hidden_size, [shape.embedding_dim, *[2 * shape.hidden_size]]
        total += sum(2 * _lstm_parameters(w, h) for w in widths[: shape.n_layers])
        total += (2 * h + 1) * shape.fc_dim + (shape.fc_dim + 1) * c
    elif isinstance(shape, CNNShape):
        f = shape.n_filters
        total += sum(f * shape.embedding_dim * w + f for w in shape.filter_widths)
        total += (len(shape.filter_widths) * f + 1) * c
    else:
        width = shape.hidden_dim or shape.embedding_dim
        if shape.hidden_dim:
            total += (shape.embedding_dim + 1) * shape.hidden_dim
        total += (width + 1) * c
    return total


# Embedding initialization ------------------------------------------------------------------


def pca_reduce(embeddings: torch.Tensor, width: int) -> torch.Tensor:
    """``embeddings`` ``(vocab, d)`` centred and projected on their top ``width`` principal axes.

    The right singular vectors of the centred matrix (``torch.linalg.svd``) are the directions of
    largest variance, so no linear map to ``width`` dimensions keeps more of it. ``width == d``
    returns a copy of the matrix itself (not centred).

    Raises:
        InvalidConfig: ``width`` is larger than the source's width.
    """
    d = embeddings.shape[1]
    matrix = embeddings.detach().to(torch.float32)
    if width == d:
        return matrix.clone()
    if width > d:
        raise InvalidConfig(
            f"embedding_dim={width} is wider than the source embeddings ({d}); choose "
            f"embedding_dim <= {d} or random embeddings"
        )
    centred = matrix - matrix.mean(dim=0, keepdim=True)  # (vocab, d)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh: (d, d), rows by variance
    return centred @ vh[:width].T  # (vocab, width)


def build_family(
    shape: FamilyShape,
    vocab_size: int,
    num_labels: int,
    embeddings: torch.Tensor | None = None,
    freeze: bool = False,
    seed: int | None = None,
) -> FamilyModel:
    """A ``bilstm``, ``cnn`` or ``bow`` student of ``shape``, in train mode.

    Args:
        shape: the family's shape; its class says which family.
        vocab_size: rows of the embedding (the teacher's, or a pruned vocabulary's).
        num_labels: classifier outputs.
        embeddings: a source's word embeddings ``(vocab_size, d)``, reduced to
            ``shape.embedding_dim`` by :func:`pca_reduce`; None: random.
        freeze: keep the embeddings fixed in training (they are still counted and saved).
        seed: seeds the random initialization (global RNG untouched); None uses the global RNG.

    Raises:
        InvalidConfig: a bad shape, or source embeddings of another vocabulary size or too narrow.
    """
    if embeddings is not None and embeddings.shape[0] != vocab_size:
        raise InvalidConfig(
            f"source embeddings have {embeddings.shape[0]} rows but vocab_size={vocab_size}; "
            "prune the embeddings with the same vocabulary (prune_embeddings)"
        )
    reduced = None if embeddings is None else pca_reduce(embeddings, shape.embedding_dim)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = MODELS[shape.family](shape, vocab_size, num_labels)  # type: ignore[arg-type]
    if reduced is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(reduced)
    model.embedding.weight.requires_grad_(not freeze)
    return model.train()


# Save and load -----------------------------------------------------------------------------


def save_family(model: FamilyModel, folder: Path) -> None:
    """Write ``model.safetensors`` and ``nas_family.json`` (family, shape, sizes) to ``folder``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    config = {
        "family": model.family,
        "shape": dataclasses.asdict(model.shape),
        "vocab_size": model.vocab_size,
        "num_labels": model.num_labels,
        "frozen_embeddings": not model.embedding.weight.requires_grad,
        "parameters": count_family_parameters(model.shape, model.vocab_size, model.num_labels),
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def is_family_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a student :func:`save_family` wrote (not a Hugging Face one)."""
    return (folder / CONFIG_FILE).is_file()


def load_family(folder: Path) -> FamilyModel:
    """The model :func:`save_family` wrote to ``folder``, in eval mode.

    Raises:
        CheckpointError: a file is missing or unreadable, or the weights do not fit the config.
    """
    from safetensors.torch import load_file

    config_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    missing = [p.name for p in (config_path, weights) if not p.is_file()]
    if missing:
        raise CheckpointError(
            f"{folder}: no {missing[0]}; save the student with save_family (nas_family.json and "
            "model.safetensors)"
        )
    try:
        config = json.loads(config_path.read_text())
        shape_values = dict(config["shape"])
        if "filter_widths" in shape_values:
            shape_values["filter_widths"] = tuple(shape_values["filter_widths"])
        shape = family_shape(config["family"], shape_values)
        model = MODELS[shape.family](shape, config["vocab_size"], config["num_labels"])  # type: ignore[arg-type]
        model.load_state_dict(load_file(str(weights)), strict=True)
    except (ValueError, KeyError, TypeError, RuntimeError, InvalidConfig) as exc:
        raise CheckpointError(
            f"{folder}: {CONFIG_FILE} and {WEIGHTS_FILE} do not make a student ({exc}); "
            "save it again with save_family"
        ) from None
    model.embedding.weight.requires_grad_(not config.get("frozen_embeddings", False))
    return model.eval()
