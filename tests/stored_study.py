"""A tiny SQLite study whose trials hold real stored checkpoint files (written and recorded as
the runner does), for the export and dashboard tests that check those files."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import optuna

from nas.artifacts import open_store, parse_root, record_files, write_files

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
