"""What a worker reports for a trial, made by hand for tests of the driver side."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nas.study.artifacts import open_store, parse_root, write_files


def fake_metrics(exact: float) -> dict[str, Any]:
    """``nas.trial.run.Metrics`` as a dict, with the task's exact match set to ``exact``."""
    return {
        "task": {"exact": exact},
        "params": 1000,
        "train_time_s": 1.0,
        "samples_per_s": 1.0,
        "peak_memory_mb": 1.0,
        "memory_kind": "cpu_max_rss",
        "steps": 1,
        "eval_time_s": 0.1,
        "device": "cpu",
    }


def fake_result(root: Path, exact: float = 60.0) -> dict[str, Any]:
    """The result Ray hands the searcher for a trial that completed: its metrics, and a
    three-file checkpoint really written into the artifact root ``root`` (as a worker does)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_text(json.dumps({"model_type": "distilbert"}))
        (folder / "model.safetensors").write_bytes(b"\0" * 64)
        (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
        root.mkdir(parents=True, exist_ok=True)
        files = write_files(open_store(parse_root(str(root))), folder)
    outcome = {
        "status": "ok",
        "metrics": fake_metrics(exact),
        "artifact_root": str(root),
        "artifacts": [asdict(f) for f in files],
        "node": "local",
    }
    return {"nas_outcome": json.dumps(outcome)}
