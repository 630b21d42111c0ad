"""The official SQuAD 2.0 metric: normalization, EM/F1, aggregation, threshold search, files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nas.errors import DataError
from nas.tasks import squad_metric as sm
from nas.tasks.base import QAExample

OFFICIAL_KEYS = [
    "exact",
    "f1",
    "total",
    "HasAns_exact",
    "HasAns_f1",
    "HasAns_total",
    "NoAns_exact",
    "NoAns_f1",
    "NoAns_total",
]
BEST_KEYS = ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]


@pytest.fixture(scope="module")
def dev_articles(shared_data: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(
        (shared_data / "squad_v2" / "dev-v2.0.json").read_text()
    )["data"]
    return data


def _qas(articles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [qa for a in articles for p in a["paragraphs"] for qa in p["qas"]]


def _example(qid: str, *answers: str) -> QAExample:
    return QAExample(id=qid, title="t", context="c", question="q", answers=answers)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Cat!", "cat"),
        ("An apple, the  Pie.", "apple pie"),
        ("  a\tb  c ", "b c"),
        ("theater anthem", "theater anthem"),  # articles only as whole words
        ("U.S.-based", "usbased"),
        ("Élan — the end", "élan — end"),  # only ASCII punctuation is removed
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert sm.normalize_answer(text) == expected


def test_exact_and_f1_by_hand() -> None:
    # gold tokens [cat, sat, on], predicted [cat, sat]: P = 2/2, R = 2/3, F1 = 2PR / (P + R)
    precision, recall = 1.0, 2 / 3
    assert sm.compute_f1("a cat sat on", "the cat sat") == pytest.approx(
        2 * precision * recall / (precision + recall)
    )
    assert sm.compute_f1("a cat sat on", "the cat sat") == pytest.approx(0.8)
    assert sm.compute_exact("a cat sat on", "the cat sat") == 0
    assert sm.compute_exact("The Cat, sat", "cat sat") == 1
    # repeated tokens count by multiplicity: common = {cat: 1, dog: 1}; P = R = 2/3
    assert sm.compute_f1("cat cat dog", "cat dog dog") == pytest.approx(2 / 3)
    assert sm.compute_f1("cat", "dog") == 0
    # no-answer on either side: 1 only when both are empty after normalization
    assert sm.compute_f1("", "") == 1
    assert sm.compute_f1("", "cat") == 0
    assert sm.compute_f1("cat", "") == 0
    assert sm.compute_f1("the", "") == 1


def test_gold_answers_fall_back_to_empty() -> None:
    assert sm.gold_answers(["The", "a", "Paris"]) == ["Paris"]
    assert sm.gold_answers(["the", "!"]) == [""]
    assert sm.gold_answers([]) == [""]


def test_impossible_question_only_right_with_empty() -> None:
    data = [_example("q")]
    assert sm.evaluate(data, {"q": ""})["exact"] == 100.0
    wrong = sm.evaluate(data, {"q": "something"})
    assert wrong["exact"] == 0.0
    assert wrong["f1"] == 0.0


def test_max_over_gold_answers_and_key_order() -> None:
    data = [_example("q1", "Paris", "the city of Paris"), _example("q2")]
    result = sm.evaluate(data, {"q1": "city of paris", "q2": ""})
    assert list(result) == OFFICIAL_KEYS
    assert result["exact"] == 100.0
    assert result["HasAns_total"] == 1
    assert result["NoAns_total"] == 1
    only_has = sm.evaluate(data[:1], {"q1": "Paris"})
    assert list(only_has) == OFFICIAL_KEYS[:6]


def test_gold_predictions_on_dev_score_100(dev_articles: list[dict[str, Any]]) -> None:
    qas = _qas(dev_articles)
    preds = {qa["id"]: (qa["answers"][0]["text"] if qa["answers"] else "") for qa in qas}
    result = sm.evaluate(dev_articles, preds)
    assert list(result) == OFFICIAL_KEYS
    assert result["exact"] == 100.0
    assert result["f1"] == 100.0
    assert (result["total"], result["HasAns_total"], result["NoAns_total"]) == (6078, 2910, 3168)


def test_empty_predictions_on_dev_score_noans_share(dev_articles: list[dict[str, Any]]) -> None:
    preds = {qa["id"]: "" for qa in _qas(dev_articles)}
    result = sm.evaluate(dev_articles, preds)
    assert result["exact"] == pytest.approx(3168 / 6078 * 100)
    assert result["f1"] == pytest.approx(3168 / 6078 * 100)
    assert result["HasAns_exact"] == 0.0
    assert result["NoAns_exact"] == 100.0


def test_articles_and_examples_score_alike(dev_articles: list[dict[str, Any]]) -> None:
    qas = _qas(dev_articles)
    rng = np.random.default_rng(0)
    words = ["the", "cat", "france", "norman", "river", "1066", "army"]
    preds = {qa["id"]: " ".join(rng.choice(words, size=rng.integers(0, 3))) for qa in qas}
    na_probs = {qa["id"]: float(rng.random()) for qa in qas}
    examples = [
        QAExample(qa["id"], "t", "c", "q", tuple(a["text"] for a in qa["answers"])) for qa in qas
    ]
    from_articles = sm.evaluate(dev_articles, preds, na_probs)
    assert from_articles == sm.evaluate(examples, preds, na_probs)
    assert list(from_articles) == OFFICIAL_KEYS + BEST_KEYS
    # the best threshold can always fall back to "answer everything" (= the default threshold)
    assert from_articles["best_exact"] >= from_articles["exact"]
    assert from_articles["best_f1"] >= from_articles["f1"]


def _threshold_case() -> tuple[list[QAExample], dict[str, str], dict[str, float]]:
    data = [_example("q1", "paris"), _example("q2", "rome"), _example("q3"), _example("q4")]
    preds = {"q1": "paris", "q2": "rome italy", "q3": "berlin", "q4": ""}
    na_probs = {"q1": 0.1, "q2": 0.6, "q3": 0.8, "q4": 0.3}
    return data, preds, na_probs


def test_best_threshold_by_hand() -> None:
    data, preds, na_probs = _threshold_case()
    result = sm.evaluate(data, preds, na_probs)
    # raw exact: q1 1, q2 0, q3 0, q4 1; raw F1: q2 = 2 * (1/2 * 1) / (1/2 + 1) = 2/3
    assert result["exact"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0 + 1) / 4)
    # walk by na_prob from "abstain everywhere" (2 no-answers right): q1 +1 -> 3 (best, 0.1),
    # q4 +0, q2 +0 (exact) -> 3, q3 -1 (predicts text on a no-answer) -> 2
    assert result["best_exact"] == pytest.approx(75.0)
    assert result["best_exact_thresh"] == 0.1
    # F1: q1 -> 3, q4 -> 3, q2 + 2/3 -> 3.667 (best, 0.6), q3 -> 2.667
    assert result["best_f1"] == pytest.approx(100 * (3 + 2 / 3) / 4)
    assert result["best_f1_thresh"] == 0.6


def test_na_prob_threshold_applies_before_aggregation() -> None:
    data, preds, na_probs = _threshold_case()
    result = sm.evaluate(data, preds, na_probs, na_prob_thresh=0.5)
    # q2 (0.6) and q3 (0.8) become no-answers: q2 wrong (answerable), q3 right
    assert result["exact"] == pytest.approx(75.0)
    assert result["HasAns_exact"] == pytest.approx(50.0)
    assert result["NoAns_exact"] == pytest.approx(100.0)
    assert result["best_exact"] == pytest.approx(75.0)  # threshold search uses raw scores


def test_missing_prediction_scores_empty(caplog: pytest.LogCaptureFixture) -> None:
    data = [_example("q1", "paris"), _example("q2")]
    with caplog.at_level(logging.WARNING, logger="nas.tasks.squad_metric"):
        result = sm.evaluate(data, {"q1": "paris"})
    assert "Missing prediction for 1 of 2" in caplog.text
    assert "q2" in caplog.text
    assert result["exact"] == 100.0
    assert result["total"] == 2


def test_na_probs_must_cover_predictions() -> None:
    data, preds, na_probs = _threshold_case()
    del na_probs["q2"]
    with pytest.raises(DataError, match="q2"):
        sm.evaluate(data, preds, na_probs)


def test_run_eval_files(tmp_path: Path, shared_data: Path) -> None:
    data_file = shared_data / "squad_v2" / "dev-v2.0.json"
    qas = _qas(json.loads(data_file.read_text())["data"])
    preds = {qa["id"]: "" for qa in qas}
    preds[qas[0]["id"]] = qas[0]["answers"][0]["text"]
    na_probs = {qa["id"]: 0.5 for qa in qas}
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    (tmp_path / "na.json").write_text(json.dumps(na_probs))
    result = sm.run_eval_files(data_file, tmp_path / "preds.json", tmp_path / "na.json")
    assert list(result) == OFFICIAL_KEYS + BEST_KEYS
    assert result["exact"] == pytest.approx(3169 / 6078 * 100)
    json.dumps(result)  # printable by the CLI
    plain = sm.run_eval_files(data_file, tmp_path / "preds.json")
    assert list(plain) == OFFICIAL_KEYS


def test_run_eval_files_errors_name_the_file(tmp_path: Path, shared_data: Path) -> None:
    data_file = shared_data / "squad_v2" / "dev-v2.0.json"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        sm.run_eval_files(data_file, bad)
    with pytest.raises(DataError, match="missing.json"):
        sm.run_eval_files(data_file, tmp_path / "missing.json")
    bad.write_text(json.dumps({"some-id": 3}))
    with pytest.raises(DataError, match="some-id"):
        sm.run_eval_files(data_file, bad)
