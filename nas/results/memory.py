"""The memory lines of ``nas study status`` and of each trial line: what a trial measured
(its peak) against what nas estimated before running it, read from its user attributes.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.progress import human_bytes
from nas.study import BUDGET, ESTIMATE, MEMORY_KIND, PEAK, REASON


def memory_summary(attrs: Mapping[str, Any]) -> str:
    """``peak 1.2 GiB (cuda_max_allocated), estimate 1.0 GiB`` from a trial's user attributes;
    ``process RSS 669 MiB`` for a CPU trial; empty when it recorded neither."""
    if attrs.get(MEMORY_KIND) == "cpu_max_rss" and isinstance(attrs.get(PEAK), int | float):
        # On CPU the peak is the worker's whole-process RSS: Python, torch, tokenizer, the
        # memory-mapped teacher logits, Ray. The estimate counts one training step's tensors
        # and nothing checks it against a CPU budget; beside the RSS it read as a 17x
        # misestimate. The RSS alone is the useful number: the RAM one worker needs.
        return f"process RSS {human_bytes(attrs[PEAK])}"
    parts = []
    if isinstance(attrs.get(PEAK), int | float):
        parts.append(f"peak {human_bytes(attrs[PEAK])} ({attrs.get(MEMORY_KIND, 'at failure')})")
    if isinstance(attrs.get(ESTIMATE), int | float):
        parts.append(f"estimate {human_bytes(attrs[ESTIMATE])}")
    if isinstance(attrs.get(BUDGET), int | float):
        parts.append(f"budget {human_bytes(attrs[BUDGET])}")
    return ", ".join(parts)


def memory_report(study: optuna.Study, limit: int = 10) -> list[str]:
    """Lines for ``nas study status``: measured peak against the estimate, per memory kind over
    the COMPLETE trials, then the (last ``limit``) trials that ran out or were predicted to."""
    ratios: dict[str, list[float]] = {}
    failed = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        peak, estimate = attrs.get(PEAK), attrs.get(ESTIMATE)
        if trial.state == TrialState.COMPLETE and peak and estimate:
            ratios.setdefault(str(attrs.get(MEMORY_KIND)), []).append(peak / estimate)
        elif attrs.get(REASON) in ("oom", "oom_predicted"):
            failed.append(f"  trial {trial.number} {attrs[REASON]}: {memory_summary(attrs)}")
    if not ratios and not failed:
        return []
    lines = ["memory (measured peak / nas estimate):"]
    for kind, values in sorted(ratios.items()):
        note = " (whole process, not comparable)" if kind == "cpu_max_rss" else ""
        lines.append(
            f"  COMPLETE, {kind}: {len(values)} trials, median {statistics.median(values):.2f}, "
            f"range {min(values):.2f}-{max(values):.2f}{note}"
        )
    return lines + failed[-limit:]
