"""What a student reads: the tokenizer it ships with and the features it trains and is scored on.

With the whole vocabulary that is the student source's tokenizer and the study's features. A
trial whose ``vocab_size`` is K keeps the K most frequent WordPiece tokens of the training and
transfer features (special tokens always kept, :func:`nas.students.prune_counts`), writes the
reduced tokenizer (:func:`nas.students.save_pruned_tokenizer`) into the cache and tokenizes
every split again with it, so the student trains on exactly what the exported tokenizer gives
a user (plain ``AutoTokenizer``). The teacher's soft labels are per example, so they stay
those of the full-vocabulary features. Built once per process and K, and cached on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.cache import cached_folder, fingerprint
from nas.errors import ConfigError
from nas.students import PrunedVocab, prune_counts, save_pruned_tokenizer
from nas.tasks import Features
from nas.trial.data import encoded, tokenizer_digest
from nas.trial.teacher import features_digest

if TYPE_CHECKING:
    from nas.trial.run import Prepared


@dataclass(frozen=True)
class StudentInputs:
    """The tokenizer a student ships with and its features of each split."""

    tokenizer: Any
    train: Features
    eval: Features
    transfer: Features | None
    vocab: PrunedVocab | None = None  # None: the source's whole vocabulary

    def test(self, prepared: Prepared) -> Features:
        """The test split in this tokenizer; only scoring the front and confirmations read it."""
        cache = Path(prepared.config.cache_dir)
        return encoded(prepared.task, prepared.splits.test, self.tokenizer, prepared.data, cache)


_BUILT: dict[tuple[int, int], StudentInputs] = {}


def student_inputs(prepared: Prepared, size: int | None) -> StudentInputs:
    """The inputs of a student keeping ``size`` tokens (None or 0: the whole vocabulary).

    Raises:
        ConfigError: a pruned vocabulary in a question-answering study (its windows and the
            teacher's per-token logits are those of the whole vocabulary).
        InvalidConfig: ``size`` below the special tokens or above the tokenizer's vocabulary.
    """
    if not size:
        return StudentInputs(
            prepared.tokenizer,
            prepared.train_features,
            prepared.eval_features,
            prepared.transfer_features,
        )
    if prepared.task.kind == "qa":
        raise ConfigError(
            f"{prepared.config.source_file}: vocab_size = {size}: vocabulary pruning is for "
            "classification students (QA windows and the teacher's per-token logits are those "
            "of the whole vocabulary); drop vocab_size from the search space"
        )
    key = (id(prepared), size)
    if key not in _BUILT:
        _BUILT[key] = _pruned(prepared, size)
    return _BUILT[key]


def _pruned(prepared: Prepared, size: int) -> StudentInputs:
    tokenizer = prepared.tokenizer
    sets = [prepared.train_features]
    if prepared.transfer_features is not None:
        sets.append(prepared.transfer_features)
    counts = np.zeros(len(tokenizer), dtype=np.int64)  # (vocab,)
    for features in sets:
        counts += np.bincount(features.ids, minlength=len(tokenizer))
    vocab = prune_counts(tokenizer, counts, size)
    cache = Path(prepared.config.cache_dir)
    digest = fingerprint(
        tokenizer_digest(tokenizer), *(features_digest(f) for f in sets), str(size)
    )
    folder = cached_folder(
        cache / "tokenizers" / digest,
        "vocab.txt",
        lambda tmp: save_pruned_tokenizer(tokenizer, vocab, tmp),
    )
    from transformers import AutoTokenizer  # what a user of the exported student loads

    reduced = AutoTokenizer.from_pretrained(str(folder))
    task, data = prepared.task, prepared.data
    transfer = None
    if prepared.transfer_examples is not None:
        transfer = encoded(task, list(prepared.transfer_examples), reduced, data, cache)
    return StudentInputs(
        reduced,
        encoded(task, prepared.splits.train, reduced, data, cache),
        encoded(task, prepared.splits.eval, reduced, data, cache),
        transfer,
        vocab,
    )
