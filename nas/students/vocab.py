"""Vocabulary pruning: keep the K most frequent WordPiece tokens of the task's texts.

A student's word embeddings are most of its parameters (30,522 rows for BERT's vocabulary), and a
task uses few of them. :func:`prune_vocabulary` counts the tokens the teacher's tokenizer makes
of the given texts (training and transfer texts) and keeps the special tokens plus the most
frequent others, ``size`` in all (ties: the lower original id first; tokens that never occur are
not kept, so the vocabulary can come out smaller than ``size``). Kept tokens keep their original
order, so new ids are ranks of old ids; every other token maps to ``[UNK]``.

:func:`save_pruned_tokenizer` writes a BERT WordPiece tokenizer over the kept tokens with the
original's normalisation (lowercasing, accent stripping, Chinese characters, ``##`` prefix), so
that ``AutoTokenizer`` on that folder gives ``remap(original ids)`` for every text whose tokens
were all kept. For other text it can differ: where WordPiece no longer finds a whole word it
segments it into kept pieces (``playing`` -> ``play ##ing``) or, if a piece is missing, gives
one ``[UNK]`` for the whole word. A student that ships with the reduced tokenizer should
therefore be trained on what the reduced tokenizer produces (:func:`diverging_texts` counts the
texts where the two differ).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import InvalidConfig


@dataclass(frozen=True, eq=False)
class PrunedVocab:
    """The kept tokens and the map from original ids to pruned ones."""

    tokens: tuple[str, ...]
    """Kept tokens in their new id order (the original order)."""
    old_ids: np.ndarray
    """``(size,)`` int64: the original id of each kept token."""
    id_map: np.ndarray
    """``(original vocab,)`` int64: the new id of every original token (``[UNK]``'s if dropped)."""
    unk_id: int
    """The new id of ``[UNK]``."""

    @property
    def size(self) -> int:
        return len(self.tokens)

    def remap(self, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """New ids of original ``ids`` (any shape)."""
        return self.id_map[np.asarray(ids, dtype=np.int64)]


def token_counts(tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    """``(vocab,)`` int64: how often each token id occurs in ``texts`` (no special tokens)."""
    vocab = len(tokenizer)
    counts = np.zeros(vocab, dtype=np.int64)
    for start in range(0, len(texts), 4096):
        enc = tokenizer(list(texts[start : start + 4096]), add_special_tokens=False)["input_ids"]
        flat = np.fromiter((i for ids in enc for i in ids), dtype=np.int64)
        counts += np.bincount(flat, minlength=vocab)
    return counts


def prune_vocabulary(tokenizer: Any, texts: Sequence[str], size: int) -> PrunedVocab:
    """Keep the special tokens and the ``size - specials`` most frequent tokens of ``texts``.

    Raises:
        InvalidConfig: ``size`` larger than the tokenizer's vocabulary or smaller than its
            special tokens, or no ``[UNK]`` token to map the rest to.
    """
    check_vocabulary_size(tokenizer, size)
    return prune_counts(tokenizer, token_counts(tokenizer, texts), size)


def check_vocabulary_size(tokenizer: Any, size: int, where: str = "vocabulary size") -> None:
    """``size`` tokens can be kept of ``tokenizer``'s: at least its special tokens, at most all
    of them, and it has an ``[UNK]`` for the rest. Raises InvalidConfig with the range."""
    vocab = len(tokenizer)
    specials = set(tokenizer.all_special_ids)
    if tokenizer.unk_token_id is None:
        raise InvalidConfig("the tokenizer has no unknown token; vocabulary pruning needs [UNK]")
    if not len(specials) <= size <= vocab:
        raise InvalidConfig(
            f"{where} {size} must lie between the tokenizer's {len(specials)} special "
            f"tokens and its {vocab} tokens; choose a size in [{len(specials)}, {vocab}] "
            "(or 0: the whole vocabulary)"
        )


def prune_counts(tokenizer: Any, counts: np.ndarray, size: int) -> PrunedVocab:
    """:func:`prune_vocabulary` from token ``counts`` ``(vocab,)`` already made (for example
    from the ids of tokenized features)."""
    check_vocabulary_size(tokenizer, size)
    vocab = len(tokenizer)
    specials = sorted(set(tokenizer.all_special_ids))
    counts = np.array(counts, dtype=np.int64, copy=True)
    counts[specials] = -1  # kept anyway, not ranked
    order = np.lexsort((np.arange(vocab), -counts))  # most frequent first, then lower id
    frequent = [int(i) for i in order[: size - len(specials)] if counts[i] > 0]
    old_ids = np.array(sorted({*specials, *frequent}), dtype=np.int64)
    new_of_old = {int(old): new for new, old in enumerate(old_ids)}
    unk_id = new_of_old[int(tokenizer.unk_token_id)]
    id_map = np.full(vocab, unk_id, dtype=np.int64)
    id_map[old_ids] = np.arange(len(old_ids))
    tokens = tuple(tokenizer.convert_ids_to_tokens(old_ids.tolist()))
    return PrunedVocab(tokens=tokens, old_ids=old_ids, id_map=id_map, unk_id=unk_id)


def prune_embeddings(embeddings: torch.Tensor, vocab: PrunedVocab) -> torch.Tensor:
    """The rows of ``embeddings`` ``(original vocab, d)`` of the kept tokens, ``(size, d)``."""
    if embeddings.shape[0] != len(vocab.id_map):
        raise InvalidConfig(
            f"embeddings have {embeddings.shape[0]} rows but the pruned vocabulary was made "
            f"from a tokenizer of {len(vocab.id_map)} tokens; use that tokenizer's model"
        )
    return embeddings[torch.from_numpy(vocab.old_ids)].clone()


@dataclass(frozen=True)
class UnknownCount:
    """How many tokens of some texts a pruned vocabulary turns into ``[UNK]``."""

    tokens: int
    """All tokens of the texts (no special tokens)."""
    new_unknown: int
    """Tokens that were not ``[UNK]`` before and map to it now."""

    @property
    def fraction(self) -> float:
        return self.new_unknown / self.tokens if self.tokens else 0.0


def unknown_count(tokenizer: Any, texts: Sequence[str], vocab: PrunedVocab) -> UnknownCount:
    """Count the tokens of ``texts`` that :meth:`PrunedVocab.remap` sends to ``[UNK]``."""
    counts = token_counts(tokenizer, texts)
    dropped = vocab.id_map == vocab.unk_id
    dropped[int(tokenizer.unk_token_id)] = False  # already unknown
    return UnknownCount(tokens=int(counts.sum()), new_unknown=int(counts[dropped].sum()))


def _wordpiece_settings(tokenizer: Any) -> dict[str, Any]:
    """The original's normalisation and WordPiece settings, read from its fast backend."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = json.loads(backend.to_str()) if backend is not None else {}
    normalizer, model = state.get("normalizer") or {}, state.get("model") or {}
    if normalizer.get("type") != "BertNormalizer" or model.get("type") != "WordPiece":
        raise InvalidConfig(
            f"{type(tokenizer).__name__} is not a fast BERT WordPiece tokenizer (normalizer "
            f"{normalizer.get('type')!r}, model {model.get('type')!r}); vocabulary pruning "
            "writes BERT WordPiece tokenizers only"
        )
    fixed: dict[str, tuple[Any, Any]] = {"clean_text": (normalizer.get("clean_text"), True)}
    fixed["continuing_subword_prefix"] = (model.get("continuing_subword_prefix"), "##")
    fixed["max_input_chars_per_word"] = (model.get("max_input_chars_per_word"), 100)
    other = [f"{k}={v!r}" for k, (v, expected) in fixed.items() if v != expected]
    if other:
        raise InvalidConfig(
            f"the tokenizer's {', '.join(other)} differ from BERT's defaults, which a pruned "
            "BertTokenizer would use; prune only standard BERT WordPiece tokenizers"
        )
    return {
        "do_lower_case": normalizer["lowercase"],
        "strip_accents": normalizer["strip_accents"],
        "tokenize_chinese_chars": normalizer["handle_chinese_chars"],
    }


def save_pruned_tokenizer(tokenizer: Any, vocab: PrunedVocab, folder: Path) -> Any:
    """Write a BERT WordPiece tokenizer over the kept tokens to ``folder``; return it.

    Same normalisation, special tokens and maximum length as ``tokenizer``; ``AutoTokenizer``
    reads the folder back.
    """
    from transformers import BertTokenizer  # the fast (tokenizers) one in transformers 5

    settings = _wordpiece_settings(tokenizer)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in vocab.tokens))
    special = {
        name: getattr(tokenizer, name)
        for name in ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
        if getattr(tokenizer, name, None) is not None
    }
    reduced = BertTokenizer(
        vocab={t: i for i, t in enumerate(vocab.tokens)},
        model_max_length=tokenizer.model_max_length,
        **settings,
        **special,
    )
    missing = [t for t in special.values() if t not in reduced.get_vocab()]
    assert not missing, f"special tokens {missing} missing from the pruned vocabulary"
    reduced.save_pretrained(str(folder))
    return reduced


def diverging_texts(tokenizer: Any, reduced: Any, texts: Sequence[str], vocab: PrunedVocab) -> int:
    """How many of ``texts`` the reduced tokenizer encodes otherwise than ``remap`` does."""
    original = tokenizer(list(texts))["input_ids"]
    pruned = reduced(list(texts))["input_ids"]
    return sum(
        not np.array_equal(vocab.remap(a), np.asarray(b))
        for a, b in zip(original, pruned, strict=True)
    )
