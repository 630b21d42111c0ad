"""`nas student` and `nas teacher train` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from cli_run import run_nas as nas


def test_student_reports_parts_count_and_memory(tmp_path: Path) -> None:
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    source = tmp_path / "source"
    config = DistilBertConfig(vocab_size=500, dim=64, n_layers=4, n_heads=4, hidden_dim=256)
    DistilBertForMaskedLM(config).save_pretrained(source)
    params = {"n_layers": 2, "n_heads": 2, "hidden_size": 32, "ffn_dim": 64}
    result = nas(
        "student",
        "--source",
        str(source),
        "--task",
        "squad_v2",
        "--params",
        json.dumps(params),
        "--batch-size",
        "8",
        "--seq-len",
        "128",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["params"] == sum(part["params"] for part in report["parts"])
    # embeddings: (500 + 512) * 32 + LayerNorm 2 * 32; head: 32 * 2 + 2
    assert report["parts"][0]["params"] == (500 + 512) * 32 + 64
    assert report["parts"][-1]["params"] == 66
    assert report["memory_bytes"]["total"] > report["memory_bytes"]["weights"] > 0
    text = nas(
        "student", "--source", str(source), "--task", "sst2", "--params", json.dumps(params)
    )
    assert text.returncode == 0 and "estimated training memory" in text.stdout
    bad = nas(
        "student",
        "--source",
        str(source),
        "--task",
        "squad_v2",
        "--params",
        json.dumps({**params, "n_heads": 3}),
    )
    assert bad.returncode == 2 and "does not divide" in bad.stderr


def test_teacher_train_refuses_to_overwrite(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study = tiny_study()
    out = tmp_path / "teacher"
    first = nas("teacher", "train", str(study), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert (out / "model.safetensors").is_file() and (out / "teacher.json").is_file()
    record = json.loads((out / "teacher.json").read_text())
    assert record["task"] == "synthetic_qa" and "exact" in record["metrics"]
    again = nas("teacher", "train", str(study), "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    raw = yaml.safe_load(study.read_text())
    del raw["teacher"]["train"]
    study.write_text(yaml.safe_dump(raw))
    missing = nas("teacher", "train", str(study), "--out", str(tmp_path / "other"))
    assert missing.returncode == 2 and "teacher.train is not set" in missing.stderr
