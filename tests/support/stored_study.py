"""A tiny SQLite study whose trials hold real stored checkpoint files (written and recorded as
the runner does), for the export and dashboard tests that check those files."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import optuna

from nas.study.artifacts import open_store, parse_root, record_files, write_files

MODEL_BYTES = bytes(range(256)) * 4  # 1024 bytes


def stored_study(tmp_path: Path, older: bool = False) -> tuple[optuna.Study, str, Path]:
    """A SQLite study of two COMPLETE trials whose tiny checkpoints were written and recorded
    as the runner does; ``older``: records as nas wrote them before sha256 and size."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    root = tmp_path / "artifacts"
    root.mkdir()
    study = optuna.create_study(study_name="stored", storage=url, directions=["maximize"] * 2)
    for number in range(2):
        ckpt = tmp_path / f"ckpt-{number}"
        ckpt.mkdir()
        config = '{"architectures": ["DistilBertForSequenceClassification"]}'
        (ckpt / "config.json").write_text("not json {" if older and number else config)
        (ckpt / "model.safetensors").write_bytes(MODEL_BYTES)
        (ckpt / "nas.json").write_text("{}")
        files = write_files(open_store(parse_root(root)), ckpt)
        trial = study.ask()
        if older:
            for f in files:  # ArtifactMeta's four keys only
                key, meta = f"artifacts:{f.artifact_id}", json.dumps(asdict(f.meta()))
                study._storage.set_trial_system_attr(trial._trial_id, key, meta)
            trial.set_user_attr("checkpoint_files", {f.filename: f.artifact_id for f in files})
        else:
            trial.set_user_attr("checkpoint_files", record_files(trial, files))
        trial.set_user_attr("artifact_root", str(root))
        trial.set_user_attr("checkpoint_bytes", sum(f.size for f in files))
        study.tell(trial, [50.0 + number, 1000.0])
    return study, url, root


def stored_model(study: optuna.Study, root: Path, number: int) -> Path:
    """The stored ``model.safetensors`` of trial ``number``."""
    return root / study.trials[number].user_attrs["checkpoint_files"]["model.safetensors"]


SST2_SOURCE = "distilbert-base-uncased"  # hub ids, as the shipped sst2 study names them
SST2_TEACHER = "textattack/bert-base-uncased-SST-2"


def stored_classifier(tmp_path: Path, tokenizer_dir: Path) -> tuple[optuna.Study, str]:
    """A SQLite study of one COMPLETE but infeasible sst2 trial whose checkpoint is a real tiny
    random-init DistilBERT classifier (config.json without label names, as nas saves it), with
    a test-split score and the config snapshot nas stores."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    root, ckpt = tmp_path / "artifacts", tmp_path / "ckpt-clf"
    root.mkdir()
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(0)
    shape = {"dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64}
    config = DistilBertConfig(vocab_size=len(tokenizer), pad_token_id=0, **shape)
    DistilBertForSequenceClassification(config).save_pretrained(str(ckpt))
    tokenizer.save_pretrained(str(ckpt))
    description = (
        f"sst2: 8 train examples from {tmp_path}/train.csv, 4 selection examples, 4 test "
        "examples from hub glue:sst2 [validation]; labels ['negative', 'positive']"
    )
    record = {
        "study": "clf",
        "study_file": str(tmp_path / "clf.yaml"),
        "task": "sst2",
        "teacher": SST2_TEACHER,
        "student_source": SST2_SOURCE,
        "data": description,
    }
    (ckpt / "nas.json").write_text(json.dumps(record))
    study = optuna.create_study(study_name="clf", storage=url, directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["accuracy", "params"])
    snapshot = {"task": "sst2", "data": {"max_seq_length": 24}, "student_source": SST2_SOURCE}
    for key, value in (("config", snapshot), ("task", "sst2"), ("teacher", SST2_TEACHER),
                       ("dataset", description)):  # fmt: skip
        study.set_user_attr(key, value)
    study.set_user_attr("test:0", {"accuracy": 0.5, "macro_f1": 0.4, "mcc": 0.1})
    trial = study.ask()
    trial.set_user_attr(
        "checkpoint_files", record_files(trial, write_files(open_store(parse_root(root)), ckpt))
    )
    trial.set_user_attr("artifact_root", str(root))
    trial.set_constraint("accuracy>=0.9", 0.4)
    study.tell(trial, [0.5, 1000.0])
    return study, url
