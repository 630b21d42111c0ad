"""Reading SQuAD 2.0 data: the official nested JSON, flat JSON / JSON lines, and the hub.

This module owns turning SQuAD files and hub splits into :class:`QAExample` lists: the accepted
formats (``FORMAT_HELP``), :func:`read_squad_file` with its record checks (errors name the file
and the record), :func:`split_by_articles` for holding out whole articles, and the loading and
sampling behind ``SquadV2Task.load`` in :mod:`nas.tasks.squad_v2`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nas.config import DataConfig
from nas.errors import DataError
from nas.tasks.base import QAExample, check_separate_files

FORMAT_HELP = (
    "expected the official SQuAD 2.0 JSON {'data': [{'title', 'paragraphs': [{'context', "
    "'qas': [{'id', 'question', 'answers': [{'text', 'answer_start'}]}]}]}]} or a JSON list / "
    "JSON-lines file of records {'id', 'title', 'context', 'question', 'answers': {'text': "
    "[...], 'answer_start': [...]}}"
)


class _Malformed(ValueError):
    """A record lacks a key or has a value of the wrong type (message says where)."""


# ----------------------------------------------------------------------------- reading


def read_squad_file(path: str | Path) -> list[QAExample]:
    """Read SQuAD questions from the official nested JSON or a flat JSON / JSON-lines file.

    Args:
        path: the file. Impossible questions have no answers (``plausible_answers`` are ignored).

    Returns:
        The questions in file order.

    Raises:
        DataError: the file is missing, is not JSON, or a record lacks a key; the message names
            the file, the record and the expected format.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: SQuAD file not found; {FORMAT_HELP}")
    try:
        raw = _parse_json(path, path.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and "data" in raw:
            examples = _from_articles(raw["data"])
        elif isinstance(raw, dict | list):
            records = raw if isinstance(raw, list) else [raw]
            examples = [_from_record(r, f"record {i + 1}") for i, r in enumerate(records)]
        else:
            raise _Malformed(f"the top level is a {type(raw).__name__}")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc}); {FORMAT_HELP}") from exc
    except _Malformed as exc:
        raise DataError(f"{path}: {exc}; {FORMAT_HELP}") from exc
    if not examples:
        raise DataError(f"{path}: no questions found; {FORMAT_HELP}")
    return examples


def _parse_json(path: Path, text: str) -> Any:
    """One JSON document, or else JSON lines (a list of records)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as whole:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2:
            raise DataError(f"{path}: not valid JSON ({whole}); {FORMAT_HELP}") from whole
        records = []
        for number, line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}: neither one JSON document ({whole}) nor JSON lines (line "
                    f"{number}: {exc}); {FORMAT_HELP}"
                ) from exc
        return records


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise _Malformed(f"{where} is a {type(obj).__name__}, not an object")
    if key not in obj:
        raise _Malformed(f"{where} lacks key '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Malformed(f"{where}: '{key}' = {value!r:.80} has the wrong type")
    return value


def _from_articles(articles: Any) -> list[QAExample]:
    if not isinstance(articles, list):
        raise _Malformed("'data' is not a list of articles")
    out = []
    for a, article in enumerate(articles):
        where = f"data[{a}]"
        title = _get(article, "title", str, where)
        for p, paragraph in enumerate(_get(article, "paragraphs", list, where)):
            pwhere = f"{where}.paragraphs[{p}]"
            context = _get(paragraph, "context", str, pwhere)
            for q, qa in enumerate(_get(paragraph, "qas", list, pwhere)):
                qwhere = f"{pwhere}.qas[{q}]"
                texts, starts = _answers(_get(qa, "answers", list, qwhere), qwhere)
                out.append(
                    QAExample(
                        id=str(_get(qa, "id", (str, int), qwhere)),
                        title=title,
                        context=context,
                        question=_get(qa, "question", str, qwhere),
                        answers=texts,
                        answer_starts=starts,
                    )
                )
    return out


def _from_record(record: Any, where: str) -> QAExample:
    """A flat (hub-style) record; ``answers`` is ``{text: [...], answer_start: [...]}``."""
    texts, starts = _answers(_get(record, "answers", (dict, list), where), where)
    return QAExample(
        id=str(_get(record, "id", (str, int), where)),
        title=_get(record, "title", str, where),
        context=_get(record, "context", str, where),
        question=_get(record, "question", str, where),
        answers=texts,
        answer_starts=starts,
    )


def _answers(answers: Any, where: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Answer texts and character starts from either answer layout."""
    if isinstance(answers, Mapping):
        texts = _get(answers, "text", list, f"{where}.answers")
        starts = _get(answers, "answer_start", list, f"{where}.answers")
    else:
        wheres = [f"{where}.answers[{i}]" for i in range(len(answers))]
        texts = [_get(a, "text", str, w) for a, w in zip(answers, wheres, strict=True)]
        starts = [_get(a, "answer_start", int, w) for a, w in zip(answers, wheres, strict=True)]
    if len(texts) != len(starts):
        raise _Malformed(f"{where}: {len(texts)} answer texts but {len(starts)} answer_start")
    if not all(isinstance(t, str) for t in texts) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in starts
    ):
        raise _Malformed(f"{where}: answer texts must be strings and answer_start integers")
    return tuple(texts), tuple(starts)


# ----------------------------------------------------------------------------- splits


def split_by_articles(
    examples: list[QAExample], n_held: int, source: str, key: str = "data.eval_articles"
) -> tuple[list[QAExample], list[QAExample]]:
    """Hold out the last ``n_held`` articles (distinct titles, in file order)."""
    titles = list(dict.fromkeys(e.title for e in examples))
    if not 0 < n_held < len(titles):
        raise DataError(
            f"{key} = {n_held}, but {source} has {len(titles)} articles left; choose between 1 "
            f"and {len(titles) - 1}, or give that split its own file"
        )
    held_out = set(titles[-n_held:])
    train = [e for e in examples if e.title not in held_out]
    return train, [e for e in examples if e.title in held_out]


def load_files(data: DataConfig) -> tuple[list[QAExample], list[QAExample], list[QAExample], str]:
    """Train, selection and test questions from local files (see ``SquadV2Task.load``)."""
    assert data.train_file is not None
    train = read_squad_file(data.train_file)
    if data.test_file:
        check_separate_files(data, "data.eval_articles")
        test, test_where = read_squad_file(data.test_file), f"test {data.test_file}"
    elif data.test_articles is not None:
        train, test = split_by_articles(
            train, data.test_articles, data.train_file, "data.test_articles"
        )
        test_where = f"test: the last {data.test_articles} articles"
    else:
        raise DataError(
            f"data.train_file = {data.train_file} is set but no test split; set data.test_file "
            "to a SQuAD file, or data.test_articles: N to hold out the last N articles of the "
            "train file"
        )
    train, selection, sel_where = _selection(train, data, data.train_file)
    return train, selection, test, f"train {data.train_file}; {sel_where}; {test_where}"


def _selection(
    train: list[QAExample], data: DataConfig, source: str
) -> tuple[list[QAExample], list[QAExample], str]:
    if data.eval_file:
        return train, read_squad_file(data.eval_file), f"selection {data.eval_file}"
    if data.eval_articles is not None:
        train, selection = split_by_articles(train, data.eval_articles, source)
        n = data.eval_articles
        return train, selection, f"selection: the {n} articles before the test articles"
    raise DataError(
        f"{source}: no selection split (what trials are scored on); set data.eval_articles: N "
        "to hold out N articles of the training data, or data.eval_file to a SQuAD file"
    )


def load_hub(
    name: str, data: DataConfig
) -> tuple[list[QAExample], list[QAExample], list[QAExample], str]:
    """The hub's train split (minus the selection articles) and its validation split as test."""
    try:
        import datasets

        loaded = datasets.load_dataset(name)
        splits = [loaded["train"], loaded["validation"]]
    except Exception as exc:  # offline hub, unknown name, missing split: all the same fix
        raise DataError(
            f"could not load dataset '{name}' from the hub ({type(exc).__name__}: {exc}); the "
            "hub may be unreachable: set data.train_file and data.test_file (or "
            "data.test_articles) to local SQuAD files"
        ) from exc
    try:
        train, test = (
            [_from_record(row, f"{name} row {i}") for i, row in enumerate(split)]
            for split in splits
        )
    except _Malformed as exc:
        raise DataError(f"hub dataset '{name}': {exc}; {FORMAT_HELP}") from exc
    train, selection, sel_where = _selection(train, data, f"hub dataset {name} [train]")
    return train, selection, test, f"hub dataset {name}: train; {sel_where}; test: validation"


def check_disjoint_questions(selection: list[QAExample], test: list[QAExample]) -> None:
    """A test split sharing questions or contexts with the selection split is refused."""
    contexts = {e.context for e in selection}
    ids = {e.id for e in selection}
    shared = sum(1 for e in test if e.id in ids or e.context in contexts)
    if shared:
        raise DataError(
            f"{shared} of {len(test)} test questions share their id or context with the "
            "selection split; the test split must be data no trial is scored on: hold out "
            "other articles (data.test_articles / data.eval_articles) or use separate files"
        )


def limit_examples(
    examples: list[QAExample], n: int | None, seed: int | None, key: str
) -> list[QAExample]:
    """The first ``n`` examples, after a seeded shuffle when ``seed`` is given."""
    if n is None or n >= len(examples):
        return examples
    if n < 1:
        raise DataError(f"data.{key} = {n} must be at least 1 (or unset for all examples)")
    if seed is None:
        return examples[:n]
    order = np.random.default_rng(seed).permutation(len(examples))[:n]
    return [examples[i] for i in order]
