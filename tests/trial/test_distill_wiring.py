"""Transfer rows and intermediate losses in the training loop (tiny random models, CPU)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_train import RECIPE, features, model
from transformers import BertConfig, BertForSequenceClassification

from nas.errors import InvalidConfig
from nas.params import LayerLosses, TrialParams
from nas.trial.intermediate import LayerDistiller
from nas.trial.loop import Distillation, train
from nas.trial.losses import distill_loss, kl_soft_loss, mixed_distill_loss
from nas.trial.run import concat_features, layer_distiller

OFF = LayerLosses(0.0, "mse", 0.0, 0.0, 2, "uniform")


def teacher(layers: int = 2, width: int = 32) -> BertForSequenceClassification:
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=64,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=3,
    )
    return BertForSequenceClassification(config)


def weights(m: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def run(
    f, layers: LayerDistiller | None = None, logits: np.ndarray | None = None, seed: int = 0
) -> torch.Tensor:
    from nas.config import TrainingConfig

    student = model(seed)
    soft = np.random.default_rng(3).normal(size=(len(f), 3)).astype(np.float32)
    soft = soft if logits is None else logits
    if layers is not None:
        layers = LayerDistiller(layers.losses, student, layers.teacher, "tiny teacher")
    train(
        student,
        f,
        RECIPE,
        TrainingConfig(device="cpu"),
        "classification",
        0,
        seed=seed,
        distill=Distillation(soft, RECIPE.alpha, RECIPE.temperature, layers),
    )
    return weights(student)


# ----------------------------------------------------------------------------- transfer rows


def test_transfer_rows_take_the_soft_loss_alone() -> None:
    torch.manual_seed(0)
    student, soft = torch.randn(4, 3), torch.randn(4, 3)
    unlabelled = torch.full((4,), -1)
    for alpha in (0.0, 0.5):  # no label: soft only, whatever alpha says
        value = mixed_distill_loss(student, soft, unlabelled, alpha, 2.0)
        assert torch.allclose(value, kl_soft_loss(student, soft, 2.0))
    labels = torch.tensor([0, 2, 1, 0])
    assert torch.allclose(  # no transfer rows: the labelled loss as before
        mixed_distill_loss(student, soft, labels, 0.5, 2.0),
        distill_loss(student, soft, labels, 0.5, 2.0),
    )
    mixed = torch.tensor([0, -1, 1, -1])
    kl_rows = [kl_soft_loss(student[i : i + 1], soft[i : i + 1], 2.0) for i in range(4)]
    hard = [
        torch.nn.functional.cross_entropy(student[i : i + 1], mixed[i : i + 1]) for i in (0, 2)
    ]
    expected = (0.5 * (kl_rows[0] + kl_rows[2]) + 0.5 * (hard[0] + hard[1])) / 4
    expected = expected + (kl_rows[1] + kl_rows[3]) / 4
    assert torch.allclose(mixed_distill_loss(student, soft, mixed, 0.5, 2.0), expected)


def test_a_trial_trains_on_its_transfer_rows() -> None:
    labelled = features(24, seed=0)
    extra = dataclasses.replace(features(16, seed=1), labels=np.full(16, -1, dtype=np.int64))
    both = concat_features(labelled, extra)
    assert len(both) == 40 and both.lengths().tolist() == [
        *labelled.lengths().tolist(),
        *extra.lengths().tolist(),
    ]
    soft = np.random.default_rng(3).normal(size=(40, 3)).astype(np.float32)
    with_transfer = run(both, logits=soft)
    # the transfer rows' soft targets steer the student: other targets, another student
    other = soft.copy()
    other[24:] = -other[24:]
    assert not torch.equal(with_transfer, run(both, logits=other))
    assert not torch.equal(with_transfer, run(labelled, logits=soft[:24]))


# ----------------------------------------------------------------------------- layer losses


def test_layer_losses_change_the_student_and_weights_zero_load_no_teacher() -> None:
    f = features()
    logits_only = run(f)
    assert torch.equal(logits_only, run(f))  # deterministic on CPU
    on = dataclasses.replace(OFF, hidden_weight=1.0, relation_weight=1.0, pkd_weight=1.0)
    distiller = LayerDistiller(on, model(), teacher(), "tiny teacher")
    assert distiller.pairs == [1]  # 1 student layer <- the last of 2 teacher layers
    with_layers = run(f, distiller)
    assert not torch.equal(logits_only, with_layers)
    assert torch.isfinite(with_layers).all()
    # weights 0 (or a space without the losses): the cached-logit path, no teacher loaded
    params = TrialParams.from_params(
        {
            "n_layers": 1,
            "n_heads": 2,
            "hidden_size": 16,
            "ffn_dim": 32,
            **dataclasses.asdict(RECIPE),
            **dataclasses.asdict(OFF),
        }
    )
    assert params.losses == OFF and not params.layer_losses_on
    assert layer_distiller(None, params, model()) is None  # type: ignore[arg-type]


def test_each_layer_loss_alone_moves_the_student() -> None:
    f = features(12)
    base = run(f)
    for change in (
        {"hidden_weight": 1.0},
        {"hidden_weight": 1.0, "hidden_kind": "cosine"},
        {"pkd_weight": 10.0},
        {"relation_weight": 1.0},
    ):
        losses = dataclasses.replace(OFF, **change)  # type: ignore[arg-type]
        moved = run(f, LayerDistiller(losses, model(), teacher(), "tiny teacher"))
        assert not torch.equal(base, moved), change


def test_layer_loss_bad_input_fails_before_training() -> None:
    on = dataclasses.replace(OFF, relation_weight=1.0, relation_heads=3)
    with pytest.raises(InvalidConfig, match="relation_heads = 3 does not divide"):
        LayerDistiller(on, model(), teacher(), "tiny teacher")
    deep = dataclasses.replace(OFF, hidden_weight=1.0, layer_map="last")
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=64, dim=16, n_layers=3, n_heads=2, hidden_dim=32)
    config.num_labels = 3
    with pytest.raises(InvalidConfig, match="layer map 'last'"):
        LayerDistiller(deep, DistilBertForSequenceClassification(config), teacher(), "t")
