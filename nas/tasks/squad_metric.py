"""The official SQuAD 2.0 evaluation (``evaluate-v2.0.py``), re-implemented as pure functions.

Scores, keys, key order and threshold search follow the official script, so numbers printed by
``nas eval squad-v2`` are comparable with published SQuAD 2.0 results. One deliberate difference:
the official script skips questions without a prediction (printing ``Missing prediction for
...``) and then fails with a ``KeyError`` in the HasAns/NoAns breakdown; here such questions are
scored as the empty prediction ``''`` and one warning lists them.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.errors import DataError
from nas.tasks.base import QAExample

log = logging.getLogger(__name__)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)

# What ``evaluate`` accepts: the official JSON's ``data`` list (articles) or QAExamples.
Dataset = Sequence[Mapping[str, Any]] | Sequence[QAExample]


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace."""
    lowered = text.lower()
    no_punc = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    no_articles = _ARTICLES.sub(" ", no_punc)
    return " ".join(no_articles.split())


def get_tokens(text: str) -> list[str]:
    """The normalized answer split on whitespace; ``[]`` for an empty string."""
    if not text:
        return []
    return normalize_answer(text).split()


def compute_exact(a_gold: str, a_pred: str) -> int:
    """1 if the normalized gold and predicted answers are equal, else 0."""
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str) -> float:
    """Token-overlap F1 between normalized answers.

    When either side has no tokens (a no-answer), F1 is 1 if both have none, else 0.
    """
    gold_toks = get_tokens(a_gold)
    pred_toks = get_tokens(a_pred)
    if not gold_toks or not pred_toks:
        return int(gold_toks == pred_toks)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def gold_answers(answers: Iterable[str]) -> list[str]:
    """Answers that survive normalization; ``['']`` when none do (an unanswerable question)."""
    kept = [a for a in answers if normalize_answer(a)]
    return kept or [""]


def questions(dataset: Dataset) -> list[tuple[str, list[str]]]:
    """``(question id, gold answer texts)`` in dataset order, from articles or QAExamples."""
    out: list[tuple[str, list[str]]] = []
    for item in dataset:
        if isinstance(item, QAExample):
            out.append((item.id, list(item.answers)))
            continue
        for paragraph in item["paragraphs"]:
            for qa in paragraph["qas"]:
                out.append((qa["id"], [a["text"] for a in qa["answers"]]))
    return out


def make_qid_to_has_ans(dataset: Dataset) -> dict[str, bool]:
    """Question id -> whether it has at least one gold answer."""
    return {qid: bool(answers) for qid, answers in questions(dataset)}


def get_raw_scores(
    dataset: Dataset, preds: Mapping[str, str]
) -> tuple[dict[str, int], dict[str, float]]:
    """Per-question exact and F1 (max over gold answers); missing predictions count as ``''``."""
    exact_scores: dict[str, int] = {}
    f1_scores: dict[str, float] = {}
    for qid, answers in questions(dataset):
        golds = gold_answers(answers)
        a_pred = preds.get(qid, "")
        exact_scores[qid] = max(compute_exact(a, a_pred) for a in golds)
        f1_scores[qid] = max(compute_f1(a, a_pred) for a in golds)
    return exact_scores, f1_scores


def apply_no_ans_threshold(
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    qid_to_has_ans: Mapping[str, bool],
    na_prob_thresh: float,
) -> dict[str, float]:
    """Questions whose no-answer probability exceeds the threshold are scored as no-answers."""
    new_scores: dict[str, float] = {}
    for qid, score in scores.items():
        if na_probs[qid] > na_prob_thresh:
            new_scores[qid] = float(not qid_to_has_ans[qid])
        else:
            new_scores[qid] = score
    return new_scores


def make_eval_dict(
    exact_scores: Mapping[str, float],
    f1_scores: Mapping[str, float],
    qid_list: Sequence[str] | None = None,
) -> collections.OrderedDict[str, Any]:
    """``exact``, ``f1`` (percentages) and ``total`` over all questions or ``qid_list``."""
    if not qid_list:
        total = len(exact_scores)
        exact = sum(exact_scores.values())
        f1 = sum(f1_scores.values())
    else:
        total = len(qid_list)
        exact = sum(exact_scores[k] for k in qid_list)
        f1 = sum(f1_scores[k] for k in qid_list)
    return collections.OrderedDict(
        [("exact", 100.0 * exact / total), ("f1", 100.0 * f1 / total), ("total", total)]
    )


def merge_eval(
    main_eval: collections.OrderedDict[str, Any], new_eval: Mapping[str, Any], prefix: str
) -> None:
    """Copy ``new_eval`` into ``main_eval`` with keys ``{prefix}_{key}``."""
    for key, value in new_eval.items():
        main_eval[f"{prefix}_{key}"] = value


def find_best_thresh(
    preds: Mapping[str, str],
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    qid_to_has_ans: Mapping[str, bool],
) -> tuple[float, float]:
    """The best score over no-answer thresholds, and the threshold reaching it (official logic).

    Starts from "abstain everywhere" and walks questions by increasing no-answer probability,
    switching each to its prediction; ties keep ``na_probs``' order, as in the official script.
    """
    num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    cur_score: float = num_no_ans
    best_score: float = cur_score
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        # answerable: gain its score; unanswerable: lose 1 if it predicts any text
        diff = scores[qid] if qid_to_has_ans[qid] else (-1 if preds[qid] else 0)
        cur_score += diff
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def find_all_best_thresh(
    main_eval: collections.OrderedDict[str, Any],
    preds: Mapping[str, str],
    exact_raw: Mapping[str, float],
    f1_raw: Mapping[str, float],
    na_probs: Mapping[str, float],
    qid_to_has_ans: Mapping[str, bool],
) -> None:
    """Add ``best_exact``, ``best_exact_thresh``, ``best_f1``, ``best_f1_thresh``."""
    best_exact, exact_thresh = find_best_thresh(preds, exact_raw, na_probs, qid_to_has_ans)
    best_f1, f1_thresh = find_best_thresh(preds, f1_raw, na_probs, qid_to_has_ans)
    main_eval["best_exact"] = best_exact
    main_eval["best_exact_thresh"] = exact_thresh
    main_eval["best_f1"] = best_f1
    main_eval["best_f1_thresh"] = f1_thresh


def evaluate(
    dataset: Dataset,
    preds: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> collections.OrderedDict[str, Any]:
    """Score predictions exactly as the official SQuAD 2.0 script does.

    Args:
        dataset: the official JSON's ``data`` list of articles, or a list of QAExamples.
        preds: question id -> predicted answer text (``''`` predicts "no answer").
        na_probs: question id -> no-answer probability; enables the ``best_*`` keys.
        na_prob_thresh: questions with a no-answer probability above this count as no-answers.

    Returns:
        ``exact, f1, total``, then ``HasAns_*`` and ``NoAns_*`` when such questions exist, then
        ``best_exact, best_exact_thresh, best_f1, best_f1_thresh`` when ``na_probs`` is given.

    Raises:
        DataError: the dataset has no questions, or ``na_probs`` lacks a predicted question.
    """
    qid_to_has_ans = make_qid_to_has_ans(dataset)
    if not qid_to_has_ans:
        raise DataError("SQuAD evaluation: the dataset has no questions")
    _warn_missing(qid_to_has_ans, preds)
    full_preds = {qid: preds.get(qid, "") for qid in qid_to_has_ans}
    probs = _checked_na_probs(qid_to_has_ans, preds, na_probs)
    exact_raw, f1_raw = get_raw_scores(dataset, full_preds)
    exact_thresh = apply_no_ans_threshold(exact_raw, probs, qid_to_has_ans, na_prob_thresh)
    f1_thresh = apply_no_ans_threshold(f1_raw, probs, qid_to_has_ans, na_prob_thresh)
    out_eval = make_eval_dict(exact_thresh, f1_thresh)
    has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
    no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
    if has_ans_qids:
        merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, has_ans_qids), "HasAns")
    if no_ans_qids:
        merge_eval(out_eval, make_eval_dict(exact_thresh, f1_thresh, no_ans_qids), "NoAns")
    if na_probs is not None:
        find_all_best_thresh(out_eval, full_preds, exact_raw, f1_raw, na_probs, qid_to_has_ans)
    return out_eval


def _warn_missing(qid_to_has_ans: Mapping[str, bool], preds: Mapping[str, str]) -> None:
    missing = [qid for qid in qid_to_has_ans if qid not in preds]
    if missing:
        log.warning(
            "Missing prediction for %d of %d questions (e.g. %s); scored as ''",
            len(missing),
            len(qid_to_has_ans),
            ", ".join(missing[:5]),
        )


def _checked_na_probs(
    qid_to_has_ans: Mapping[str, bool],
    preds: Mapping[str, str],
    na_probs: Mapping[str, float] | None,
) -> dict[str, float]:
    """No-answer probabilities for every question; 0.0 when none are given (official default)."""
    if na_probs is None:
        return {qid: 0.0 for qid in qid_to_has_ans}
    lacking = [qid for qid in qid_to_has_ans if qid in preds and qid not in na_probs]
    if lacking:
        raise DataError(
            f"no-answer probabilities lack {len(lacking)} predicted questions "
            f"(e.g. {', '.join(lacking[:5])}); give one probability per question id"
        )
    return {qid: float(na_probs.get(qid, 0.0)) for qid in qid_to_has_ans}


def run_eval_files(
    data_file: str | Path,
    pred_file: str | Path,
    na_prob_file: str | Path | None = None,
    na_prob_thresh: float = 1.0,
) -> collections.OrderedDict[str, Any]:
    """Evaluate a predictions file against a SQuAD 2.0 data file, like the official script.

    Args:
        data_file: official SQuAD 2.0 JSON (or the flat formats ``read_squad_file`` accepts).
        pred_file: JSON object ``{question id: predicted text}``.
        na_prob_file: optional JSON object ``{question id: no-answer probability}``.
        na_prob_thresh: predict "no answer" where the probability exceeds this (official 1.0).

    Returns:
        The ordered metric dict of :func:`evaluate`.

    Raises:
        DataError: a file is missing, not JSON, or not a mapping of the expected value types.
    """
    from nas.tasks.squad_v2 import read_squad_file  # late: squad_v2 imports this module

    examples = read_squad_file(data_file)
    preds = _read_mapping(Path(pred_file), str, "predicted answer text")
    na_probs = None
    if na_prob_file is not None:
        na_probs = _read_mapping(Path(na_prob_file), float, "no-answer probability")
    try:
        return evaluate(examples, preds, na_probs, na_prob_thresh)
    except DataError as exc:
        if na_prob_file is None:
            raise
        raise DataError(f"{na_prob_file}: {exc}") from exc


def _read_mapping(path: Path, kind: type, what: str) -> dict[str, Any]:
    """A JSON object of question id -> ``kind`` (``float`` accepts any JSON number)."""
    expected = f"expected a JSON object {{question id: {what}}}"
    if not path.is_file():
        raise DataError(f"{path}: file not found; {expected}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); {expected}") from exc
    if not isinstance(raw, dict):
        raise DataError(f"{path}: top level is {type(raw).__name__}; {expected}")
    allowed: tuple[type, ...] = (int, float) if kind is float else (kind,)
    for qid, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise DataError(f"{path}: value for '{qid}' is {value!r}; {expected}")
    return raw
