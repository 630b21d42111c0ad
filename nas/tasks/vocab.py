"""Build WordPiece tokenizers from word lists, for offline tasks (synthetic_qa) and tests.

A real study uses its checkpoint's tokenizer; this exists so that everything can run where no
model hub is reachable.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_CHARS = string.ascii_lowercase + string.digits


def build_tokenizer(words: Iterable[str], folder: Path | None = None) -> PreTrainedTokenizerBase:
    """An uncased WordPiece tokenizer whose vocabulary is the special tokens, single characters,
    their ``##`` continuations, punctuation, and ``words`` (deduplicated, order kept).

    Any lowercase ASCII text tokenizes without ``[UNK]`` (it falls back to characters). Saved to
    ``folder`` when given (``vocab.txt`` and tokenizer files) for ``from_pretrained``.
    """
    vocab: dict[str, int] = {}
    pieces = [*SPECIAL_TOKENS, *_CHARS, *string.punctuation, *(f"##{c}" for c in _CHARS)]
    for token in [*pieces, *(w.lower() for w in words)]:
        if token and token not in vocab:
            vocab[token] = len(vocab)
    from transformers import BertTokenizer  # only when a tokenizer is built

    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
        tokenizer.save_pretrained(str(folder))
    return tokenizer


def frequent_words(texts: Iterable[str], limit: int) -> list[str]:
    """The ``limit`` most frequent lowercase words in ``texts`` (for a test vocabulary)."""
    counts = Counter(w for t in texts for w in re.findall(r"[a-z0-9]+", t.lower()))
    return [w for w, _ in counts.most_common(limit)]
