"""Word-order sensitivity where the answer is known: order-blind models 0, order-reading > 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.order_free_teacher import WORDS, save_teacher

from nas.config import DataConfig
from nas.errors import DataError
from nas.tasks import TextExample, get_task
from nas.trial import suggest_family, teacher_wos, word_order_sensitivity


def _examples(n: int, seed: int = 0) -> list[TextExample]:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS[:10], size=int(rng.integers(3, 8)))) for _ in range(n)]
    # label 1 iff the first word is w0..w4: readable only in the original order
    return [TextExample(t, int(t.split()[0] in WORDS[:5])) for t in texts]


def _first_word(examples: list[TextExample]) -> np.ndarray:
    return np.array([int(e.text.split()[0] in WORDS[:5]) for e in examples])


def _bag(examples: list[TextExample]) -> np.ndarray:
    # any function of the word multiset: order-invariant
    return np.array([int(sorted(e.text.split())[0] in WORDS[:5]) for e in examples])


def test_order_blind_is_zero_and_first_word_is_positive() -> None:
    examples = _examples(200)
    first = word_order_sensitivity(_first_word, examples, seed=0, shuffles=3)
    assert first.correct == 200 and first.examples == 200  # it is the labelling rule
    assert first.p < 90 and first.wos == pytest.approx((100 - first.p) / 50) and first.wos > 0.2
    bag = word_order_sensitivity(_bag, examples, seed=0)
    assert bag.correct < 200 and bag.p == 100.0 and bag.wos == 0.0
    again = word_order_sensitivity(_first_word, examples, seed=0, shuffles=3)
    assert again == first  # seeded
    assert word_order_sensitivity(_first_word, examples, seed=1).p != first.p
    sample = word_order_sensitivity(_first_word, examples, seed=0, samples=50)
    assert sample.examples == 50


def test_teacher_folder(tmp_path: Path) -> None:
    examples = _examples(60)
    task, data = get_task("sst2"), DataConfig(max_seq_length=32)
    blind = save_teacher(tmp_path / "blind", order_free=True)
    result = teacher_wos(blind, task, examples, data, 2, seed=0, device="cpu")
    assert result.correct > 0 and result.wos == 0.0
    reading = save_teacher(tmp_path / "reading", order_free=False)
    result = teacher_wos(reading, task, examples, data, 2, seed=0, device="cpu")
    assert result.correct > 0 and result.wos > 0.0
    with pytest.raises(DataError, match="classification; task squad_v2 is qa"):
        teacher_wos(blind, get_task("squad_v2"), examples, data, 2, seed=0)


def test_suggested_family_and_bad_input() -> None:
    assert [suggest_family(w) for w in (0.14, 0.34, 0.99)] == ["bow", "bilstm", "transformer"]
    assert [suggest_family(w) for w in (0.2, 0.5, 0.51)] == ["bilstm", "bilstm", "transformer"]
    with pytest.raises(DataError, match="none of 3 examples"):
        word_order_sensitivity(lambda e: 1 - _first_word(e), _examples(3), seed=0)
    with pytest.raises(DataError, match="shuffles=0"):
        word_order_sensitivity(_first_word, _examples(3), seed=0, shuffles=0)
