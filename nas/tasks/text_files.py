"""Reading labelled text files for classification into :class:`Row` records.

This module owns the local file formats, detected from the extension and the first line:

- ``.tsv`` with a header naming the columns (``sentence`` or ``text``, and ``label``), or the
  header-less 4-column CoLA layout ``source, label, mark, sentence``;
- ``.txt`` lines ``text;label`` with an optional header line (the emotion files), or TSV;
- ``.csv`` with a header (read with the ``csv`` module, so quoted text may hold commas);
- ``.jsonl`` (or ``.json``: JSON lines or one array) of objects with named keys.

Columns are picked from ``data.text_column`` / ``data.text_pair_column`` / ``data.label_column``
or the usual names (``TEXT_COLUMNS``, ``PAIR_COLUMNS``, ``LABEL_COLUMNS``). An ``is_valid``
column (the IMDB sample) is kept on each row so the task can split on it. Labels stay as
written; :mod:`nas.tasks.classification` maps them to class indices.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from nas.errors import DataError

TEXT_COLUMNS = ("sentence", "text", "sentence1", "review", "content")
PAIR_COLUMNS = ("sentence2",)
LABEL_COLUMNS = ("label", "label_name", "labels")
VALID_COLUMN = "is_valid"
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


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
    content = _read_utf8(path, key)
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


def find_columns(header: Sequence[str], path: Path, data: Any) -> _Columns:
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
    cols = find_columns([h.strip() for h in header], path, data)
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
    if len(fields) != 4 or not int_like(fields[1]):
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
    cols = find_columns(header, path, data)
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
    cols = find_columns(list(records[0][1]), path, data)
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


def int_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    text = str(value).strip()
    return text.lstrip("-").isdigit()


def read_texts(
    path: str | Path, key: str, text_column: str | None = None, pair_column: str | None = None
) -> list[tuple[str, str | None]]:
    """Read unlabelled texts as ``(text, pair)`` records, ``pair`` None without a pair column.

    ``.txt``: one text per line, as is (blank lines skipped). ``.tsv`` / ``.csv`` with a header,
    and ``.jsonl`` / ``.json``: the column ``text_column`` (default: the first of
    ``TEXT_COLUMNS`` present) and the pair column ``pair_column`` (default: a ``PAIR_COLUMNS``
    name, when present). Other columns (a label, if any) are ignored.

    Args:
        path: the file.
        key: the config key the path came from, for messages (e.g. ``transfer.file``); the
            column keys are named ``<section>.text_column`` / ``<section>.text_pair_column``.
        text_column: the text column's name.
        pair_column: the second sentence's column, for sentence-pair tasks.

    Raises:
        DataError: the file is missing, not UTF-8, empty, in another format or lacks a column.
    """
    path = Path(path)
    content = _read_utf8(path, key)
    lines = [line.strip() for line in content.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path}: file is empty; expected one text per line or a text column")
    ext = path.suffix.lower()
    if ext not in (".txt", ".tsv", ".csv", ".jsonl", ".json", ".ndjson"):
        raise DataError(
            f"{path}: unknown extension {ext!r} for {key}; use .txt (one text per line), or "
            ".tsv, .csv, .jsonl with a text column"
        )
    if ext == ".txt":
        if lines[0].startswith(("{", "[")):
            detect_format(path, lines[0])  # raises: JSON in a .txt file
        return [(line, None) for line in lines]
    detect_format(path, lines[0])  # raises on JSON named .csv or .tsv, and the reverse
    header, records = _text_records(path, content, ext)
    section = key.rpartition(".")[0] or key
    text = _text_column(header, path, f"{section}.text_column", text_column, TEXT_COLUMNS)
    pair = None
    if pair_column is not None or any(c in header for c in PAIR_COLUMNS):
        pair = _text_column(header, path, f"{section}.text_pair_column", pair_column, PAIR_COLUMNS)
    out = []
    for number, record in records:
        missing = [c for c in (text, pair) if c is not None and record.get(c) is None]
        if missing:
            raise DataError(f"{path} line {number}: no value for column {missing[0]!r}")
        out.append((str(record[text]).strip(), str(record[pair]).strip() if pair else None))
    if not out:
        raise DataError(f"{path}: no texts after the header; expected one text per record")
    return out


def _text_records(
    path: Path, content: str, ext: str
) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """The columns and the ``(line, record)`` pairs of a headed ``.tsv``/``.csv``, or of JSON
    objects (the first object's keys are the columns)."""
    if ext in (".tsv", ".csv"):
        # TSV fields are split at tabs only (quotes are text), as read_tsv does
        tsv = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if ext == ".tsv" else {}
        reader = csv.reader(io.StringIO(content, newline=""), **tsv)  # type: ignore[arg-type]
        header = [h.strip() for h in next(reader)]
        out, start = [], reader.line_num + 1
        for fields in reader:
            if fields:
                out.append((start, dict(zip(header, fields, strict=False))))
            start = reader.line_num + 1
        return header, out
    records = list(_json_records(path, content))
    bad = next(((n, r) for n, r in records if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(f"{path} line {bad[0]}: expected a JSON object, got {bad[1]!r:.80}")
    return list(records[0][1]) if records else [], records


def _text_column(
    header: Sequence[str], path: Path, key: str, chosen: str | None, options: Sequence[str]
) -> str:
    if chosen is not None and chosen not in header:
        raise DataError(
            f"{path} has columns {list(header)}; {key} = {chosen!r} is not one of them"
        )
    found = chosen or next((name for name in options if name in header), None)
    if found is None:
        raise DataError(f"{path} has columns {list(header)}; set {key} to one of them")
    return found


def _read_utf8(path: Path, key: str) -> str:
    """The text of ``path`` (a BOM dropped); missing or not UTF-8 is a DataError naming ``key``."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; set {key} to an existing file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}); save the file as UTF-8") from exc
