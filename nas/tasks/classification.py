"""Text classification tasks (SST-2, CoLA, emotion, IMDB, any labelled CSV/JSONL).

Data comes from local files (``data.train_file`` / ``data.eval_file``) or from the dataset hub.
Local formats, detected from the extension and the first line:

- ``.tsv`` with a header naming the columns (``sentence`` or ``text``, and ``label``), or the
  header-less 4-column CoLA layout ``source, label, mark, sentence``;
- ``.txt`` lines ``text;label`` with an optional header line (the emotion files), or TSV;
- ``.csv`` with a header (read with the ``csv`` module, so quoted text may hold commas);
- ``.jsonl`` (or ``.json``: JSON lines or one array) of objects with named keys.

A CSV/JSONL with an ``is_valid`` column (the IMDB sample) splits itself when no eval file is
given. Metrics are fractions in [0, 1] (MCC in [-1, 1]).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from nas.errors import DataError
from nas.tasks.base import Features, Splits, Task, TaskKind, TextExample

TEXT_COLUMNS = ("sentence", "text", "sentence1", "review", "content")
PAIR_COLUMNS = ("sentence2",)
LABEL_COLUMNS = ("label", "label_name", "labels")
VALID_COLUMN = "is_valid"
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}

# ----------------------------------------------------------------------------- metrics


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    """Share of predictions equal to the gold labels; 0.0 for empty input."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    return float(np.mean(pred == gold)) if gold.size else 0.0


def confusion_matrix(pred: np.ndarray, gold: np.ndarray, n_labels: int) -> np.ndarray:
    """``(n_labels, n_labels)`` counts; rows are gold classes, columns predicted classes."""
    pred = np.asarray(pred, dtype=np.int64)
    gold = np.asarray(gold, dtype=np.int64)
    flat = np.bincount(gold * n_labels + pred, minlength=n_labels * n_labels)
    return flat.reshape(n_labels, n_labels)


def macro_f1(pred: np.ndarray, gold: np.ndarray, n_labels: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``gold`` or ``pred``.

    Classes absent from both are left out, as sklearn's ``f1_score(average="macro")`` does.
    """
    matrix = confusion_matrix(pred, gold, n_labels).astype(np.float64)
    tp = np.diag(matrix)
    gold_counts, pred_counts = matrix.sum(axis=1), matrix.sum(axis=0)
    present = (gold_counts + pred_counts) > 0
    if not present.any():
        return 0.0
    f1 = 2 * tp[present] / (gold_counts[present] + pred_counts[present])
    return float(f1.mean())


def matthews_corrcoef(pred: np.ndarray, gold: np.ndarray, n_labels: int) -> float:
    """Multiclass Matthews correlation (Gorodkin's R_K, as sklearn computes it).

    ``(c*s - sum_k p_k*t_k) / sqrt((s^2 - sum_k p_k^2) * (s^2 - sum_k t_k^2))``
    with ``c`` correct predictions, ``s`` samples, ``p_k``/``t_k`` predicted/true counts of
    class ``k``; 0.0 when undefined.
    """
    matrix = confusion_matrix(pred, gold, n_labels).astype(np.float64)
    t, p = matrix.sum(axis=1), matrix.sum(axis=0)
    c, s = np.trace(matrix), matrix.sum()
    cov_ytyp = c * s - p @ t
    cov_ypyp = s * s - p @ p
    cov_ytyt = s * s - t @ t
    if cov_ypyp == 0 or cov_ytyt == 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(cov_ytyt * cov_ypyp))


# ----------------------------------------------------------------------------- reading files


class Row(NamedTuple):
    """One raw record: text, label as written (str or int), optional pair, where it came from."""

    text: str
    label: str | int
    pair: str | None = None
    line: int = 0  # 1-based line of the file where the record starts
    is_valid: bool | None = None  # the record's ``is_valid`` flag, when the file has one


class _Columns(NamedTuple):
    text: str
    label: str
    pair: str | None
    valid: str | None


def read_examples(path: str | Path, data: Any = None, key: str = "data.train_file") -> list[Row]:
    """Read a labelled text file in any supported format (see the module docstring).

    Args:
        path: the file.
        data: a ``DataConfig`` whose ``text_column`` / ``text_pair_column`` / ``label_column``
            name the columns; ``None`` uses the defaults.
        key: the config key the path came from, for error messages.

    Raises:
        DataError: the file is missing, empty, in an unknown format or lacks a column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; set {key} to an existing file")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}); save the file as UTF-8") from exc
    first = next((line for line in content.splitlines() if line.strip()), None)
    if first is None:
        raise DataError(f"{path}: file is empty; expected labelled examples")
    reader = {"tsv": read_tsv, "semicolon": read_semicolon, "csv": read_csv, "jsonl": read_jsonl}
    rows = reader[detect_format(path, first)](path, content, data)
    if not rows:
        raise DataError(f"{path}: no examples after the header; expected labelled examples")
    return rows


def detect_format(path: Path, first_line: str) -> str:
    """``tsv``, ``semicolon``, ``csv`` or ``jsonl`` from the extension and the first line."""
    ext = path.suffix.lower()
    looks_json = first_line.lstrip().startswith(("{", "["))
    if ext in (".jsonl", ".json", ".ndjson"):
        if not looks_json:
            raise DataError(f"{path}: expected JSON objects (one per line), got {first_line!r}")
        return "jsonl"
    if looks_json:
        raise DataError(
            f"{path}: looks like JSON but is named {ext or 'without extension'}; "
            "rename it to .jsonl (one object per line with named keys)"
        )
    if ext == ".csv":
        return "csv"
    if ext in (".tsv", ".txt") and "\t" in first_line:
        return "tsv"
    if ext == ".txt" and ";" in first_line:
        return "semicolon"
    expected = {
        ".tsv": "tab-separated columns",
        ".txt": "'text;label' lines or tab-separated columns",
    }.get(ext)
    if expected is None:
        raise DataError(f"{path}: unknown extension {ext!r}; use .tsv, .csv, .jsonl or .txt")
    raise DataError(f"{path}: expected {expected}, but the first line is {first_line[:80]!r}")


def _configured(data: Any, name: str) -> str | None:
    return getattr(data, name, None) if data is not None else None


def _pick(header: Sequence[str], path: Path, data: Any, key: str, options: Sequence[str]) -> str:
    chosen = _configured(data, key)
    if chosen is not None:
        if chosen not in header:
            raise DataError(
                f"{path} has columns {list(header)}; data.{key} = {chosen!r} is not one of them"
            )
        return chosen
    found = next((name for name in options if name in header), None)
    if found is None:
        raise DataError(f"{path} has columns {list(header)}; set data.{key} to one of them")
    return found


def _columns(header: Sequence[str], path: Path, data: Any) -> _Columns:
    text = _pick(header, path, data, "text_column", TEXT_COLUMNS)
    label = _pick(header, path, data, "label_column", LABEL_COLUMNS)
    pair: str | None = None
    if _configured(data, "text_pair_column") is not None or any(c in header for c in PAIR_COLUMNS):
        pair = _pick(header, path, data, "text_pair_column", PAIR_COLUMNS)
    return _Columns(text, label, pair, VALID_COLUMN if VALID_COLUMN in header else None)


def _is_header(fields: Sequence[str], data: Any) -> bool:
    known = {*TEXT_COLUMNS, *LABEL_COLUMNS, *PAIR_COLUMNS}
    known.update(_configured(data, k) or "-" for k in ("text_column", "label_column"))
    return any(f.strip() in known for f in fields)


def _flag(value: Any, path: Path, line: int) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise DataError(f"{path} line {line}: {VALID_COLUMN} = {value!r}; write True or False")


def _record(values: dict[str, Any], cols: _Columns, path: Path, line: int) -> Row:
    missing = [c for c in (cols.text, cols.label, cols.pair) if c and values.get(c) is None]
    if missing:
        raise DataError(f"{path} line {line}: no value for column {missing[0]!r}")
    label = values[cols.label]
    label = label.strip() if isinstance(label, str) else label
    pair = str(values[cols.pair]).strip() if cols.pair else None
    valid = _flag(values.get(cols.valid), path, line) if cols.valid else None
    return Row(str(values[cols.text]).strip(), label, pair, line, valid)


def read_tsv(path: Path, content: str, data: Any = None) -> list[Row]:
    """Tab-separated: a header naming the columns, or the header-less CoLA layout."""
    lines = content.splitlines()
    header = lines[0].split("\t")
    if not _is_header(header, data):
        return _read_cola(path, lines)
    cols = _columns([h.strip() for h in header], path, data)
    names = [h.strip() for h in header]
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if line.strip():
            fields = line.split("\t")
            if len(fields) != len(names):
                raise DataError(
                    f"{path} line {number}: {len(fields)} tab-separated fields, the header has "
                    f"{len(names)}; remove stray tabs"
                )
            rows.append(_record(dict(zip(names, fields, strict=True)), cols, path, number))
    return rows


def _read_cola(path: Path, lines: list[str]) -> list[Row]:
    fields = lines[0].split("\t")
    if len(fields) != 4 or not _int_like(fields[1]):
        raise DataError(
            f"{path}: first line {lines[0][:80]!r} is no header naming 'sentence' (or 'text') "
            "and 'label', nor the 4-column CoLA layout (source, label, mark, sentence); "
            "add a header line such as 'sentence<TAB>label'"
        )
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            fields = line.split("\t")
            if len(fields) != 4:
                raise DataError(
                    f"{path} line {number}: {len(fields)} fields; the CoLA layout has 4 "
                    "(source, label, mark, sentence)"
                )
            rows.append(Row(fields[3].strip(), fields[1].strip(), None, number))
    return rows


def read_semicolon(path: Path, content: str, data: Any = None) -> list[Row]:
    """``text;label`` lines (split at the last ``;``), with an optional header line."""
    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition(";")
        if not sep:
            raise DataError(
                f"{path} line {number}: no ';' in {line[:80]!r}; expected 'text;label'"
            )
        if number == 1 and _is_header([text, label], data):
            continue
        rows.append(Row(text.strip(), label.strip(), None, number))
    return rows


def read_csv(path: Path, content: str, data: Any = None) -> list[Row]:
    """Comma-separated with a header line; quoted fields may span lines."""
    reader = csv.reader(io.StringIO(content, newline=""))
    header = [h.strip() for h in next(reader)]
    cols = _columns(header, path, data)
    rows, start = [], reader.line_num + 1
    for fields in reader:
        if fields:
            if len(fields) != len(header):
                raise DataError(
                    f"{path} line {start}: {len(fields)} fields, the header has {len(header)}; "
                    "quote fields that contain commas"
                )
            rows.append(_record(dict(zip(header, fields, strict=True)), cols, path, start))
        start = reader.line_num + 1
    return rows


def read_jsonl(path: Path, content: str, data: Any = None) -> list[Row]:
    """JSON objects, one per line (or a single JSON array of objects)."""
    records = list(_json_records(path, content))
    bad = next(((n, r) for n, r in records if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(f"{path} line {bad[0]}: expected a JSON object, got {bad[1]!r:.80}")
    if not records:
        return []
    cols = _columns(list(records[0][1]), path, data)
    return [_record(record, cols, path, number) for number, record in records]


def _json_records(path: Path, content: str) -> Iterable[tuple[int, Any]]:
    if content.lstrip().startswith("["):
        try:
            yield from enumerate(json.loads(content), start=1)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc}); fix the syntax") from exc
        return
    for number, line in enumerate(content.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path} line {number}: not valid JSON ({exc}); write one object per line"
                ) from exc


def _int_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    text = str(value).strip()
    return text.lstrip("-").isdigit()


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
            if found is not None or not _int_like(value):
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
    if values and all(_int_like(v) for v in values):
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

    ``load`` reads ``data.train_file`` / ``data.eval_file`` when set, else the hub dataset.
    Without an eval file, a train file with an ``is_valid`` column splits itself (when
    ``splits_itself``), else ``data.eval_fraction`` is held out (seeded).
    """

    name: ClassVar[str] = "text_classification"
    kind: ClassVar[TaskKind] = "classification"
    primary_metric: ClassVar[str] = "accuracy"
    hub_name: ClassVar[str | None] = None
    hub_config: ClassVar[str | None] = None
    hub_splits: ClassVar[tuple[str, str]] = ("train", "validation")
    default_label_names: ClassVar[tuple[str, ...]] = ()
    label_aliases: ClassVar[dict[str, str]] = {}
    splits_itself: ClassVar[bool] = True  # a train file with `is_valid` gives the eval split

    def load(self, data: Any) -> Splits:
        """Read train and eval examples as ``data`` (a ``DataConfig``) describes.

        Raises:
            DataError: missing file or column, a label outside the label set, no eval split,
                or the hub unreachable without local files.
        """
        if data.train_file:
            train, evals, hub_names = *self._read_local(data), None
        else:
            train, evals, hub_names = self._read_hub(data)
        labels = self._label_map(data, train.rows, hub_names)
        train_examples = to_examples(train.rows, labels, train.where)
        eval_examples = to_examples(evals.rows, labels, evals.where)
        if data.max_train_samples is not None:
            order = np.random.default_rng(data.seed).permutation(len(train_examples))
            train_examples = [train_examples[i] for i in order[: data.max_train_samples]]
        if data.max_eval_samples is not None:
            eval_examples = eval_examples[: data.max_eval_samples]
        description = (
            f"{self.name}: {len(train_examples)} train examples from {train.where}, "
            f"{len(eval_examples)} eval examples from {evals.where}; labels {list(labels.names)}"
        )
        return Splits(train_examples, eval_examples, labels.names, description)

    def _label_map(self, data: Any, train_rows: list[Row], hub_names: Any) -> LabelMap:
        names = data.label_names or self.default_label_names or hub_names
        if names:
            return LabelMap(names, self.label_aliases)
        return LabelMap(infer_label_names(train_rows), self.label_aliases, by_value=True)

    def _read_local(self, data: Any) -> tuple[_Part, _Part]:
        path = str(data.train_file)
        rows = read_examples(path, data, "data.train_file")
        if data.eval_file:
            eval_path = str(data.eval_file)
            evals = read_examples(eval_path, data, "data.eval_file")
            return _Part(rows, path), _Part(evals, eval_path)
        if self.splits_itself and all(r.is_valid is not None for r in rows):
            return _split_by_flag(rows, path)
        if data.eval_fraction:
            return _hold_out(rows, path, data.eval_fraction, data.seed)
        raise DataError(
            f"{path}: no evaluation split; set data.eval_file, or data.eval_fraction (e.g. 0.1) "
            "to hold out part of data.train_file"
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
                f"task {self.name} has no hub dataset; set data.train_file and data.eval_file "
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
                "the hub may be unreachable: set data.train_file and data.eval_file to local files"
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


def _hold_out(rows: list[Row], path: str, fraction: float, seed: int) -> tuple[_Part, _Part]:
    n_eval = round(len(rows) * fraction)
    if not 0 < n_eval < len(rows):
        raise DataError(
            f"{path}: data.eval_fraction = {fraction} of {len(rows)} rows leaves an empty split; "
            "set data.eval_file or another fraction"
        )
    held = np.zeros(len(rows), dtype=bool)
    held[np.random.default_rng(seed).permutation(len(rows))[:n_eval]] = True
    train = [r for r, h in zip(rows, held, strict=True) if not h]
    evals = [r for r, h in zip(rows, held, strict=True) if h]
    return _Part(train, f"{path} (rest)"), _Part(evals, f"{path} (seeded {fraction:g} hold-out)")


def _split_by_flag(rows: list[Row], path: str) -> tuple[_Part, _Part]:
    train = [r for r in rows if not r.is_valid]
    evals = [r for r in rows if r.is_valid]
    if not train or not evals:
        raise DataError(
            f"{path}: every row has {VALID_COLUMN} = {bool(evals)}; mark some rows True for "
            "evaluation, or set data.eval_file"
        )
    where = f"{path} ({VALID_COLUMN}="
    return _Part(train, where + "False)"), _Part(evals, where + "True)")


def _hub_rows(split: Any, where: str, data: Any) -> tuple[list[Row], Any]:
    cols = _columns(list(split.column_names), Path(where), data)
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


def classification_metrics(logits: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Argmax of ``(n, n_labels)`` logits scored against ``gold``: accuracy, macro_f1, mcc."""
    if logits.ndim != 2 or logits.shape[0] != gold.shape[0]:
        raise ValueError(f"logits of shape {logits.shape} do not match {gold.shape[0]} labels")
    pred = logits.argmax(axis=1)
    n_labels = max(logits.shape[1], int(gold.max(initial=-1)) + 1)
    return {
        "accuracy": accuracy(pred, gold),
        "macro_f1": macro_f1(pred, gold, n_labels),
        "mcc": matthews_corrcoef(pred, gold, n_labels),
    }


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
