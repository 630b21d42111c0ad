"""SQuAD 2.0 task: reading both file formats, article splits, doc-stride encoding, decoding."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nas.config import DataConfig
from nas.errors import DataError
from nas.tasks.base import Features, QAExample
from nas.tasks.squad_metric import normalize_answer
from nas.tasks.squad_v2 import SquadV2Task, predict, read_squad_file

WINDOWS = DataConfig(max_seq_length=64, doc_stride=16, max_query_length=24)


@pytest.fixture(scope="module")
def dev_file(shared_data: Path) -> Path:
    return shared_data / "squad_v2" / "dev-v2.0.json"


@pytest.fixture(scope="module")
def dev(dev_file: Path) -> list[QAExample]:
    return read_squad_file(dev_file)


def _flat_records(dev_file: Path) -> list[dict[str, Any]]:
    records = []
    for article in json.loads(dev_file.read_text())["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = qa["answers"]
                records.append(
                    {
                        "id": qa["id"],
                        "title": article["title"],
                        "context": paragraph["context"],
                        "question": qa["question"],
                        "answers": {
                            "text": [a["text"] for a in answers],
                            "answer_start": [a["answer_start"] for a in answers],
                        },
                    }
                )
    return records


def test_read_official_file(dev: list[QAExample]) -> None:
    assert len(dev) == 6078
    assert sum(e.is_impossible for e in dev) == 3168
    assert len({e.title for e in dev}) == 16
    for e in dev[:500]:
        for text, start in zip(e.answers, e.answer_starts, strict=True):
            assert e.context[start : start + len(text)] == text
    # impossible questions carry plausible_answers in the file; those are not answers
    assert all(e.answers == () and e.answer_starts == () for e in dev if e.is_impossible)


def test_nested_and_flat_formats_agree(
    tmp_path: Path, dev_file: Path, dev: list[QAExample]
) -> None:
    records = _flat_records(dev_file)
    as_list = tmp_path / "flat.json"
    as_list.write_text(json.dumps(records))
    as_lines = tmp_path / "flat.jsonl"
    as_lines.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert read_squad_file(as_list) == dev
    assert read_squad_file(as_lines) == dev


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"a": 1}\n{oops\n', "line 2"),
        (
            '[{"id": "x", "title": "t", "context": "c", "answers": {"text": [], '
            '"answer_start": []}}]',
            "record 1 lacks key 'question'",
        ),
        ('{"data": [{"title": "t", "paragraphs": [{"qas": []}]}]}', "lacks key 'context'"),
        ('{"data": [{"title": "t", "paragraphs": []}]}', "no questions"),
        ("42", "top level"),
    ],
)
def test_bad_files_raise_data_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_squad_file(path)
    assert str(path) in str(info.value)
    assert "expected the official SQuAD 2.0 JSON" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_squad_file(tmp_path / "nope.json")


def test_article_hold_outs_keep_articles_whole(dev_file: Path, dev: list[QAExample]) -> None:
    data = DataConfig(train_file=str(dev_file), test_articles=3, eval_articles=2)
    splits = SquadV2Task().load(data)
    titles = [
        list(dict.fromkeys(e.title for e in s)) for s in (splits.train, splits.eval, splits.test)
    ]
    assert [len(t) for t in titles] == [11, 2, 3]
    assert not set(titles[0]) & set(titles[1]) and not set(titles[1]) & set(titles[2])
    file_order = list(dict.fromkeys(e.title for e in dev))
    assert titles[2] == file_order[-3:] and titles[1] == file_order[-5:-3]
    assert len(splits.train) + len(splits.eval) + len(splits.test) == len(dev)
    assert "test: the last 3 articles" in splits.description


def test_load_errors(dev_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = SquadV2Task()
    with pytest.raises(DataError, match="no test split; set data.test_file"):
        task.load(DataConfig(train_file=str(dev_file), eval_articles=4))
    with pytest.raises(DataError, match="no selection split .* data.eval_articles"):
        task.load(DataConfig(train_file=str(dev_file), test_articles=4))
    with pytest.raises(DataError, match="16 articles"):
        task.load(DataConfig(train_file=str(dev_file), test_articles=16, eval_articles=1))
    with pytest.raises(DataError, match="both"):
        task.load(
            DataConfig(train_file=str(dev_file), eval_file=str(dev_file), test_file=str(dev_file))
        )
    with pytest.raises(DataError, match="share their id or context with the selection"):
        task.load(DataConfig(train_file=str(dev_file), test_articles=4, eval_file=str(dev_file)))

    import datasets

    def offline(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="data.train_file"):
        task.load(DataConfig())


def test_sample_limits(dev_file: Path) -> None:
    task = SquadV2Task()
    base = DataConfig(train_file=str(dev_file), eval_articles=2, test_articles=2)
    full = task.load(base)
    small = task.load(
        dataclasses.replace(base, max_train_samples=50, max_eval_samples=30, max_test_samples=20)
    )
    again = task.load(dataclasses.replace(base, max_train_samples=50))
    other = task.load(dataclasses.replace(base, max_train_samples=50, seed=1))
    assert len(small.train) == 50
    assert small.train == again.train
    assert small.train != other.train
    assert small.eval == full.eval[:30] and small.test == full.test[:20]


@pytest.fixture(scope="module")
def encoded(dev: list[QAExample], tiny_tokenizer: Any) -> tuple[list[QAExample], Features]:
    examples = dev[:300]
    return examples, SquadV2Task().encode(examples, tiny_tokenizer, WINDOWS)


def test_encode_layout(encoded: tuple[list[QAExample], Features], tiny_tokenizer: Any) -> None:
    examples, features = encoded
    n, total = len(features), len(features.ids)
    assert features.ids.dtype == np.int32 and features.ids.shape == (total,)
    assert features.type_ids.dtype == np.int8 and features.type_ids.shape == (total,)
    assert features.starts.dtype == np.int64 and features.starts[-1] == total
    assert features.labels.dtype == np.int64 and features.labels.shape == (n, 2)
    assert features.example_index is not None and features.char_spans is not None
    assert features.example_index.shape == (n,)
    assert features.char_spans.dtype == np.int32 and features.char_spans.shape == (total, 2)
    assert features.lengths().max() <= WINDOWS.max_seq_length
    assert np.all(np.diff(features.example_index) >= 0)
    assert set(features.example_index.tolist()) == set(range(len(examples)))
    first = features.ids[features.starts[:-1]]
    assert np.all(first == tiny_tokenizer.cls_token_id)
    lo, hi = features.starts[0], features.starts[1]
    spans = features.char_spans[lo:hi]
    assert tuple(spans[0]) == (-1, -1)  # CLS
    context = spans[:, 0] >= 0
    assert np.all(features.type_ids[lo:hi][context] == 1)
    assert np.all(features.type_ids[lo:hi][: np.argmax(context)] == 0)  # question side


def test_long_contexts_overlap_by_stride(encoded: tuple[list[QAExample], Features]) -> None:
    _, features = encoded
    assert features.example_index is not None and features.char_spans is not None
    counts = np.bincount(features.example_index)
    assert counts.max() > 3  # contexts are much longer than one 64-token window
    first = int(np.flatnonzero(counts > 1)[0])
    a, b = np.flatnonzero(features.example_index == first)[:2]

    def context_spans(f: int) -> np.ndarray:
        spans = features.char_spans[features.starts[f] : features.starts[f + 1]]  # type: ignore[index]
        return spans[spans[:, 0] >= 0]

    overlap = WINDOWS.doc_stride
    np.testing.assert_array_equal(context_spans(a)[-overlap:], context_spans(b)[:overlap])


def test_labels_decode_to_gold(encoded: tuple[list[QAExample], Features]) -> None:
    examples, features = encoded
    assert features.example_index is not None and features.char_spans is not None
    matched, mismatched, labelled = 0, [], set()
    for f, (start, end) in enumerate(features.labels):
        example = examples[features.example_index[f]]
        if example.is_impossible:
            assert (start, end) == (0, 0)
            continue
        if (start, end) == (0, 0):
            continue
        labelled.add(example.id)
        lo = features.starts[f]
        text = example.context[
            features.char_spans[lo + start, 0] : features.char_spans[lo + end, 1]
        ]
        gold = example.answers[0]
        if normalize_answer(text) == normalize_answer(gold):
            matched += 1
        else:
            # only a word the vocabulary cannot split (e.g. "90°" -> [UNK]) may overshoot
            assert gold in text, (text, gold)
            mismatched.append(text)
    assert matched > 150
    assert len(mismatched) <= 0.02 * matched
    answerable = {e.id for e in examples if not e.is_impossible}
    assert len(labelled) >= 0.9 * len(answerable)  # the rest are longer than a window


def _oracle_logits(features: Features) -> np.ndarray:
    logits = np.full((len(features.ids), 2), -10.0, dtype=np.float32)  # (total_tokens, 2)
    rows = features.starts[:-1]
    logits[rows + features.labels[:, 0], 0] = 10.0
    logits[rows + features.labels[:, 1], 1] = 10.0
    return logits


def test_oracle_and_random_logits(dev: list[QAExample], tiny_tokenizer: Any) -> None:
    data = DataConfig(max_seq_length=128, doc_stride=32, max_query_length=32)
    examples = dev[:300]
    features = SquadV2Task().encode(examples, tiny_tokenizer, data)
    oracle = SquadV2Task().evaluate(examples, features, _oracle_logits(features), data)
    assert list(oracle)[:3] == ["exact", "f1", "total"]
    assert {"HasAns_exact", "NoAns_exact", "best_exact", "best_f1_thresh"} <= set(oracle)
    assert oracle["exact"] > 95
    assert oracle["NoAns_exact"] == 100.0
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(len(features.ids), 2)).astype(np.float32)
    random = SquadV2Task().evaluate(examples, features, noise, data)
    assert random["exact"] < oracle["exact"] - 50


def test_predict_outputs(encoded: tuple[list[QAExample], Features]) -> None:
    examples, features = encoded
    preds, na_probs = predict(examples, features, _oracle_logits(features), WINDOWS)
    assert list(preds) == [e.id for e in examples]
    assert set(na_probs) == set(preds)
    assert all(0.0 <= p <= 1.0 for p in na_probs.values())
    for e in examples:
        if e.is_impossible:
            assert preds[e.id] == ""
            assert na_probs[e.id] > 0.5
        elif preds[e.id]:
            assert preds[e.id] in e.context
            assert na_probs[e.id] < 0.5
    with pytest.raises(ValueError, match="do not match"):
        predict(examples, features, np.zeros((3, 2)), WINDOWS)
