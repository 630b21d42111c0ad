"""Word-order sensitivity of a teacher (Pham et al. 2020, "Out of Order"), and the family it hints.

Of the examples the teacher classifies correctly, each is copied with its words shuffled and the
teacher's accuracy ``p`` (%) on the copies is read; ``WOS = (100 - p) / 50``. A teacher that
ignores word order keeps ``p = 100`` (WOS 0); a binary one reduced to chance by shuffling gets
``p = 50`` (WOS 1).

* **Shuffling unit: words**, the text's whitespace-separated pieces (punctuation stays attached
  to its word, as it is written), permuted uniformly by a NumPy generator seeded with ``seed``;
  a text and its pair are shuffled separately. A permutation can equal the original order (a
  one-word text always does); such copies count as they are.
* **Several shuffles averaged**: ``shuffles`` independent copies per example; ``p`` is the
  accuracy over all copies.
* **More than two labels**: nas keeps the binary ``/ 50`` for every label count, as the seed
  blogs' Emotion figure (6 labels) reads; with k labels chance level is then
  ``(100 - 100 / k) / 50`` (1.67 for Emotion), so WOS can exceed 1.

The suggested family reads the seed blogs' figures, "Emotion 0.14 -> bow, SST-2 0.34 ->
BiLSTM, CoLA 0.99 -> transformer"; the cut points between them (:data:`BOW_BELOW` 0.2,
:data:`BILSTM_UP_TO` 0.5) are nas's reading of those three points, not a published rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import DataError
from nas.tasks import Task, TextExample

BOW_BELOW = 0.2  # WOS below this: a bag-of-words student (Emotion 0.14)
BILSTM_UP_TO = 0.5  # WOS up to this: a BiLSTM (SST-2 0.34); above: a transformer (CoLA 0.99)
Predict = Callable[[list[TextExample]], np.ndarray]  # examples -> (n,) predicted label ids


@dataclass(frozen=True)
class WordOrderSensitivity:
    """A teacher's WOS and what it was measured on."""

    wos: float
    """``(100 - p) / 50``."""
    p: float
    """Accuracy (%) on the shuffled copies of the correctly classified examples."""
    correct: int
    """Examples the teacher classified correctly (each shuffled ``shuffles`` times)."""
    examples: int
    """Examples scored before shuffling."""
    shuffles: int
    """Shuffled copies per correct example."""
    seed: int
    """Seed of the sample and the shuffles."""

    @property
    def family(self) -> str:
        return suggest_family(self.wos)


def suggest_family(wos: float) -> str:
    """``bow`` below 0.2, ``bilstm`` up to 0.5, ``transformer`` above (nas's cut points)."""
    if wos < BOW_BELOW:
        return "bow"
    return "bilstm" if wos <= BILSTM_UP_TO else "transformer"


def shuffle_words(text: str, rng: np.random.Generator) -> str:
    """``text``'s whitespace-separated words in a uniformly random order."""
    words = text.split()
    return " ".join(words[i] for i in rng.permutation(len(words)))


def shuffled(example: TextExample, rng: np.random.Generator) -> TextExample:
    pair = None if example.text_pair is None else shuffle_words(example.text_pair, rng)
    return dataclasses.replace(example, text=shuffle_words(example.text, rng), text_pair=pair)


def word_order_sensitivity(
    predict: Predict,
    examples: Sequence[TextExample],
    seed: int,
    shuffles: int = 3,
    samples: int | None = None,
) -> WordOrderSensitivity:
    """WOS of the classifier ``predict`` on ``examples`` (a seeded sample of ``samples``).

    Raises:
        DataError: no examples, a bad ``shuffles`` / ``samples``, or no example classified
            correctly (nothing to shuffle).
    """
    if shuffles < 1 or (samples is not None and samples < 1):
        raise DataError(f"shuffles={shuffles}, samples={samples}: both must be >= 1")
    rng = np.random.default_rng(seed)
    chosen = list(examples)
    if samples is not None and samples < len(chosen):
        chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), samples, replace=False))]
    if not chosen:
        raise DataError("no examples to measure word-order sensitivity on")
    labels = np.array([e.label for e in chosen])
    right = [e for e, ok in zip(chosen, predict(chosen) == labels, strict=True) if ok]
    if not right:
        raise DataError(
            f"the teacher classifies none of {len(chosen)} examples correctly; WOS needs a "
            "fine-tuned teacher (nas teacher train STUDY.yaml)"
        )
    copies = [shuffled(e, rng) for _ in range(shuffles) for e in right]
    hits = predict(copies) == np.array([e.label for e in copies])
    p = 100.0 * float(hits.mean())
    return WordOrderSensitivity(
        wos=(100.0 - p) / 50.0,
        p=p,
        correct=len(right),
        examples=len(chosen),
        shuffles=shuffles,
        seed=seed,
    )


def teacher_predict(
    teacher: str | Path,
    task: Task,
    data: Any,
    num_labels: int,
    device: str = "auto",
    batch_size: int = 64,
) -> Predict:
    """A :data:`Predict` running the teacher in ``teacher`` (its tokenizer, ``task.encode``)."""
    from nas.trial.loop import predict, resolve_device
    from nas.trial.teacher import load_teacher, load_tokenizer

    model = load_teacher(str(teacher), "classification", num_labels)
    tokenizer = load_tokenizer(str(teacher), "teacher")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device_ = resolve_device(device)

    def run(examples: list[TextExample]) -> np.ndarray:
        features = task.encode(examples, tokenizer, data)
        logits = predict(model, features, "classification", pad_id, batch_size, device_)
        return logits.argmax(axis=-1)

    return run


def teacher_wos(
    teacher: str | Path,
    task: Task,
    examples: Sequence[TextExample],
    data: Any,
    num_labels: int,
    seed: int,
    shuffles: int = 3,
    samples: int | None = None,
    device: str = "auto",
) -> WordOrderSensitivity:
    """WOS of the fine-tuned teacher in ``teacher`` on a classification task's examples.

    Raises:
        DataError: a QA task or examples, or see :func:`word_order_sensitivity`.
        CheckpointError: the teacher cannot be loaded.
    """
    if task.kind != "classification" or not all(isinstance(e, TextExample) for e in examples):
        raise DataError(
            f"word-order sensitivity is defined for classification; task {task.name} is "
            f"{task.kind}: run it on a classification study"
        )
    run = teacher_predict(teacher, task, data, num_labels, device)
    return word_order_sensitivity(run, examples, seed, shuffles, samples)
