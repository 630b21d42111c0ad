"""The shapes of the non-transformer student families, torch-free (``nas.students.families``
builds the models): ``bilstm`` (Tang et al. 2019), ``cnn`` (Kim 2014), ``bow`` (FastText / MLP).

Top-level, beside ``params.py``, for the same reason: the search space and the typed trial
parameters read these shapes, and they may import no package and no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.errors import InvalidConfig

# Every student family a search space may name; ``distilbert`` is the sliced transformer.
FAMILIES = ("distilbert", "bilstm", "cnn", "bow")
# How a family's embeddings start: the student source's word embeddings (PCA-reduced), or random.
EMBEDDING_INITS = ("source", "random")
POOLINGS = ("last", "max", "mean")
# A bilstm/cnn/bow student's folder: this file (family, shape, sizes; labels once exported)
# beside model.safetensors; a DistilBERT student's is a Hugging Face folder (config.json).
FAMILY_FILE = "nas_family.json"
# How a model card names each family's student.
FAMILY_TITLES = {
    "distilbert": "DistilBERT",
    "bilstm": "BiLSTM (Tang et al. 2019)",
    "cnn": "CNN (Kim 2014)",
    "bow": "bag-of-words (FastText-style mean of embeddings)",
}


def check_positive(family: str, **values: int) -> None:
    """Each of ``values`` is a positive int; else InvalidConfig naming it."""
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise InvalidConfig(f"{family}: {name}={value!r} must be a positive integer")


def parse_widths(value: Any) -> tuple[Any, ...]:
    """CNN filter widths from a tuple, a list (YAML) or a string ``"3,4,5"`` (how a search
    space writes a choice of widths: Optuna's categorical choices are scalars)."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        return tuple(int(p) if p.isdigit() else p for p in parts)
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _check_dropout(family: str, dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise InvalidConfig(f"{family}: dropout={dropout!r} must be in [0, 1)")


@dataclass(frozen=True)
class BiLSTMShape:
    """Tang et al. (2019): embedding, bidirectional LSTMs, pooling, a ReLU layer, classifier."""

    family: ClassVar[str] = "bilstm"
    embedding_dim: int
    """Width E of the token embeddings."""
    hidden_size: int
    """LSTM hidden size per direction; the pooled vector has twice this width."""
    n_layers: int = 1
    """Stacked bidirectional LSTM layers, 1 or 2."""
    pooling: str = "last"
    """``last``: Tang et al.'s concatenated final states (forward at the last real token,
    backward at the first); ``max`` / ``mean``: over the non-padding positions."""
    fc_dim: int = 256
    """Width of the ReLU layer between the pooled vector and the classifier."""
    dropout: float = 0.1
    """Dropout on the pooled vector and after the ReLU layer (training only)."""

    def __post_init__(self) -> None:
        check_positive("bilstm", embedding_dim=self.embedding_dim, hidden_size=self.hidden_size)
        check_positive("bilstm", fc_dim=self.fc_dim)
        if self.n_layers not in (1, 2):
            raise InvalidConfig(f"bilstm: n_layers={self.n_layers!r} must be 1 or 2")
        if self.pooling not in POOLINGS:
            raise InvalidConfig(f"bilstm: pooling={self.pooling!r}; allowed: {POOLINGS}")
        _check_dropout("bilstm", self.dropout)


@dataclass(frozen=True)
class CNNShape:
    """Kim (2014): convolutions of several widths, ReLU, max-over-time pooling, classifier."""

    family: ClassVar[str] = "cnn"
    embedding_dim: int
    """Width E of the token embeddings."""
    filter_widths: tuple[int, ...] = (3, 4, 5)
    """Window widths in tokens, one convolution each."""
    n_filters: int = 100
    """Filters per width; the pooled vector has ``len(filter_widths) * n_filters`` features."""
    dropout: float = 0.5
    """Dropout on the pooled vector (Kim's 0.5)."""

    def __post_init__(self) -> None:
        check_positive("cnn", embedding_dim=self.embedding_dim, n_filters=self.n_filters)
        widths = parse_widths(self.filter_widths)
        if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
            raise InvalidConfig(
                f"cnn: filter_widths={self.filter_widths!r} must be positive integers, e.g. "
                "[3, 4, 5]"
            )
        object.__setattr__(self, "filter_widths", widths)  # a YAML list becomes a tuple
        _check_dropout("cnn", self.dropout)


@dataclass(frozen=True)
class BowShape:
    """FastText / MLP: the mean of the token embeddings, an optional hidden layer, classifier."""

    family: ClassVar[str] = "bow"
    embedding_dim: int
    """Width E of the token embeddings."""
    hidden_dim: int = 0
    """Width of one ReLU hidden layer; 0: the classifier reads the mean embedding directly."""
    dropout: float = 0.0
    """Dropout on the mean embedding and the hidden layer (training only)."""

    def __post_init__(self) -> None:
        check_positive("bow", embedding_dim=self.embedding_dim)
        if not isinstance(self.hidden_dim, int) or self.hidden_dim < 0:
            raise InvalidConfig(f"bow: hidden_dim={self.hidden_dim!r} must be an integer >= 0")
        _check_dropout("bow", self.dropout)


FamilyShape = BiLSTMShape | CNNShape | BowShape
SHAPES: dict[str, type[Any]] = {s.family: s for s in (BiLSTMShape, CNNShape, BowShape)}


def family_shape(family: str, values: dict[str, Any]) -> FamilyShape:
    """The shape of ``family`` from plain values; unknown families or keys are errors."""
    if family not in SHAPES:
        raise InvalidConfig(f"family={family!r} is not one of {sorted(SHAPES)}")
    cls = SHAPES[family]
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise InvalidConfig(f"{family}: unknown parameter {unknown[0]!r}; allowed: {allowed}")
    shape: FamilyShape = cls(**values)
    return shape


def shape_fields(family: str) -> tuple[str, ...]:
    """The shape parameters of the non-transformer ``family``, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(SHAPES[family]))


def flat_shape(shape: FamilyShape) -> dict[str, Any]:
    """``shape`` as the plain values a search space and Optuna record: CNN widths as
    ``"3,4,5"``."""
    values = dataclasses.asdict(shape)
    if "filter_widths" in values:
        values["filter_widths"] = ",".join(map(str, values["filter_widths"]))
    return values
