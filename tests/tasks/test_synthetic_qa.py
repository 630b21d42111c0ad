"""The synthetic SQuAD 2.0-style generator: deterministic, exact spans, closed vocabulary."""

from __future__ import annotations

import re

import pytest

from nas.config import SyntheticConfig
from nas.tasks.base import QAExample
from nas.tasks.synthetic_qa import generate, invented_words, vocabulary

Generated = tuple[list[QAExample], list[QAExample], list[QAExample]]

SMALL = SyntheticConfig(n_train=600, n_eval=200, n_test=100, seed=0, unanswerable_fraction=0.5)


@pytest.fixture(scope="module")
def small() -> Generated:
    return generate(SMALL)


def test_sizes_and_types(small: Generated) -> None:
    train, evals, test = small
    assert (len(train), len(evals), len(test)) == (600, 200, 100)
    assert all(isinstance(e, QAExample) for e in train + evals + test)


def test_the_three_splits_share_no_context(small: Generated) -> None:
    train, evals, test = ({e.context for e in split} for split in small)
    assert not train & evals and not train & test and not evals & test


def test_same_seed_same_data_other_seed_other_data(
    small: Generated,
) -> None:
    assert generate(SMALL) == small
    other = generate(SyntheticConfig(n_train=600, n_eval=200, seed=1))
    assert other[0] != small[0] and other[1] != small[1]
    assert vocabulary(0) == vocabulary(0) != vocabulary(1)


def test_answer_starts_point_at_the_answers(
    small: Generated,
) -> None:
    for example in small[0] + small[1] + small[2]:
        assert len(example.answers) == len(example.answer_starts)
        for answer, start in zip(example.answers, example.answer_starts, strict=True):
            assert example.context[start : start + len(answer)] == answer
            assert start == 0 or example.context[start - 1] == " "


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5])
def test_unanswerable_fraction(fraction: float) -> None:
    train, evals, test = generate(
        SyntheticConfig(n_train=400, n_eval=100, n_test=100, unanswerable_fraction=fraction)
    )
    for split in (train, evals, test):
        share = sum(e.is_impossible for e in split) / len(split)
        assert share == pytest.approx(fraction, abs=0.01)


def test_every_word_is_in_the_vocabulary(small: Generated) -> None:
    words = set(vocabulary(SMALL.seed))
    for example in small[0] + small[1] + small[2]:
        text = f"{example.context} {example.question}"
        assert set(text.split()) <= words
        assert re.fullmatch(r"[a-z .?]+", text)


def test_vocabulary_tokenizes_to_single_tokens() -> None:
    from nas.tasks.vocab import build_tokenizer

    tokenizer = build_tokenizer(vocabulary())
    for word in vocabulary():
        assert len(tokenizer.tokenize(word)) == 1, word


def test_invented_words_are_distinct_across_categories() -> None:
    categories = invented_words(0)
    flat = [w for words in categories.values() for w in words]
    assert len(flat) == len(set(flat))


def test_ids_unique_titles_group_contexts(small: Generated) -> None:
    examples = small[0] + small[1] + small[2]
    assert len({e.id for e in examples}) == len(examples)
    contexts: dict[str, str] = {}
    for example in examples:
        assert contexts.setdefault(example.title, example.context) == example.context
        assert example.title.startswith("synthetic-")


def test_contexts_are_short(small: Generated) -> None:
    assert max(len(e.context.split()) for e in small[0] + small[1] + small[2]) < 60


def test_unanswerable_questions_are_not_stated(
    small: Generated,
) -> None:
    """An unanswerable question's person is absent, or its relation is not stated for them."""
    stated = {"live": "lives", "work": "works", "own": "owns", "eat": "eat", "play": "plays"}
    hard = 0
    for example in small[0]:
        if not example.is_impossible:
            continue
        person, verb = example.question.split()[2], example.question.split()[3]
        sentences = [s.split() for s in example.context.split(" . ")]
        about = [s for s in sentences if s[0] == person]
        assert not any(stated[verb] in s for s in about)
        hard += bool(about)
    assert hard > 0  # some ask about a person who is there
