"""SQuAD 2.0: doc-stride windowing and span decoding scored by the official metric
(``nas.tasks.squad_metric``). Reading (official nested JSON, flat JSON / JSON lines, the hub)
lives in :mod:`nas.tasks.squad_io`, re-exported here.

No-answer probabilities are ``sigmoid(null_score - best_span_score)``: 0.5 is the decision
boundary used for predictions (a null score above the best span's predicts ``''``), and the
official metric's threshold search (``best_*_thresh``) is reported on that probability scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any, ClassVar

import numpy as np

from nas.config import DataConfig
from nas.errors import CheckpointError, DataError
from nas.tasks.base import Features, QAExample, Splits, Task, TaskKind
from nas.tasks.squad_io import (
    FORMAT_HELP,
    check_disjoint_questions,
    limit_examples,
    load_files,
    load_hub,
    read_squad_file,
    split_by_articles,
)
from nas.tasks.squad_metric import evaluate

__all__ = [
    "FORMAT_HELP",
    "SquadV2Task",
    "encode_examples",
    "predict",
    "read_squad_file",
    "split_by_articles",
]

_BATCH = 1000  # examples per tokenizer call


# No answer when the null score beats the best span's by more than this (0: a no-answer
# probability above 0.5). The exported model card's snippet decides with the same constant.
NULL_SCORE_THRESHOLD = 0.0


# ----------------------------------------------------------------------------- encoding


def encode_examples(examples: Sequence[QAExample], tokenizer: Any, data: DataConfig) -> Features:
    """Tokenize (question, context) pairs into doc-stride windows with answer labels.

    Each window is labelled with the start/end token of the first answer when the answer lies
    entirely inside the window's context, else ``(0, 0)`` (the CLS token), as are impossible
    questions. Questions are left-stripped and truncated to ``data.max_query_length`` tokens
    (less when needed to leave the context more than ``data.doc_stride`` tokens).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise CheckpointError(
            f"{type(tokenizer).__name__} is not a fast tokenizer; QA needs offset mappings, "
            "use a checkpoint with a tokenizer.json (a PreTrainedTokenizerFast)"
        )
    limit = _querylimit_examples(tokenizer, data)
    if not examples:
        raise DataError("no QA examples to encode; check the data files and max_*_samples")
    chunks = [
        _encode_batch(examples[lo : lo + _BATCH], lo, tokenizer, data, limit)
        for lo in range(0, len(examples), _BATCH)
    ]
    ids, type_ids, lengths, labels, example_index, spans = (
        np.concatenate(arrays) for arrays in zip(*chunks, strict=True)
    )
    return Features(
        ids=ids.astype(np.int32),  # (total_tokens,)
        type_ids=type_ids.astype(np.int8),  # (total_tokens,)
        starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),  # (n + 1,)
        labels=labels.astype(np.int64),  # (n, 2)
        example_index=example_index.astype(np.int64),  # (n,)
        char_spans=spans.astype(np.int32),  # (total_tokens, 2)
    )


def _querylimit_examples(tokenizer: Any, data: DataConfig) -> int:
    """Question tokens allowed: ``max_query_length``, keeping context room above the stride."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    room = data.max_seq_length - specials - data.doc_stride - 1
    if room < 1:
        raise DataError(
            f"data.max_seq_length = {data.max_seq_length} leaves no room for a question and "
            f"more than data.doc_stride = {data.doc_stride} context tokens; raise "
            "max_seq_length or lower doc_stride"
        )
    return min(data.max_query_length, room)


def _truncate_questions(questions: list[str], tokenizer: Any, limit: int) -> list[str]:
    """Cut each question's text after its ``limit``-th token."""
    out = list(questions)
    pending = list(range(len(out)))
    while pending:  # re-check cut texts: re-tokenizing a cut word can add pieces
        enc = tokenizer(
            [out[i] for i in pending], add_special_tokens=False, return_offsets_mapping=True
        )
        still = []
        for i, offsets in zip(pending, enc["offset_mapping"], strict=True):
            if len(offsets) > limit:
                end = offsets[limit - 1][1]
                out[i] = out[i][: end if end < len(out[i]) else len(out[i]) - 1]
                still.append(i)
        pending = still
    return out


def _encode_batch(
    batch: Sequence[QAExample], offset: int, tokenizer: Any, data: DataConfig, limit: int
) -> tuple[np.ndarray, ...]:
    """Flat arrays for one batch: ids, type_ids, lengths, labels, example_index, char_spans."""
    questions = _truncate_questions([e.question.lstrip() for e in batch], tokenizer, limit)
    enc = tokenizer(
        questions,
        [e.context for e in batch],
        truncation="only_second",
        max_length=data.max_seq_length,
        stride=data.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
        padding=False,
    )
    ids, type_ids, lengths, spans = _flatten(enc)
    bounds = np.concatenate([[0], np.cumsum(lengths)])  # (w + 1,)
    samples = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)  # (w,)
    labels = np.array(  # (w, 2)
        [
            _label_window(batch[sample], spans[bounds[w] : bounds[w + 1]])
            for w, sample in enumerate(samples)
        ],
        dtype=np.int64,
    ).reshape(-1, 2)
    return ids, type_ids, lengths, labels, samples + offset, spans


def _flatten(enc: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A batch encoding as flat ``ids, type_ids`` (t,), ``lengths`` (w,), ``char_spans`` (t, 2).

    ``char_spans`` are the context tokens' character offsets and ``-1`` elsewhere.
    """
    n_windows = len(enc["input_ids"])
    lengths = np.fromiter((len(w) for w in enc["input_ids"]), np.int64, n_windows)  # (w,)
    total = int(lengths.sum())
    ids = np.fromiter(chain.from_iterable(enc["input_ids"]), np.int64, total)  # (t,)
    type_ids = np.fromiter(chain.from_iterable(enc["token_type_ids"]), np.int64, total)
    pairs = chain.from_iterable(chain.from_iterable(enc["offset_mapping"]))
    offsets = np.fromiter(pairs, np.int64, 2 * total).reshape(total, 2)  # (t, 2)
    context = np.array([_context_range(enc.sequence_ids(w)) for w in range(n_windows)])
    window_start = np.repeat(np.cumsum(lengths) - lengths, lengths)  # (t,)
    position = np.arange(total) - window_start  # (t,) index of each token in its window
    lo, hi = (np.repeat(context.reshape(-1, 2)[:, i], lengths) for i in (0, 1))  # (t,) each
    in_context = (position >= lo) & (position < hi)  # (t,)
    return ids, type_ids, lengths, np.where(in_context[:, None], offsets, -1)


def _context_range(sequence_ids: list[int | None]) -> tuple[int, int]:
    """``[first, last + 1)`` positions of the second sequence (the context); ``(0, 0)`` if none."""
    if 1 not in sequence_ids:
        return 0, 0
    first = sequence_ids.index(1)
    return first, len(sequence_ids) - sequence_ids[::-1].index(1)


def _label_window(example: QAExample, char_spans: np.ndarray) -> tuple[int, int]:
    """Start/end token of the first answer in this window, or ``(0, 0)`` (CLS)."""
    context = np.flatnonzero(char_spans[:, 0] >= 0)  # token positions of the context
    if example.is_impossible or context.size == 0:
        return 0, 0
    start_char = example.answer_starts[0]
    end_char = start_char + len(example.answers[0])
    if char_spans[context[0], 0] > start_char or char_spans[context[-1], 1] < end_char:
        return 0, 0  # the answer is not entirely inside this window
    start = context[char_spans[context, 0] <= start_char][-1]
    end = context[char_spans[context, 1] >= end_char][0]
    return (int(start), int(end)) if end >= start else (0, 0)


# ----------------------------------------------------------------------------- decoding


def predict(
    examples: Sequence[QAExample], features: Features, logits: np.ndarray, data: DataConfig
) -> tuple[dict[str, str], dict[str, float]]:
    """Decode answers from start/end logits (``transformers``' SQuAD 2.0 post-processing).

    Per example, the null score is the minimum over its windows of ``start[0] + end[0]``; the
    best span is the highest ``start[i] + end[j]`` among each window's top ``data.n_best`` starts
    and ends, with both tokens in the context, ``i <= j``, at most ``data.max_answer_length``
    tokens and non-empty text. The prediction is ``''`` when the null score beats the best span.

    Args:
        logits: ``(total_tokens, 2)`` start/end logits aligned with ``features.ids``.

    Returns:
        ``(predictions, na_probs)``: question id -> answer text, and question id ->
        ``sigmoid(null_score - best_span_score)`` (1.0 when no valid span exists).
    """
    if features.example_index is None or features.char_spans is None:
        raise ValueError("QA features need example_index and char_spans")
    if logits.shape != (len(features.ids), 2):
        raise ValueError(f"logits {logits.shape} do not match ({len(features.ids)}, 2)")
    n = len(examples)
    null = np.full(n, np.inf)  # (n_examples,) lowest null score over windows
    best = np.full(n, -np.inf)  # (n_examples,) best span score
    best_chars = np.zeros((n, 2), dtype=np.int64)  # (n_examples, 2) its character span
    for f, ex in enumerate(features.example_index):
        lo, hi = features.starts[f], features.starts[f + 1]
        window = np.asarray(logits[lo:hi], dtype=np.float64)  # (L, 2)
        null[ex] = min(null[ex], window[0, 0] + window[0, 1])
        score, chars = _best_span(window, np.asarray(features.char_spans[lo:hi]), data)
        if score > best[ex]:
            best[ex], best_chars[ex] = score, chars
    preds, na_probs = {}, {}
    for i, example in enumerate(examples):
        diff = null[i] - best[i]  # +inf without a valid span
        span = example.context[best_chars[i, 0] : best_chars[i, 1]]
        answer = "" if diff > NULL_SCORE_THRESHOLD else span
        preds[example.id] = answer
        na_probs[example.id] = float(0.5 * (1.0 + np.tanh(diff / 2.0)))  # stable sigmoid
    return preds, na_probs


def _best_span(window: np.ndarray, spans: np.ndarray, data: DataConfig) -> tuple[float, Any]:
    """Best valid span score in one window and its ``(char_start, char_end)``."""
    k = min(data.n_best, len(window))
    top_start = np.argsort(window[:, 0])[::-1][:k, None]  # (k, 1)
    top_end = np.argsort(window[:, 1])[::-1][None, :k]  # (1, k)
    valid = (  # (k, k)
        (spans[top_start, 0] >= 0)
        & (spans[top_end, 0] >= 0)
        & (top_end >= top_start)
        & (top_end - top_start < data.max_answer_length)
        & (spans[top_end, 1] > spans[top_start, 0])
    )
    if not valid.any():
        return -np.inf, (0, 0)
    scores = np.where(valid, window[top_start, 0] + window[top_end, 1], -np.inf)  # (k, k)
    i, j = np.unravel_index(np.argmax(scores), scores.shape)
    return float(scores[i, j]), (spans[top_start[i, 0], 0], spans[top_end[0, j], 1])


# ----------------------------------------------------------------------------- the task


class SquadV2Task(Task):
    """Extractive QA with unanswerable questions, scored by the official SQuAD 2.0 metric."""

    name: ClassVar[str] = "squad_v2"
    kind: ClassVar[TaskKind] = "qa"
    primary_metric: ClassVar[str] = "exact"
    hub_name: ClassVar[str | None] = "squad_v2"

    def load(self, data: DataConfig) -> Splits:
        """Local files (``train_file``, a test split from ``test_file`` or ``test_articles``, a
        selection split from ``eval_file`` or ``eval_articles``), else the hub (train minus
        ``eval_articles`` articles for selection; validation as the test split)."""
        if data.train_file:
            train, evals, test, description = load_files(data)
        elif data.eval_file or data.test_file:
            raise DataError(
                "data.eval_file / data.test_file are set without data.train_file; set "
                "data.train_file too, or none of them to use the hub"
            )
        else:
            name = data.hub_name or self.hub_name or self.name
            train, evals, test, description = load_hub(name, data)
        train = limit_examples(train, data.max_train_samples, data.seed, "max_train_samples")
        evals = limit_examples(evals, data.max_eval_samples, None, "max_eval_samples")
        test = limit_examples(test, data.max_test_samples, None, "max_test_samples")
        check_disjoint_questions(evals, test)
        return Splits(train=train, eval=evals, description=description, test=test)

    def encode(self, examples: list[Any], tokenizer: Any, data: DataConfig) -> Features:
        """Doc-stride windows with start/end labels; see :func:`encode_examples`."""
        return encode_examples(examples, tokenizer, data)

    def evaluate(
        self, examples: list[Any], features: Features, logits: np.ndarray, data: DataConfig
    ) -> dict[str, float]:
        """Official SQuAD 2.0 metrics (exact, f1, HasAns_*, NoAns_*, best_*) of the logits."""
        preds, na_probs = predict(examples, features, logits, data)
        result = evaluate(examples, preds, na_probs)
        return {key: float(value) for key, value in result.items()}
