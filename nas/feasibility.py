"""What makes a trial feasible: the study's thresholds, resolved against the selection split.

SigOpt's ``exact >= 50`` meant "better than answering 'no answer' to every question"; that
scores 50.07 on the official SQuAD 2.0 dev set, 52.1 on the shared half and 40 on the
quickstart's synthetic split, so a fixed 50 lets an abstaining student through on one split and
not on another. A threshold may therefore be written ``{metric: exact, above_no_answer: 5}``:
when the study starts, :func:`no_answer_scores` scores the all-"no answer" prediction on the
selection split with the official metric, and :func:`resolve_thresholds` turns the margin into
a fixed ``min`` (``exact >= 57.1`` on a 52.1 % unanswerable split). The resolved thresholds are
what trials are told with and what the study stores (its config snapshot), so every
reader of the study sees the same rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from nas.config import StudyConfig, Threshold
from nas.errors import ConfigError


def no_answer_scores(examples: Sequence[Any]) -> dict[str, float]:
    """The official SQuAD 2.0 metrics of predicting "no answer" for every question.

    ``exact`` and ``f1`` equal the share of unanswerable questions (in %), ``HasAns_*`` are 0 and
    ``NoAns_*`` 100.
    """
    from nas.tasks import evaluate_squad_v2

    preds = {ex.id: "" for ex in examples}
    result = evaluate_squad_v2(list(examples), preds)
    return {k: float(v) for k, v in result.items() if k != "total"}


def resolve_thresholds(
    config: StudyConfig, no_answer: Mapping[str, float] | None
) -> tuple[Threshold, ...]:
    """The study's thresholds with every ``above_no_answer`` margin turned into a ``min``.

    Raises:
        ConfigError: a margin on a metric the no-answer scores lack (or a task without them).
    """
    out = []
    for t in config.thresholds:
        if t.above_no_answer is None:
            out.append(t)
            continue
        if no_answer is None or t.metric not in no_answer:
            known = sorted(no_answer or {})
            raise ConfigError(
                f"{config.source_file}: threshold on {t.metric} uses above_no_answer, but the "
                f"no-answer score is known only for {known}; use one of them or write min:"
            )
        out.append(dataclasses.replace(t, min=round(no_answer[t.metric] + t.above_no_answer, 4)))
    return tuple(out)


def constraint_name(t: Threshold) -> str:
    """The Optuna constraint's name: ``exact>=57.1``."""
    return f"{t.metric}>={t.bound:g}"


def constraint_values(
    thresholds: Sequence[Threshold], metrics: Mapping[str, float]
) -> dict[str, float]:
    """Optuna constraints (<= 0 feasible): ``min - value`` per resolved threshold."""
    return {constraint_name(t): t.bound - float(metrics[t.metric]) for t in thresholds}


def describe_thresholds(
    thresholds: Sequence[Threshold], no_answer: Mapping[str, float] | None
) -> str:
    """One line for the console: the rule and, where it comes from, the no-answer score."""
    parts = []
    for t in thresholds:
        text = f"{t.metric} >= {t.bound:g}"
        if t.above_no_answer is not None and no_answer is not None:
            text += (
                f" (answering 'no answer' everywhere scores {no_answer[t.metric]:.2f}, "
                f"{'+' if t.above_no_answer >= 0 else '-'} {abs(t.above_no_answer):g})"
            )
        parts.append(text)
    return "feasible when " + " and ".join(parts) if parts else "no thresholds: every trial counts"
