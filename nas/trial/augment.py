"""Tang et al. (2019) data augmentation of classification texts, at a tokenizer's word level.

Tang, Lu, Liu, Mou, Vechtomova & Lin, *Distilling Task-Specific Knowledge from BERT into Simple
Neural Networks*, section 3.3: each word is masked with ``p_mask`` or, with ``p_replace``,
replaced by a word of the same kind (the two are exclusive); then, with ``p_ngram``, only an
n-gram of the result is kept (``n`` uniform in 1..5). ``copies`` draws per example, duplicates
(and copies equal to the original) discarded, so an example yields *up to* ``copies`` texts.

Departure from the paper: Tang et al. swap a word for another of the same part-of-speech tag,
which needs a tagger and a word list. nas uses no external resource: a word's replacement is
drawn uniformly from its ``k`` nearest tokens by cosine similarity in the source checkpoint's
own word-embedding matrix (:func:`neighbour_table`; TinyBERT draws from the masked-LM head
instead). Embedding neighbours keep the kind of word (``good`` -> ``great``, ``excellent``, and
``bad``: antonyms are close too, which is harmless here because the teacher labels every copy).

A *word* is what the tokenizer's pre-tokenizer splits off (``word_ids`` of a fast tokenizer),
with its character span in the original text, so untouched words keep their spelling and
spacing. Only words that are one whole WordPiece token can be replaced (a word split into
``##`` pieces has no row in the table and stays as it is); any word can be masked (one
``[MASK]`` for the whole word). Sentence pairs are augmented per side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from nas.cache import cached_folder, fingerprint
from nas.errors import ConfigError
from nas.progress import Sink, Ticker
from nas.tasks import TextExample

UNLABELLED = -1  # the label of a transfer example: it trains on the teacher's soft labels only
MAX_NGRAM = 5  # n-gram sampling keeps n words, n uniform in 1..MAX_NGRAM (Tang et al.)
_TABLE_VERSION = "1"  # bump when neighbour_table's rule changes: old cache entries are not reused


@dataclass(frozen=True)
class AugmentSettings:
    """How many augmented copies to make, and how.

    The probabilities are the paper's (p_mask = p_pos = 0.1, p_ng = 0.25). The paper makes
    n_iter = 20 copies per SST-2 example; nas defaults to 10 (the paper's value for its larger
    tasks): every copy is a training example of every trial, so each epoch of a search trial
    costs ``1 + copies`` times the labelled set's, and the teacher labels each copy once.
    """

    p_mask: float = 0.1  # a word becomes the tokenizer's mask token
    p_replace: float = 0.1  # a word becomes one of its `neighbours` nearest tokens (paper: p_pos)
    p_ngram: float = 0.25  # the copy is cut to an n-gram of its words, n uniform in 1..5
    copies: int = 10  # draws per example (the paper's n_iter); duplicates are dropped
    neighbours: int = 10  # k: replacement candidates per word, nearest first

    def __post_init__(self) -> None:
        for name in ("p_mask", "p_replace", "p_ngram"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"augmentation {name} = {value}; a probability in [0, 1]")
        if self.p_mask + self.p_replace > 1.0:
            raise ConfigError(
                f"augmentation p_mask + p_replace = {self.p_mask + self.p_replace:g} > 1; a word "
                "is masked or replaced, never both: lower one of them"
            )
        for name in ("copies", "neighbours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"augmentation {name} = {value!r}; a whole number >= 1")


# ----------------------------------------------------------------------------- neighbour tables


def candidate_tokens(tokenizer: Any, vocab_size: int) -> np.ndarray:
    """``(vocab_size,)`` bool: the tokens that are whole words, the rows and the candidates of
    a neighbour table. Left out: special tokens, ``##`` subword pieces, ``[unused..]``-style
    bracketed tokens, tokens without a letter or digit (punctuation) and ids the tokenizer lacks.
    """
    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size:
        raise ConfigError(
            f"the tokenizer has {len(vocab)} tokens but the embedding matrix {vocab_size} rows; "
            "use the tokenizer of the checkpoint whose embeddings give the neighbours"
        )
    special = set(tokenizer.all_special_ids)
    keep = np.zeros(vocab_size, dtype=bool)
    for token, index in vocab.items():
        keep[index] = (
            index not in special
            and not token.startswith("##")
            and not (len(token) > 2 and token[0] == "[" and token[-1] == "]")
            and any(c.isalnum() for c in token)
        )
    return keep


def neighbour_table(
    embeddings: torch.Tensor,
    candidates: np.ndarray,
    k: int,
    chunk_rows: int = 512,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """The ``k`` nearest candidate tokens of every candidate token, by cosine similarity.

    Vectors are centred on the candidates' mean first: a BERT source has its segment-0 vector
    folded into every row (``nas.students`` does), a shared offset that cosine would count as
    similarity. Rows are compared ``chunk_rows`` at a time, so memory is
    ``chunk_rows x candidates`` scores, never ``vocab x vocab``.

    Args:
        embeddings: ``(vocab, dim)`` word-embedding matrix.
        candidates: ``(vocab,)`` bool from :func:`candidate_tokens`.
        k: neighbours per token.
        chunk_rows: rows compared at once.
        rows: token ids to find neighbours for (the words of the texts to augment); default
            every candidate. Non-candidates among them get no neighbours.

    Returns:
        ``(vocab, k)`` int32 token ids, nearest first; rows not computed are all ``-1``.
    """
    vocab = embeddings.shape[0]
    if candidates.shape != (vocab,):
        raise ValueError(f"candidates has shape {candidates.shape}, expected ({vocab},)")
    ids = torch.from_numpy(np.flatnonzero(candidates))  # (n,)
    if len(ids) < k + 1:
        raise ConfigError(f"{len(ids)} whole-word tokens cannot give {k} neighbours each")
    with torch.no_grad():
        vectors = embeddings[ids].to(torch.float32)  # (n, dim)
        vectors = torch.nn.functional.normalize(vectors - vectors.mean(0), dim=1)
        wanted = np.arange(len(ids))  # positions in ids of the rows to compute
        if rows is not None:
            position = np.full(vocab, -1)
            position[ids.numpy()] = np.arange(len(ids))
            wanted = np.unique(position[np.asarray(rows, dtype=np.int64)])
            wanted = wanted[wanted >= 0]
        table = np.full((vocab, k), -1, dtype=np.int32)
        for start in range(0, len(wanted), chunk_rows):
            chunk = torch.from_numpy(wanted[start : start + chunk_rows])  # (c,)
            scores = vectors[chunk] @ vectors.T  # (c, n)
            scores[torch.arange(len(chunk)), chunk] = -float("inf")  # not its own neighbour
            nearest = scores.topk(k, dim=1).indices  # (c, k) positions in ids
            table[ids[chunk].numpy()] = ids[nearest].numpy()
    return table


def cached_neighbour_table(
    cache_dir: Path, embeddings: torch.Tensor, tokenizer: Any, k: int
) -> np.ndarray:
    """:func:`neighbour_table` of the tokenizer's whole words, computed once per content.

    Stored under ``<cache_dir>/neighbours/<key>/``; the key is the sha256 of the matrix's
    bytes and of the candidate mask (so the tokenizer's vocabulary), ``k`` and the rule's
    version: another checkpoint or vocabulary computes a new table, the same ones reuse it.
    """
    candidates = candidate_tokens(tokenizer, embeddings.shape[0])
    folder = cache_dir / "neighbours" / table_key(embeddings, candidates, k)

    def build(tmp: Path) -> None:
        np.save(tmp / "neighbours.npy", neighbour_table(embeddings, candidates, k))

    cached_folder(folder, "neighbours.npy", build)
    return np.load(folder / "neighbours.npy")


def table_key(embeddings: torch.Tensor, candidates: np.ndarray, k: int) -> str:
    """The cache key of a neighbour table: its inputs' content."""
    matrix = embeddings.detach().to(torch.float32).contiguous().cpu().numpy()
    digest = hashlib.sha256(matrix.tobytes()).hexdigest()
    mask = hashlib.sha256(np.packbits(candidates).tobytes()).hexdigest()
    return fingerprint(digest, str(matrix.shape), mask, str(k), _TABLE_VERSION)


# ----------------------------------------------------------------------------- augmentation


class _Word(NamedTuple):
    start: int  # character span in the text
    end: int
    token: int  # the word's token id when it is one whole token, else -1


def _words(texts: Sequence[str], tokenizer: Any) -> list[list[_Word]]:
    """Each text's words, with their character spans, by the tokenizer's own pre-tokenizer."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"augmentation needs a fast tokenizer (word ids and offsets); got "
            f"{type(tokenizer).__name__}"
        )
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for i, (ids, offsets) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], strict=True)):
        spans: dict[int, list[Any]] = {}  # word index -> [start, end, token ids]
        for word, token, (start, end) in zip(enc.word_ids(i), ids, offsets, strict=True):
            if word is not None:
                span = spans.setdefault(word, [start, end, []])
                span[1] = end
                span[2].append(token)
        out.append([_Word(s, e, t[0] if len(t) == 1 else -1) for s, e, t in spans.values()])
    return out


def _copy(
    text: str,
    words: list[_Word],
    draws: _Draws,
    copy: int,
    table: np.ndarray,
    mask: str,
    vocab: list[str],
    settings: AugmentSettings,
) -> str:
    """Augmented copy number ``copy`` of ``text``, from its row of ``draws``."""
    if not words:
        return text
    u, pick = draws.u[copy], draws.pick[copy]  # (n_words,) uniform, (n_words,) neighbour rank
    pieces = []
    for j, word in enumerate(words):
        piece = text[word.start : word.end]
        if u[j] < settings.p_mask:
            piece = mask
        elif u[j] < settings.p_mask + settings.p_replace and word.token >= 0:
            row = table[word.token]
            row = row[row >= 0]
            if len(row):
                piece = vocab[int(row[pick[j] % len(row)])]
        pieces.append(piece)
    first, last = 0, len(words)
    if draws.ngram[copy] < settings.p_ngram:
        n = min(int(draws.n[copy]), len(words))
        first = int(draws.start[copy] * (len(words) - n + 1))
        last = first + n
    out = [pieces[first]]
    for j in range(first + 1, last):
        out.append(text[words[j - 1].end : words[j].start] + pieces[j])  # the original spacing
    return "".join(out).strip()


def _tokens(tokenizer: Any) -> list[str]:
    """Token strings by id."""
    pairs = tokenizer.get_vocab().items()
    tokens = [""] * (max(index for _, index in pairs) + 1)
    for token, index in pairs:
        tokens[index] = token
    return tokens


class _Draws(NamedTuple):
    """The random numbers of one side of an example's copies, drawn at once."""

    u: np.ndarray  # (copies, n_words) uniform: mask below p_mask, else replace below + p_replace
    pick: np.ndarray  # (copies, n_words) int: which neighbour (modulo how many the word has)
    ngram: np.ndarray  # (copies,) uniform: cut to an n-gram below p_ngram
    n: np.ndarray  # (copies,) int in 1..MAX_NGRAM
    start: np.ndarray  # (copies,) uniform: where the n-gram starts

    @classmethod
    def draw(cls, rng: np.random.Generator, copies: int, n_words: int) -> _Draws:
        shape = (copies, n_words)
        return cls(
            rng.random(shape),
            rng.integers(0, 1 << 30, shape),
            rng.random(copies),
            rng.integers(1, MAX_NGRAM + 1, copies),
            rng.random(copies),
        )


def augment(
    examples: Sequence[TextExample],
    tokenizer: Any,
    table: np.ndarray,
    settings: AugmentSettings,
    seed: int,
    progress: Sink | None = None,
) -> list[TextExample]:
    """Up to ``settings.copies`` augmented copies of each example, labelled :data:`UNLABELLED`.

    Copies of example ``i`` come from ``numpy.random.default_rng([seed, i])``: the same
    examples and seed give the same copies in any process. A pair's two sides are augmented
    independently. Copies equal to the original or to an earlier copy are dropped.

    Args:
        examples: the texts to augment (their labels are not used).
        tokenizer: a fast tokenizer; its words are the unit, its mask token masks.
        table: ``(vocab, k)`` neighbour ids from :func:`neighbour_table` (``-1``: none).
        settings: probabilities, copies, and ``neighbours`` (the table's first k are used).
        seed: the augmentation seed.
        progress: where progress lines go (a bar on a terminal), None for none.
    """
    mask = tokenizer.mask_token
    if mask is None:
        raise ConfigError(f"{type(tokenizer).__name__} has no mask token; augmentation masks")
    table = table[:, : settings.neighbours]
    vocab = _tokens(tokenizer)
    texts = _words([e.text for e in examples], tokenizer)
    pairs = _words([e.text_pair or "" for e in examples], tokenizer)
    out: list[TextExample] = []
    with Ticker(progress, "augmentation", len(examples), "examples") as ticker:
        for i, example in enumerate(examples):
            rng = np.random.default_rng([seed, i])
            draws = _Draws.draw(rng, settings.copies, len(texts[i]))
            pair_draws = _Draws.draw(rng, settings.copies, len(pairs[i]))
            seen = {(example.text.strip(), (example.text_pair or "").strip())}
            for c in range(settings.copies):
                args = (table, mask, vocab, settings)
                text = _copy(example.text, texts[i], draws, c, *args)
                pair = example.text_pair
                if pair is not None:
                    pair = _copy(pair, pairs[i], pair_draws, c, *args)
                if (text, pair or "") not in seen:  # copies are stripped of outer spaces
                    seen.add((text, pair or ""))
                    out.append(TextExample(text, UNLABELLED, pair))
            ticker.update()
    return out
