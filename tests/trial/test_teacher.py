"""The teacher is what the study says: its recipe, its weights' content and its label order."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY_TEACHER

from nas.config import StudyConfig, load_study
from nas.errors import CheckpointError, ConfigError
from nas.tasks.base import Features
from nas.trial.teacher import cached_logits, check_teacher_labels, ensure_teacher, train_teacher

TRAIN = {"arch": TINY_TEACHER, "epochs": 1, "learning_rate": 1e-3}


def _digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def _config(tiny_study, tmp_path: Path, name: str = "tiny", **teacher: object) -> StudyConfig:  # type: ignore[no-untyped-def]
    """A tiny synthetic_qa study with its own cache (its teacher is nobody else's)."""
    section = {"path": "{cache_dir}/teachers/tiny", "train": TRAIN, **teacher}
    return load_study(tiny_study(name=name, cache_dir=str(tmp_path / "cache"), teacher=section))


def test_a_changed_recipe_retrains_and_says_why(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    path = Path(ensure_teacher(_config(tiny_study, tmp_path), lines.append))
    first = _digest(path)
    weights = path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns, weights.stat().st_ino
    recorded = json.loads((path / "teacher.json").read_text())["recipe"]
    assert recorded["learning_rate"] == 1e-3 and recorded["task"] == "synthetic_qa"

    # The same recipe: the folder is reused as it is.
    lines.clear()
    assert ensure_teacher(_config(tiny_study, tmp_path), lines.append) == str(path)
    assert lines == []
    assert (weights.stat().st_mtime_ns, weights.stat().st_ino) == stamp

    # Another learning rate: trained again, in place, with one line that says why.
    lines.clear()
    changed = _config(tiny_study, tmp_path, train={**TRAIN, "learning_rate": 5e-4})
    ensure_teacher(changed, lines.append)
    assert lines[0] == (
        f"teacher recipe changed (learning_rate 0.001 -> 0.0005): retraining into {path}"
    )
    assert json.loads((path / "teacher.json").read_text())["recipe"]["learning_rate"] == 5e-4
    assert _digest(path) != first
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tiny-")]  # no leftovers


def test_a_teacher_json_without_a_recipe_is_retrained(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _config(tiny_study, tmp_path)
    path = Path(ensure_teacher(config))
    record = json.loads((path / "teacher.json").read_text())
    del record["recipe"]  # as nas wrote it before recipes were recorded
    (path / "teacher.json").write_text(json.dumps(record))
    lines: list[str] = []
    ensure_teacher(config, lines.append)
    assert lines[0] == (
        f"teacher {path / 'teacher.json'} has no recipe fingerprint recorded: "
        f"retraining into {path}"
    )
    assert "recipe" in json.loads((path / "teacher.json").read_text())


def test_changed_training_data_retrains(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study = tiny_study(cache_dir=str(tmp_path / "cache"))
    path = Path(ensure_teacher(load_study(study)))
    raw = yaml.safe_load(study.read_text())
    raw["data"]["synthetic"]["n_train"] = 150
    study.write_text(yaml.safe_dump(raw))
    lines: list[str] = []
    ensure_teacher(load_study(study), lines.append)
    assert lines[0].startswith("teacher recipe changed (train_examples ")
    assert lines[0].endswith(f"): retraining into {path}")


def test_another_studys_teacher_is_not_overwritten(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "teachers" / "mine"  # outside the study's cache
    train_teacher(_config(tiny_study, tmp_path), folder)
    before = _digest(folder)
    changed = {**TRAIN, "learning_rate": 5e-4}
    other = _config(tiny_study, tmp_path, "other", path=str(folder), train=changed)
    with pytest.raises(ConfigError) as error:
        ensure_teacher(other)
    message = str(error.value)
    assert f"teacher.path {folder} was trained by nas for study 'tiny'" in message
    assert "learning_rate 0.001 -> 0.0005" in message
    assert "delete that folder" in message and "remove teacher.train" in message
    assert _digest(folder) == before

    # Without teacher.train, or without teacher.json, the folder is the user's: used as it is.
    as_is = _config(tiny_study, tmp_path, path=str(folder), train=None)
    assert ensure_teacher(as_is) == str(folder)
    (folder / "teacher.json").unlink()
    assert ensure_teacher(other) == str(folder)
    assert _digest(folder) == before


# ------------------------------------------------------------------------ logits by content


def _classifier(folder: Path, seed: int, id2label: dict[int, str] | None = None) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    labels = id2label or {0: "LABEL_0", 1: "LABEL_1"}
    config = BertConfig(
        vocab_size=50,
        max_position_embeddings=32,
        num_labels=len(labels),
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
        **TINY_TEACHER,
    )
    BertForSequenceClassification(config).save_pretrained(str(folder))
    return folder


def _features() -> Features:
    rng = np.random.default_rng(0)
    n, length = 6, 8
    return Features(
        ids=rng.integers(1, 50, n * length).astype(np.int32),
        type_ids=np.zeros(n * length, dtype=np.int8),
        starts=np.arange(0, n * length + 1, length, dtype=np.int64),
        labels=np.zeros(n, dtype=np.int64),
    )


def test_a_copy_that_keeps_size_and_mtime_gives_the_new_teachers_logits(tmp_path: Path) -> None:
    a = _classifier(tmp_path / "a", seed=1)
    b = _classifier(tmp_path / "b", seed=2)
    features, cache = _features(), tmp_path / "cache"

    def logits(path: Path) -> np.ndarray:
        return np.array(cached_logits(cache, str(path), features, "classification", 2, 0, "cpu"))

    old, new = logits(a), logits(b)
    assert not np.allclose(old, new)
    weights = a / "model.safetensors"
    st = weights.stat()
    assert st.st_size == (b / "model.safetensors").stat().st_size
    shutil.copy2(b / "model.safetensors", weights)  # cp -p: b's bytes, then a's times back
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    np.testing.assert_allclose(logits(a), new)


def test_a_hub_name_is_identified_by_its_cached_revision(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from huggingface_hub import constants

    from nas.trial.teacher import checkpoint_identity

    repo = tmp_path / "models--org--bert"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert checkpoint_identity("org/bert") == "hub:org/bert@abc123"
    (repo / "refs" / "main").write_text("def456")  # the hub moved on: another teacher
    assert checkpoint_identity("org/bert") == "hub:org/bert:unresolved"
    assert checkpoint_identity("org/other") == "hub:org/other:unresolved"


# ------------------------------------------------------------------------------ label order


def test_a_permuted_label_order_is_an_error_naming_both(tmp_path: Path) -> None:
    teacher = _classifier(tmp_path / "t", 0, {0: "positive", 1: "negative"})
    with pytest.raises(CheckpointError) as error:
        check_teacher_labels(str(teacher), "classification", ("negative", "positive"))
    message = str(error.value)
    assert "['positive', 'negative']" in message and "['negative', 'positive']" in message
    assert "data.label_names: ['positive', 'negative']" in message
    check_teacher_labels(str(teacher), "classification", ("positive", "negative"))
    check_teacher_labels(str(teacher), "classification", ("Positive", "Negative"))


def test_other_names_or_another_count_are_errors_generic_names_pass(tmp_path: Path) -> None:
    named = _classifier(tmp_path / "named", 0, {0: "negative", 1: "positive"})
    with pytest.raises(CheckpointError, match=r"has labels \['negative', 'positive'\]"):
        check_teacher_labels(str(named), "classification", ("unacceptable", "acceptable"))
    generic = _classifier(tmp_path / "generic", 0)
    check_teacher_labels(str(generic), "classification", ("negative", "positive"))
    three = _classifier(tmp_path / "three", 0, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(CheckpointError, match="has 3 labels .* but the task has 2"):
        check_teacher_labels(str(three), "classification", ("negative", "positive"))
    check_teacher_labels(str(named), "qa", ())  # QA has no label names


def test_prepare_checks_the_label_order_before_any_teacher_pass(
    tmp_path: Path, tiny_tokenizer_dir: Path
) -> None:
    from nas.trial.run import prepare

    teacher = _classifier(tmp_path / "teacher", 0, {0: "positive", 1: "negative"})
    for f in tiny_tokenizer_dir.iterdir():
        shutil.copy(f, teacher / f.name)
    for name in ("train", "dev", "test"):
        rows = "".join(f"a good {name} film {i}\t{i % 2}\n" for i in range(20))
        (tmp_path / f"{name}.tsv").write_text("sentence\tlabel\n" + rows)
    study = {
        "name": "labels",
        "task": "sst2",
        "data": {
            "train_file": str(tmp_path / "train.tsv"),
            "eval_file": str(tmp_path / "dev.tsv"),
            "test_file": str(tmp_path / "test.tsv"),
            "max_seq_length": 16,
        },
        "teacher": {"path": str(teacher)},
        "student_source": str(teacher),
        "search_space": str(Path(__file__).parents[2] / "search_spaces" / "quickstart.yaml"),
        "cache_dir": str(tmp_path / "cache"),
    }
    (tmp_path / "labels.yaml").write_text(yaml.safe_dump(study))
    with pytest.raises(CheckpointError, match=r"orders its labels \['positive', 'negative'\]"):
        prepare(load_study(tmp_path / "labels.yaml"))
    assert not (tmp_path / "cache" / "logits").exists()


def test_best_epoch_keeps_the_best_scores_weights_not_the_last() -> None:
    import torch

    from nas.trial.teacher import _BestEpoch

    lines: list[str] = []
    best = _BestEpoch("exact", lines.append)
    model = torch.nn.Linear(2, 1)
    for epoch, score in ((1, 50.0), (2, 60.0), (3, 55.0)):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        best.offer(epoch, {"exact": score, "f1": score + 1}, model)
    assert best.restore(model) == {"exact": 60.0, "f1": 61.0}
    assert model.weight.flatten().tolist() == [2.0, 2.0]  # epoch 2's weights, not epoch 3's
    assert best.record() == {"epoch": 2, "metric": "exact", "scores": [50.0, 60.0, 55.0]}
    assert lines[-1] == "teacher epoch 3: exact 55.00 on the selection split (best 60.00, epoch 2)"


def test_keep_best_scores_every_epoch_and_records_the_kept_one(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train = {**TRAIN, "epochs": 2, "keep_best": True}
    config = _config(tiny_study, tmp_path, train=train)
    path = Path(ensure_teacher(config))
    record = json.loads((path / "teacher.json").read_text())
    kept = record["best_epoch"]
    assert len(kept["scores"]) == 2 and kept["metric"] == "exact"
    assert kept["scores"][kept["epoch"] - 1] == max(kept["scores"])
    assert round(record["metrics"]["exact"], 4) == max(kept["scores"])
    assert record["recipe"]["keep_best"] is True
    # keep_best off is no recipe key: teachers recorded before the option stay current.
    from nas.trial.data import load_splits
    from nas.trial.teacher import teacher_recipe

    assert "keep_best" not in teacher_recipe(_config(tiny_study, tmp_path), *load_splits(config))
