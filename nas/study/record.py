"""The trial attribute schema: every key nas writes on a trial or a study, and the readers of
what those keys say (feasibility, objective names, failure reasons, test-split scores).

One home for each key: writers (the searcher, the driver, the holdout step) and readers (status,
front, report, export, dashboard) import them from here, so a renamed key cannot drift apart.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

# trial user attributes
REASON = "fail_reason"  # of failed trials: oom, nan_loss, invalid_config, ...
MESSAGE = "fail_message"
BASELINE_TAG = "baseline"
REQUEUED_FROM = "requeued_from"  # on a re-enqueued trial: the orphan's number
DRIVER = "driver"  # host:pid:start of the driver that asked the trial
ESTIMATE = "memory_estimate_bytes"
PEAK = "peak_memory_bytes"
BUDGET = "memory_budget_bytes"
# failures whose params are queued again once, and which do not count toward the total
RERUN_REASONS = ("orphaned", "interrupted", "artifact_write")
# trial system attribute: the list optuna-dashboard reads
DASHBOARD_CONSTRAINTS = "constraints"

# study user attributes
TEST_KEY = "test:"  # prefix: test:<trial number> -> {metric: value}
TEACHER_KEY = "teacher_scores"  # {"selection": {...}, "test": {...}}
NO_ANSWER_KEY = "no_answer"  # {"selection": {...}, "test": {...}} (QA)
SPLITS_KEY = "splits"  # the data description (which split is which)


def named_constraints(trial: FrozenTrial) -> dict[str, float]:
    """The trial's constraints by name, without the dashboard's positional copies."""
    return {k: v for k, v in trial.constraints.items() if not k.isdigit()}


def front_rows(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front (``study.best_trials``), smallest student first."""
    trials = study.best_trials
    names = study.metric_names or []
    key = names.index("params") if "params" in names else len(study.directions) - 1
    return sorted(trials, key=lambda t: t.values[key])


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        state = t.state.name
        if t.state == TrialState.COMPLETE and any(v > 0 for v in t.constraints.values()):
            state = "COMPLETE (infeasible)"
        counts[state] = counts.get(state, 0) + 1
    return counts


def failure_reasons(study: optuna.Study) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        reason = str(t.user_attrs.get(REASON, "unknown"))
        reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def test_scores(study: optuna.Study) -> dict[int, dict[str, float]]:
    """Test-split metrics by trial number, for the trials that have them."""
    out = {}
    for key, value in study.user_attrs.items():
        if key.startswith(TEST_KEY) and key[len(TEST_KEY) :].isdigit() and isinstance(value, dict):
            out[int(key[len(TEST_KEY) :])] = {k: float(v) for k, v in value.items()}
    return out


def teacher_scores(study: optuna.Study) -> dict[str, dict[str, float]]:
    """The teacher's metrics on the ``selection`` and ``test`` splits (empty before scoring)."""
    value = study.user_attrs.get(TEACHER_KEY)
    return value if isinstance(value, dict) else {}


def metric_names(study: optuna.Study) -> list[str]:
    """The study's objective names (``value0``... when the study never named them)."""
    return study.metric_names or [f"value{i}" for i in range(len(study.directions))]


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether every constraint of the trial holds (Optuna: a value <= 0 is feasible)."""
    return all(v <= 0 for v in trial.constraints.values())
