"""Every student family through a real trial on SST-2 sentences: it learns, its parameter count
is exact, and its saved folder (with the reduced tokenizer when it prunes its vocabulary)
scores the same again through plain ``AutoTokenizer`` and no study state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from support.real_study import sst2_study

from nas.config import load_study
from nas.errors import ConfigError, InvalidConfig

SHARED = {"temperature": 2.0, "alpha": 0.5, "warmup_ratio": 0.0, "weight_decay": 0.0}
FAMILY = {
    "bow": {
        "learning_rate": 0.01,
        "batch_size": 32,
        "epochs": 3,
        "vocab_size": 1000,
        "embedding_dim": 32,
        "hidden_dim": 0,
        "dropout": 0.0,
        "embeddings": "source",
        "freeze_embeddings": False,
    },
    "bilstm": {
        "learning_rate": 0.003,
        "batch_size": 32,
        "epochs": 3,
        "vocab_size": 0,
        "embedding_dim": 32,
        "hidden_size": 32,
        "n_layers": 1,
        "pooling": "max",
        "fc_dim": 64,
        "dropout": 0.1,
        "embeddings": "source",
        "freeze_embeddings": False,
    },
    "cnn": {
        "learning_rate": 0.003,
        "batch_size": 32,
        "epochs": 3,
        "vocab_size": 1000,
        "embedding_dim": 32,
        "filter_widths": "2,3",
        "n_filters": 32,
        "dropout": 0.3,
        "embeddings": "source",
        "freeze_embeddings": False,
    },
}
SPACE = """
vocab_size: {type: categorical, choices: [1000, 0]}
family: {type: categorical, choices: [distilbert, bilstm, cnn, bow]}
n_layers: {type: int, low: 1, high: 2}
n_heads: {type: categorical, choices: [2, 4]}
hidden_size: {type: categorical, choices: [32, 64]}
ffn_dim: {type: int, low: 64, high: 128, step: 64}
temperature: {type: float, low: 1.0, high: 8.0}
alpha: {type: float, low: 0.0, high: 1.0}
learning_rate: {type: float, low: 1.0e-4, high: 5.0e-3, log: true}
warmup_ratio: {type: float, low: 0.0, high: 0.2}
weight_decay: {type: float, low: 0.0, high: 0.1}
batch_size: {type: categorical, choices: [16, 32]}
epochs: {type: int, low: 1, high: 3}
bilstm:
  vocab_size: {type: categorical, choices: [1000, 0]}
  learning_rate: {type: float, low: 3.0e-4, high: 5.0e-3, log: true}
  batch_size: 32
  epochs: 3
  embedding_dim: 32
  hidden_size: 32
  n_layers: {type: int, low: 1, high: 2}
  pooling: {type: categorical, choices: [last, max, mean]}
  fc_dim: 64
  dropout: 0.1
  embeddings: {type: categorical, choices: [source, random]}
  freeze_embeddings: {type: categorical, choices: [false, true]}
cnn:
  vocab_size: {type: categorical, choices: [1000, 0]}
  learning_rate: 0.003
  batch_size: 32
  epochs: 3
  embedding_dim: 32
  filter_widths: {type: categorical, choices: ["2,3", "3,4,5"]}
  n_filters: 32
  dropout: 0.3
  embeddings: {type: categorical, choices: [source, random]}
  freeze_embeddings: false
bow:
  vocab_size: {type: categorical, choices: [1000, 500]}
  learning_rate: 0.01
  batch_size: 32
  epochs: 3
  embedding_dim: {type: categorical, choices: [16, 32]}
  hidden_dim: {type: categorical, choices: [0, 64]}
  dropout: 0.0
  embeddings: {type: categorical, choices: [source, random]}
  freeze_embeddings: false
"""


def family_params(family: str) -> dict[str, Any]:
    if family == "distilbert":
        shape = {"n_layers": 2, "n_heads": 2, "hidden_size": 64, "ffn_dim": 128}
        recipe = {"learning_rate": 0.003, "batch_size": 32, "epochs": 3}
        return {"family": family, **shape, **SHARED, **recipe, "vocab_size": 1000}
    own = {f"{family}.{k}": v for k, v in FAMILY[family].items()}
    return {"family": family, **SHARED, **own}


def write_study(folder: Path, data: Path, space: str = SPACE) -> Path:
    """The real study's SST-2 data and teacher (``support.real_study``) over ``space``."""
    (folder / "space.yaml").write_text(space)
    study = sst2_study(folder, data)
    for key in ("baseline", "artifact_root", "sampler"):
        study.pop(key)
    study.update(name="families", search_space=str(folder / "space.yaml"), n_trials=2)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Any:
    from nas.trial import prepare

    folder = tmp_path_factory.mktemp("families")
    return prepare(load_study(write_study(folder, shared_data)))


@pytest.mark.parametrize("family", ["bow", "bilstm", "cnn", "distilbert"])
def test_each_family_learns_and_its_folder_scores_the_same_again(
    prepared: Any, family: str, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from nas.students import count_family_parameters, load_family
    from nas.trial import run_trial, score_checkpoint

    params = prepared.space.trial_params(family_params(family))
    assert params.family == family
    out = tmp_path / "student"
    metrics = run_trial(prepared, params, out)
    labels = prepared.splits.eval
    majority = max(np.bincount([ex.label for ex in labels])) / len(labels)
    assert metrics.task["accuracy"] > majority + 0.04, (family, metrics.task, majority)
    tokenizer = AutoTokenizer.from_pretrained(str(out))  # what a user loads
    vocab = params.pruned_vocab
    assert len(tokenizer) == (vocab or len(prepared.tokenizer)), family
    if family != "distilbert":
        model = load_family(out)
        assert metrics.params == count_family_parameters(model.shape, len(tokenizer), 2)
    again = score_checkpoint(prepared, out, prepared.splits.eval)
    assert again["accuracy"] == pytest.approx(metrics.task["accuracy"], abs=1e-9)


def test_every_family_can_be_sampled_and_a_wrong_family_key_is_refused(prepared: Any) -> None:
    import optuna

    space = prepared.space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = {space.trial_params(space.suggest(study.ask())).family for _ in range(30)}
    assert seen == {"distilbert", "bilstm", "cnn", "bow"}
    bad = {**family_params("bow"), "bilstm.hidden_size": 32}
    with pytest.raises(InvalidConfig, match=r"bilstm.hidden_size is a parameter of family bilstm"):
        space.trial_params(bad)


def test_question_answering_with_a_family_is_refused_before_any_teacher(
    tmp_path: Path, shared_data: Path
) -> None:
    from nas.trial import prepare

    path = write_study(tmp_path, shared_data)
    raw = yaml.safe_load(path.read_text())
    raw["task"] = "squad_v2"
    raw["data"] = {
        "train_file": str(shared_data / "squad_v2" / "dev-v2.0.json"),
        "test_articles": 2,
        "eval_articles": 2,
        "max_train_samples": 50,
    }
    raw["thresholds"] = [{"metric": "exact", "min": 1}]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"family bilstm is a text classifier"):
        prepare(load_study(path))
    assert not (tmp_path / "teacher").exists()  # refused before training it


def test_a_vocabulary_larger_than_the_tokenizer_is_refused_before_any_student(
    tmp_path: Path, shared_data: Path
) -> None:
    from nas.trial import prepare

    path = write_study(tmp_path, shared_data, SPACE.replace("[1000, 500]", "[1000, 90000]"))
    with pytest.raises(InvalidConfig, match=r"bow.vocab_size 90000 must lie between"):
        prepare(load_study(path))
