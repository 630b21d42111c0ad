"""The training loop: batching, padding, determinism on CPU, typed failures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from nas.config import TeacherTrainConfig, TrainingConfig
from nas.errors import TrialTimeout
from nas.params import TrainingRecipe
from nas.tasks.base import Features
from nas.trial.loop import Distillation, batch_indices, collate, predict, train
from nas.trial.losses import MASKED_LOGIT

RECIPE = TrainingRecipe(
    temperature=2.0,
    alpha=0.5,
    learning_rate=1e-3,
    warmup_ratio=0.1,
    weight_decay=0.01,
    batch_size=4,
    epochs=2,
)


def features(n: int = 24, seed: int = 0) -> Features:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, size=n)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = rng.integers(5, 60, size=int(starts[-1])).astype(np.int32)
    return Features(
        ids=ids,
        type_ids=np.zeros_like(ids, dtype=np.int8),
        starts=starts,
        labels=rng.integers(0, 3, size=n).astype(np.int64),
    )


def model(seed: int = 0) -> DistilBertForSequenceClassification:
    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=64, dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=32
    )
    config.num_labels = 3
    return DistilBertForSequenceClassification(config)


def test_length_grouped_batches_cover_every_feature_once() -> None:
    lengths = np.arange(100) % 17
    batches = batch_indices(lengths, 8, np.random.default_rng(0), grouped=True)
    assert sorted(np.concatenate(batches).tolist()) == list(range(100))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean(
        [
            np.ptp(lengths[b])
            for b in batch_indices(lengths, 8, np.random.default_rng(0), grouped=False)
        ]
    )
    assert spread < random_spread  # grouping pads less


def test_collate_pads_to_the_longest_and_masks_teacher_logits() -> None:
    f = features()
    index = np.array([0, 1, 2])
    qa_teacher = np.ones((len(f.ids), 2), dtype=np.float32)
    batch = collate(f, index, pad_id=0, kind="qa", teacher=qa_teacher)
    width = int(f.lengths()[index].max())
    assert batch["input_ids"].shape == (3, width)
    for row, i in enumerate(index):
        n = int(f.lengths()[i])
        assert batch["attention_mask"][row].sum() == n
        assert (
            batch["input_ids"][row, :n].tolist() == f.ids[f.starts[i] : f.starts[i + 1]].tolist()
        )
        assert torch.all(batch["teacher"][row, n:] == MASKED_LOGIT)
        assert torch.all(batch["teacher"][row, :n] == 1.0)


def test_collate_gives_classification_rows_their_whole_teacher_logits() -> None:
    """A sentence shorter than the label count (emotion: 6 labels, "i feel x" is 5 tokens)."""
    f = features()
    index = np.argsort(f.lengths())[:4]  # the shortest, 3 tokens
    teacher = np.arange(len(f) * 6, dtype=np.float32).reshape(len(f), 6)
    batch = collate(f, index, pad_id=0, kind="classification", teacher=teacher)
    assert batch["teacher"].tolist() == teacher[index].tolist()


def test_training_is_deterministic_on_cpu() -> None:
    f = features()
    teacher = np.random.default_rng(1).normal(size=(len(f), 3)).astype(np.float32)
    config = TrainingConfig(device="cpu", seed=3)
    results = []
    for _ in range(2):
        m = model()
        soft = Distillation(teacher, RECIPE.alpha, RECIPE.temperature)
        result = train(m, f, RECIPE, config, "classification", 0, seed=3, distill=soft)
        results.append(
            (result.final_loss, predict(m, f, "classification", 0, 8, torch.device("cpu")))
        )
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert result.steps == 12 and result.samples == 48  # 24 features / 4 per batch x 2 epochs


def test_training_reduces_the_loss_and_respects_max_steps() -> None:
    f = features(64)
    m = model()
    config = TrainingConfig(device="cpu", max_steps=5)
    recipe = dataclasses.replace(RECIPE, epochs=3)
    result = train(m, f, recipe, config, "classification", 0, seed=0)
    assert result.steps == 5
    long = train(
        model(),
        f,
        dataclasses.replace(RECIPE, epochs=30, learning_rate=3e-3),
        TrainingConfig(device="cpu"),
        "classification",
        0,
        seed=0,
    )
    assert long.final_loss < 0.5  # random labels of 64 features can be memorized


def test_deadline_in_the_past_is_a_timeout() -> None:
    with pytest.raises(TrialTimeout, match="trial timeout"):
        train(
            model(),
            features(),
            RECIPE,
            TrainingConfig(device="cpu"),
            "classification",
            0,
            seed=0,
            deadline=0.0,
        )


def test_on_epoch_runs_after_each_epoch_and_the_last_step_with_a_closing_line() -> None:
    f = features(24)  # 6 steps an epoch at batch size 4
    epochs: list[int] = []
    lines: list[str] = []
    config = TrainingConfig(device="cpu")
    recipe = dataclasses.replace(RECIPE, epochs=2.5)  # 15 steps: epochs end at 6, 12 and 15
    train(
        model(),
        f,
        recipe,
        config,
        "classification",
        0,
        seed=0,
        progress=lines.append,
        on_epoch=epochs.append,
        what="teacher training",
    )
    assert epochs == [1, 2, 3]
    assert len(lines) == 1  # under a minute: no line a minute, one closing line
    assert lines[0].startswith("teacher training: 15/15 steps in 0:0")
    assert "loss " in lines[0]


def test_the_teachers_recipe_trains_as_a_students_without_distillation() -> None:
    """train() takes either recipe: teacher.train (with its own seed) and a student's
    TrainingRecipe of the same knobs give the same weights; distillation changes them."""
    f = features()
    teacher = np.random.default_rng(1).normal(size=(len(f), 3)).astype(np.float32)
    spec = TeacherTrainConfig(
        epochs=2, learning_rate=1e-3, batch_size=4, warmup_ratio=0.1, weight_decay=0.01, seed=5
    )
    config = TrainingConfig(device="cpu")
    runs = {
        "teacher": (spec, None, spec.seed),
        "student": (RECIPE, None, 5),
        "distilled": (RECIPE, Distillation(teacher, 0.5, 2.0), 5),
        "other seed": (RECIPE, None, 6),
    }
    losses = {}
    for name, (recipe, soft, seed) in runs.items():
        result = train(model(), f, recipe, config, "classification", 0, seed=seed, distill=soft)
        losses[name] = result.final_loss
    assert losses["teacher"] == losses["student"]
    assert losses["distilled"] != losses["student"]
    assert losses["other seed"] != losses["student"]
