"""What a worker reports for a trial, made by hand for tests of the driver side."""

from __future__ import annotations

from typing import Any


def fake_metrics(exact: float) -> dict[str, Any]:
    """``nas.objective.Metrics`` as a dict, with the task's exact match set to ``exact``."""
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
