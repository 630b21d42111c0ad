"""What every task provides: raw examples, tokenized features in flat arrays, and evaluation.

Features are stored as flat NumPy arrays (all features' tokens concatenated, with offsets), so a
tokenized split and the teacher's logits can be saved with ``np.save`` and memory-mapped by every
trial of every worker without pickles.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

TaskKind = Literal["qa", "classification"]


@dataclass(frozen=True)
class QAExample:
    """One SQuAD-style question. No answers means the question is unanswerable."""

    id: str
    title: str
    context: str
    question: str
    answers: tuple[str, ...] = ()
    answer_starts: tuple[int, ...] = ()  # character offsets in ``context``, one per answer

    @property
    def is_impossible(self) -> bool:
        return not self.answers


@dataclass(frozen=True)
class TextExample:
    """One classification example; ``label`` indexes the task's ``label_names``."""

    text: str
    label: int
    text_pair: str | None = None


Example = QAExample | TextExample


@dataclass(frozen=True)
class Splits:
    """A task's examples: ``train``; ``eval``, the selection split every trial is scored on;
    ``test``, the split no trial sees (the front is reported on it)."""

    train: list[Any]  # list[QAExample] or list[TextExample]
    eval: list[Any]
    label_names: tuple[str, ...] = ()  # classification only
    description: str = ""  # where the data came from, for provenance
    test: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Features:
    """A tokenized split. Feature ``i`` is ``ids[starts[i]:starts[i+1]]``.

    For QA one example can yield several features (doc-stride windows); ``example_index`` maps
    each feature back to its example and ``char_spans`` gives each token's character span in the
    context (``-1, -1`` for question and special tokens).
    """

    ids: np.ndarray  # (total_tokens,) int32 token ids
    type_ids: np.ndarray  # (total_tokens,) int8 segment ids (BERT teachers use them)
    starts: np.ndarray  # (n + 1,) int64
    labels: np.ndarray  # (n,) int64 class ids, or (n, 2) int64 start/end token positions
    example_index: np.ndarray | None = None  # (n,) int64, QA only
    char_spans: np.ndarray | None = None  # (total_tokens, 2) int32, QA only

    def __len__(self) -> int:
        return len(self.starts) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("ids", "type_ids", "starts", "labels", "example_index", "char_spans"):
            value = getattr(self, name)
            if value is not None:
                np.save(folder / f"{name}.npy", value)

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> Features:
        mode: Literal["r"] | None = "r" if mmap else None

        def get(name: str) -> np.ndarray | None:
            path = folder / f"{name}.npy"
            return np.load(path, mmap_mode=mode) if path.exists() else None

        arrays = {n: get(n) for n in ("ids", "type_ids", "starts", "labels")}
        missing = [n for n, a in arrays.items() if a is None]
        if missing:
            raise FileNotFoundError(f"{folder}: feature cache lacks {missing}")
        return cls(
            **arrays,  # type: ignore[arg-type]
            example_index=get("example_index"),
            char_spans=get("char_spans"),
        )


class Task(ABC):
    """A task: how to load, tokenize and score it.

    Logits passed to :meth:`evaluate` are, for classification, ``(n_features, n_labels)``; for
    QA, ``(total_tokens, 2)`` start/end logits aligned with ``Features.ids``.
    """

    name: ClassVar[str]
    kind: ClassVar[TaskKind]
    primary_metric: ClassVar[str]  # key of evaluate()'s result that the study optimizes
    hub_name: ClassVar[str | None] = None

    @abstractmethod
    def load(self, data: Any) -> Splits:
        """Read train and eval examples as ``data`` (a ``nas.config.DataConfig``) describes."""

    @abstractmethod
    def encode(self, examples: list[Any], tokenizer: Any, data: Any) -> Features:
        """Tokenize examples with a Hugging Face fast tokenizer under ``data``'s lengths."""

    @abstractmethod
    def evaluate(
        self, examples: list[Any], features: Features, logits: np.ndarray, data: Any
    ) -> dict[str, float]:
        """Score logits against the examples' gold labels; returns metric name -> value."""

    def num_labels(self, splits: Splits) -> int:
        return 2 if self.kind == "qa" else len(splits.label_names)


def check_separate_files(data: Any, hold_out_key: str) -> None:
    """Refuse a selection file that is the test file: the test split must be unseen data."""
    from nas.errors import DataError

    if data.eval_file and Path(data.eval_file).resolve() == Path(data.test_file).resolve():
        raise DataError(
            f"data.eval_file and data.test_file are both {data.test_file}: the test split must "
            f"be data no trial is scored on; give the selection split its own file, or "
            f"{hold_out_key} to hold it out of data.train_file"
        )
