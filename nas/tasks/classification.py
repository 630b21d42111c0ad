"""Text classification tasks (SST-2, CoLA, emotion, IMDB, any labelled CSV/JSONL).

Data comes from local files (``data.train_file`` / ``data.eval_file``) or from the dataset hub.
Local files (TSV, CoLA TSV, ``text;label`` TXT, CSV, JSONL) are read by
:mod:`nas.tasks.text_files`; metrics are in :mod:`nas.tasks.classification_metrics`.

A CSV/JSONL with an ``is_valid`` column (the IMDB sample) splits itself when no eval file is
given. Metrics are fractions in [0, 1] (MCC in [-1, 1]).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from nas.errors import DataError
from nas.tasks.base import Features, Splits, Task, TaskKind, TextExample, check_separate_files
from nas.tasks.classification_metrics import classification_metrics
from nas.tasks.text_files import (
    VALID_COLUMN,
    Row,
    find_columns,
    int_like,
    read_examples,
)

# ----------------------------------------------------------------------------- labels


class LabelMap:
    """Maps raw labels to class indices.

    With ``by_value`` false (names given by the config, the task or the hub), a string label
    matches a name (exactly, through an alias, or ignoring case) and an integer label, or a
    string of digits that is not a name, indexes the names. With ``by_value`` true (names
    inferred from the data), every label matches by its string value.
    """

    def __init__(
        self, names: Sequence[str], aliases: dict[str, str] | None = None, by_value: bool = False
    ) -> None:
        self.names = tuple(str(n) for n in names)
        self.by_value = by_value
        self._lookup = {n: i for i, n in enumerate(self.names)}
        for i, n in enumerate(self.names):
            self._lookup.setdefault(n.lower(), i)
        for alias, target in (aliases or {}).items():
            if target in self._lookup:
                self._lookup.setdefault(alias, self._lookup[target])

    def index(self, value: Any) -> int | None:
        """The class index of ``value``, or None when it is not in the label set."""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            found = self._lookup.get(value, self._lookup.get(value.lower()))
            if found is not None or not int_like(value):
                return found
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if self.by_value:
            return self._lookup.get(str(value))
        return value if 0 <= value < len(self.names) else None

    def allowed(self) -> str:
        """The label set, as written in error messages."""
        names = list(self.names)
        if self.by_value:
            return f"{names}"
        return f"{names} or their indices 0..{len(names) - 1}"


def infer_label_names(rows: Sequence[Row]) -> tuple[str, ...]:
    """Sorted distinct labels of ``rows`` (numerically when all are integers)."""
    values = {r.label for r in rows}
    if values and all(int_like(v) for v in values):
        return tuple(str(v) for v in sorted({int(v) for v in values}))
    return tuple(sorted({str(v) for v in values}))


def to_examples(rows: Sequence[Row], labels: LabelMap, where: str) -> list[TextExample]:
    """Rows to :class:`TextExample`; a label outside the set raises DataError naming the line."""
    examples = []
    for row in rows:
        index = labels.index(row.label)
        if index is None:
            raise DataError(
                f"{where} line {row.line}: label {row.label!r} is not in the label set "
                f"{labels.allowed()}; fix the row or set data.label_names"
            )
        examples.append(TextExample(row.text, index, row.pair))
    return examples


# ----------------------------------------------------------------------------- the task


class _Part(NamedTuple):
    rows: list[Row]
    where: str  # file path or hub split, for messages and the description


class ClassificationTask(Task):
    """Single-sentence or sentence-pair classification; subclasses fix name, hub and labels.

    ``load`` reads ``data.train_file`` (and ``data.test_file`` / ``data.eval_file``) when set,
    else the hub dataset: its first hub split trains, its second is the test split. Without a
    test file, a train file with an ``is_valid`` column gives the test split (when
    ``splits_itself``), else ``data.test_fraction`` is held out (seeded); the selection split is
    ``data.eval_file`` or a seeded ``data.eval_fraction`` of the rows left.
    """

    name: ClassVar[str] = "text_classification"
    kind: ClassVar[TaskKind] = "classification"
    primary_metric: ClassVar[str] = "accuracy"
    hub_name: ClassVar[str | None] = None
    hub_config: ClassVar[str | None] = None
    hub_splits: ClassVar[tuple[str, str]] = ("train", "validation")  # (train, test)
    default_label_names: ClassVar[tuple[str, ...]] = ()
    label_aliases: ClassVar[dict[str, str]] = {}
    splits_itself: ClassVar[bool] = True  # a train file with `is_valid` gives the test split

    def load(self, data: Any) -> Splits:
        """Read the train, selection and test examples as ``data`` (a ``DataConfig``) says.

        The test split comes first: ``data.test_file``, else the rows a train file marks
        ``is_valid`` (``splits_itself``), else a seeded ``data.test_fraction`` of the training
        rows; from the hub, the task's second hub split (validation, or IMDB's test). The
        selection split is ``data.eval_file``, else a seeded ``data.eval_fraction`` of the
        training rows that remain.

        Raises:
            DataError: missing file or column, a label outside the label set, no selection or
                no test split, a test split that overlaps the selection split, or the hub
                unreachable without local files.
        """
        if data.train_file:
            train, test, hub_names = *self._read_local(data), None
        else:
            train, test, hub_names = self._read_hub(data)
        train, selection = self._selection(data, train)
        labels = self._label_map(data, train.rows, hub_names)
        train_examples = to_examples(train.rows, labels, train.where)
        eval_examples = to_examples(selection.rows, labels, selection.where)
        test_examples = to_examples(test.rows, labels, test.where)
        if data.max_train_samples is not None:
            order = np.random.default_rng(data.seed).permutation(len(train_examples))
            train_examples = [train_examples[i] for i in order[: data.max_train_samples]]
        if data.max_eval_samples is not None:
            eval_examples = eval_examples[: data.max_eval_samples]
        if data.max_test_samples is not None:
            test_examples = test_examples[: data.max_test_samples]
        shared = check_disjoint(
            [(e.text, e.text_pair) for e in eval_examples],
            [(e.text, e.text_pair) for e in test_examples],
            selection.where,
            test.where,
        )
        description = (
            f"{self.name}: {len(train_examples)} train examples from {train.where}, "
            f"{len(eval_examples)} selection examples from {selection.where}, "
            f"{len(test_examples)} test examples from {test.where}{shared}; "
            f"labels {list(labels.names)}"
        )
        return Splits(train_examples, eval_examples, labels.names, description, test_examples)

    def _label_map(self, data: Any, train_rows: list[Row], hub_names: Any) -> LabelMap:
        names = data.label_names or self.default_label_names or hub_names
        if names:
            return LabelMap(names, self.label_aliases)
        return LabelMap(infer_label_names(train_rows), self.label_aliases, by_value=True)

    def _read_local(self, data: Any) -> tuple[_Part, _Part]:
        """The training rows and the test split."""
        path = str(data.train_file)
        rows = read_examples(path, data, "data.train_file")
        if data.test_file:
            check_separate_files(data, "data.eval_fraction")
            test_path = str(data.test_file)
            return _Part(rows, path), _Part(
                read_examples(test_path, data, "data.test_file"), test_path
            )
        if self.splits_itself and all(r.is_valid is not None for r in rows):
            return _split_by_flag(rows, path)
        if data.test_fraction:
            return _hold_out(rows, path, data.test_fraction, data.seed, "test")
        raise DataError(
            f"{path}: no test split; set data.test_file (e.g. the dataset's dev file), or "
            "data.test_fraction (e.g. 0.1) to hold out part of data.train_file"
        )

    def _selection(self, data: Any, train: _Part) -> tuple[_Part, _Part]:
        """The training rows left and the selection split."""
        if data.eval_file:
            eval_path = str(data.eval_file)
            return train, _Part(read_examples(eval_path, data, "data.eval_file"), eval_path)
        if data.eval_fraction:
            return _hold_out(
                train.rows, train.where, data.eval_fraction, data.seed + 1, "selection"
            )
        raise DataError(
            f"{train.where}: no selection split (what trials are scored on); set "
            "data.eval_fraction (e.g. 0.05) to hold it out of the training rows, or data.eval_file"
        )

    def _hub_target(self, data: Any) -> tuple[str | None, str | None]:
        if not data.hub_name:
            return self.hub_name, self.hub_config
        name, _, config = str(data.hub_name).partition(":")
        return name, config or (self.hub_config if name == self.hub_name else None)

    def _read_hub(self, data: Any) -> tuple[_Part, _Part, Any]:
        name, config = self._hub_target(data)
        if name is None:
            raise DataError(
                f"task {self.name} has no hub dataset; set data.train_file and data.test_file "
                "(CSV or JSONL with named columns) or data.hub_name"
            )
        label = f"{name}:{config}" if config else name
        try:
            import datasets

            dataset = datasets.load_dataset(name, config)
        except Exception as exc:  # any hub failure gets the same advice
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise DataError(
                f"hub dataset {label!r} could not be loaded ({type(exc).__name__}: {first}); "
                "the hub may be unreachable: set data.train_file and data.test_file to local files"
            ) from exc
        parts, hub_names = [], None
        for split in self.hub_splits:
            if split not in dataset:
                raise DataError(f"hub dataset {label!r} has splits {list(dataset)}, no {split!r}")
            rows, hub_names = _hub_rows(dataset[split], f"hub {label} [{split}]", data)
            parts.append(_Part(rows, f"hub {label} [{split}]"))
        return parts[0], parts[1], hub_names

    def encode(self, examples: list[Any], tokenizer: Any, data: Any) -> Features:
        """Tokenize (text, optional pair), truncated to ``data.max_seq_length``, unpadded."""
        return encode_texts(examples, tokenizer, data.max_seq_length)

    def evaluate(
        self, examples: list[Any], features: Features, logits: np.ndarray, data: Any
    ) -> dict[str, float]:
        """``(n, n_labels)`` logits to ``accuracy``, ``macro_f1`` and ``mcc``."""
        return classification_metrics(np.asarray(logits), np.asarray(features.labels))


def _hold_out(
    rows: list[Row], path: str, fraction: float, seed: int, role: str
) -> tuple[_Part, _Part]:
    """A seeded ``fraction`` of ``rows`` held out as the ``role`` split ("test", "selection")."""
    key = "data.test_fraction" if role == "test" else "data.eval_fraction"
    n_held = round(len(rows) * fraction)
    if not 0 < n_held < len(rows):
        raise DataError(
            f"{path}: {key} = {fraction} of {len(rows)} rows leaves an empty split; set "
            f"another fraction or give the {role} split its own file"
        )
    held = np.zeros(len(rows), dtype=bool)
    held[np.random.default_rng(seed).permutation(len(rows))[:n_held]] = True
    train = [r for r, h in zip(rows, held, strict=True) if not h]
    out = [r for r, h in zip(rows, held, strict=True) if h]
    rest = path if path.endswith("(rest)") else f"{path} (rest)"
    return _Part(train, rest), _Part(out, f"{path} (seeded {fraction:g} {role} hold-out)")


def check_disjoint(
    selection: Sequence[Any], test: Sequence[Any], sel_where: str, test_where: str
) -> str:
    """Refuse a test split that overlaps the selection split; returns a note on duplicates.

    Real datasets repeat a few texts across their official splits (Emotion's train and test
    share 11 of 2,000, CoLA's train and dev 16 of 1,043), so up to 5 % of the test examples may
    also occur in the selection split (said in the description); more means the two splits are
    not separate data.
    """
    seen = set(selection)
    shared = sum(1 for key in test if key in seen)
    if shared > 0.05 * len(test):
        raise DataError(
            f"{shared} of {len(test)} test examples ({test_where}) also occur in the selection "
            f"split ({sel_where}); the test split must be data no trial is scored on: use "
            "separate files or hold-outs"
        )
    return f" ({shared} test texts also in the selection split)" if shared else ""


def _split_by_flag(rows: list[Row], path: str) -> tuple[_Part, _Part]:
    train = [r for r in rows if not r.is_valid]
    evals = [r for r in rows if r.is_valid]
    if not train or not evals:
        raise DataError(
            f"{path}: every row has {VALID_COLUMN} = {bool(evals)}; mark some rows True for "
            "the test split, or set data.test_file"
        )
    where = f"{path} ({VALID_COLUMN}="
    return _Part(train, where + "False)"), _Part(evals, where + "True)")


def _hub_rows(split: Any, where: str, data: Any) -> tuple[list[Row], Any]:
    cols = find_columns(list(split.column_names), Path(where), data)
    texts, labels = split[cols.text], split[cols.label]
    pairs = split[cols.pair] if cols.pair else [None] * len(texts)
    rows = [
        Row(str(t).strip(), label, p, i)
        for i, (t, label, p) in enumerate(zip(texts, labels, pairs, strict=True), start=1)
    ]
    return rows, getattr(split.features[cols.label], "names", None)


def encode_texts(examples: Sequence[TextExample], tokenizer: Any, max_length: int) -> Features:
    """Batch-tokenize examples into flat :class:`Features` (one feature per example)."""
    n = len(examples)
    single = [i for i, e in enumerate(examples) if e.text_pair is None]
    paired = [i for i, e in enumerate(examples) if e.text_pair is not None]
    ids: list[list[int]] = [[] for _ in range(n)]
    types: list[list[int]] = [[] for _ in range(n)]
    for group in (single, paired):
        if not group:
            continue
        texts = [examples[i].text for i in group]
        pairs = [examples[i].text_pair for i in group] if group is paired else None
        enc = tokenizer(
            texts,
            pairs,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_token_type_ids=True,
            return_attention_mask=False,
        )
        for i, input_ids, type_ids in zip(
            group, enc["input_ids"], enc["token_type_ids"], strict=True
        ):
            ids[i], types[i] = input_ids, type_ids
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, ids), dtype=np.int64, count=n), out=starts[1:])
    total = int(starts[-1])
    return Features(
        ids=np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=total),
        type_ids=np.fromiter(itertools.chain.from_iterable(types), dtype=np.int8, count=total),
        starts=starts,
        labels=np.fromiter((e.label for e in examples), dtype=np.int64, count=n),
    )


# ----------------------------------------------------------------------------- concrete tasks

EMOTION_LABELS = ("sadness", "joy", "love", "anger", "fear", "surprise")


class EmotionTask(ClassificationTask):
    name = "emotion"
    hub_name = "dair-ai/emotion"
    default_label_names = EMOTION_LABELS


class Sst2Task(ClassificationTask):
    name = "sst2"
    hub_name = "glue"
    hub_config = "sst2"
    default_label_names = ("negative", "positive")


class ColaTask(ClassificationTask):
    name = "cola"
    hub_name = "glue"
    hub_config = "cola"
    primary_metric = "mcc"
    default_label_names = ("unacceptable", "acceptable")


class ImdbTask(ClassificationTask):
    name = "imdb"
    hub_name = "imdb"
    hub_splits = ("train", "test")
    default_label_names = ("negative", "positive")
    label_aliases: ClassVar[dict[str, str]] = {"neg": "negative", "pos": "positive"}


class TextClassificationTask(ClassificationTask):
    """Any labelled CSV/JSONL/TSV with named columns; labels from the config or the data."""

    name = "text_classification"


TASKS: dict[str, ClassificationTask] = {
    cls.name: cls() for cls in (EmotionTask, Sst2Task, ColaTask, ImdbTask, TextClassificationTask)
}
