"""The trial attribute schema: every key nas writes on a trial or a study, and the readers of
what those keys say (feasibility, objective names, failure reasons, test-split scores, the
config snapshot).

One home for each key: writers (the searcher, the driver, the holdout step, the drift check) and
readers (status, front, report, export, dashboard) import them from here, so a renamed key
cannot drift apart.

Where study attributes live: ``optuna studies`` prints every study *user* attribute in one
column, so the bulky records (the config snapshot, the search space, accepted changes, the
teacher's, no-answer and test-split scores) are study *system* attributes named ``nas:...``
(:data:`STUDY_RECORDS`), read with :func:`study_record` and written with
:func:`set_study_record`. Studies made before that keep them as user attributes of the same
name without ``nas:`` (``config``, ``test:3``...); the readers fall back to those, and a write
also updates such a copy, since Optuna cannot delete a user attribute and two copies must agree.
The short facts (task, teacher, dataset, nas version) stay user attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.objectives import PARAMS
from nas.study.pruning import RungEntry, violation

# ----------------------------------------------------------------- trial user attributes
REASON = "fail_reason"  # of failed trials: oom, nan_loss, invalid_config, ...
MESSAGE = "fail_message"
BASELINE_TAG = "baseline"
REQUEUED_FROM = "requeued_from"  # on a re-enqueued trial: the orphan's number
DRIVER = "driver"  # host:pid:start of the driver that asked the trial
NODE = "node"  # the Ray node the worker ran on
GPU_IDS = "gpu_ids"  # the GPUs Ray gave the worker
ESTIMATE = "memory_estimate_bytes"
PEAK = "peak_memory_bytes"
BUDGET = "memory_budget_bytes"
METRIC_PREFIX = "metric:"  # metric:<name> -> the task metric on the selection split
N_PARAMS = PARAMS  # the student's parameter count
TRAIN_TIME = "train_time_s"
SAMPLES_PER_S = "samples_per_s"
PEAK_MB = "peak_memory_mb"
MEMORY_KIND = "memory_kind"  # cuda_max_allocated or cpu_max_rss
STEPS = "steps"
DEVICE = "device"
LATENCY = "latency_ms"
CHECKPOINT_FILES = "checkpoint_files"  # file name -> artifact id
ARTIFACT_ROOT = "artifact_root"  # the root its checkpoint was written to
CHECKPOINT_BYTES = "checkpoint_bytes"  # the checkpoint's total size
CONFIRMS = "confirms"  # of a confirmation run: the trial number it re-trains
SEED = "seed"  # of a confirmation run: its training seed
TEST_METRICS = "test_metrics"  # of a confirmation run: its test-split metrics
RUNG_PREFIX = "rung:"  # rung:<k> -> {"epoch_fraction", "values", "constraints"} (RUNG_KEYS)
RUNG_KEYS = ("epoch_fraction", "values", "constraints")
PRUNED_RUNG = "pruned_rung"  # of a PRUNED trial: the rung index it stopped at
PRUNE_REASON = "prune_reason"  # of a PRUNED trial: the decision's one line
WARM_START = "warm_start"  # of an enqueued warm start: "study@storage #number" it came from
# failures whose params are queued again once, and which do not count toward the total
RERUN_REASONS = ("orphaned", "interrupted", "artifact_write")
# ---------------------------------------------------------------- trial system attributes
DASHBOARD_CONSTRAINTS = "constraints"  # the list optuna-dashboard reads

# ----------------------------------------------------------------- study user attributes
TASK = "task"
TEACHER = "teacher"  # the teacher's path or hub name, as the config wrote it
DATASET = "dataset"  # the data description (which split is which)
NAS_VERSION = "nas_version"

# --------------------------------------------------------------- study system attributes
HEARTBEAT = "nas:heartbeat:"  # + driver id: unix time of its last beat
CONFIG_ATTR = "nas:config"  # the config snapshot (thresholds resolved, password masked)
SPACE_ATTR = "nas:search_space"  # {param: Optuna distribution JSON}
CHANGES_ATTR = "nas:config_changes"  # the accepted changes, oldest first
TEACHER_KEY = "nas:teacher_scores"  # {"selection": {...}, "test": {...}}
NO_ANSWER_KEY = "nas:no_answer"  # {"selection": {...}, "test": {...}} (QA)
WOS_KEY = "nas:wos"  # the teacher's word-order sensitivity (classification): wos, p, family...
TEST_KEY = "nas:test:"  # prefix: nas:test:<trial number> -> {metric: value}
STUDY_RECORDS = (
    CONFIG_ATTR,
    SPACE_ATTR,
    CHANGES_ATTR,
    TEACHER_KEY,
    NO_ANSWER_KEY,
    TEST_KEY,
    WOS_KEY,
)
_NAMESPACE = "nas:"


def legacy_name(key: str) -> str:
    """The user attribute a study made before the move holds ``key`` under (``config``)."""
    return key.removeprefix(_NAMESPACE)


def study_records(study: optuna.Study) -> dict[str, Any]:
    """Every ``nas:`` record of the study by its key, old-layout user attributes included (the
    system attribute wins where both exist)."""
    names = {legacy_name(k) for k in STUDY_RECORDS}
    out = {
        _NAMESPACE + k: v
        for k, v in study.user_attrs.items()
        if k in names or k.startswith(legacy_name(TEST_KEY))
    }
    system = study._storage.get_study_system_attrs(study._study_id)
    out.update({k: v for k, v in system.items() if k.startswith(_NAMESPACE)})
    return out


def study_record(study: optuna.Study, key: str) -> Any:
    """The study's record ``key`` (one of :data:`STUDY_RECORDS`, or ``TEST_KEY`` + number);
    None when the study has none."""
    system = study._storage.get_study_system_attrs(study._study_id)
    if key in system:
        return system[key]
    return study.user_attrs.get(legacy_name(key))


def set_study_record(study: optuna.Study, key: str, value: Any) -> None:
    """Store the record ``key`` as a study system attribute (where ``optuna studies`` does not
    print it); an old-layout copy under the user attribute :func:`legacy_name` is updated too."""
    study._storage.set_study_system_attr(study._study_id, key, value)
    if legacy_name(key) in study.user_attrs:
        study.set_user_attr(legacy_name(key), value)


def config_snapshot(study: optuna.Study) -> dict[str, Any] | None:
    """The config snapshot the study stored (``nas study run``), or None."""
    value = study_record(study, CONFIG_ATTR)
    return value if isinstance(value, dict) else None


def named_constraints(trial: FrozenTrial) -> dict[str, float]:
    """The trial's constraints by name, without the dashboard's positional copies."""
    return {k: v for k, v in trial.constraints.items() if not k.isdigit()}


def front_rows(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front (``study.best_trials``), smallest student first."""
    trials = study.best_trials
    names = metric_names(study)
    key = names.index(PARAMS) if PARAMS in names else len(study.directions) - 1
    return sorted(trials, key=lambda t: t.values[key])


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        state = t.state.name
        if t.state == TrialState.COMPLETE and not is_feasible(t):
            state = "COMPLETE (infeasible)"
        counts[state] = counts.get(state, 0) + 1
    return counts


def failure_reason(trial: FrozenTrial) -> str:
    """Why the trial failed (``unknown`` when nas did not say)."""
    return str(trial.user_attrs.get(REASON, "unknown"))


def failure_message(trial: FrozenTrial, limit: int = 200) -> str:
    """The first line of the trial's failure message, at most ``limit`` characters."""
    text = str(trial.user_attrs.get(MESSAGE) or "")
    return text.splitlines()[0][:limit] if text else ""


def is_baseline(trial: FrozenTrial) -> bool:
    """Whether the trial is the study's baseline (the config's ``baseline:`` params)."""
    return bool(trial.user_attrs.get(BASELINE_TAG))


def failure_reasons(study: optuna.Study) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        reason = failure_reason(t)
        reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def test_scores(study: optuna.Study) -> dict[int, dict[str, float]]:
    """Test-split metrics by trial number, for the trials that have them."""
    out = {}
    for key, value in study_records(study).items():
        number = key.removeprefix(TEST_KEY)
        if key.startswith(TEST_KEY) and number.isdigit() and isinstance(value, dict):
            out[int(number)] = {k: float(v) for k, v in value.items()}
    return out


def teacher_scores(study: optuna.Study) -> dict[str, dict[str, float]]:
    """The teacher's metrics on the ``selection`` and ``test`` splits (empty before scoring)."""
    value = study_record(study, TEACHER_KEY)
    return value if isinstance(value, dict) else {}


def wos_record(study: optuna.Study) -> dict[str, Any]:
    """The teacher's word-order sensitivity the study measured (empty before, and for QA)."""
    value = study_record(study, WOS_KEY)
    return dict(value) if isinstance(value, dict) else {}


def no_answer_record(study: optuna.Study) -> dict[str, dict[str, float]]:
    """QA: the scores of answering "no answer" everywhere, by split (empty before scoring)."""
    value = study_record(study, NO_ANSWER_KEY)
    return dict(value) if isinstance(value, dict) else {}


def metric_names(study: optuna.Study) -> list[str]:
    """The study's objective names (``value0``... when the study never named them)."""
    return study.metric_names or [f"value{i}" for i in range(len(study.directions))]


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether every constraint of the trial holds (Optuna: a value <= 0 is feasible)."""
    return all(v <= 0 for v in trial.constraints.values())


# -------------------------------------------------------------------------------- rungs
def rung_key(rung: int) -> str:
    """The trial user attribute of rung index ``rung`` (``rung:0`` is the first)."""
    return f"{RUNG_PREFIX}{rung}"


def rung_record(
    epoch_fraction: float, values: Mapping[str, float], constraints: Mapping[str, float]
) -> dict[str, Any]:
    """What ``rung:<k>`` holds: the training fraction, the objective values by name and the
    Optuna constraints (<= 0 feasible) of the study's thresholds at that point."""
    return {
        "epoch_fraction": float(epoch_fraction),
        "values": {k: float(v) for k, v in values.items()},
        "constraints": {k: float(v) for k, v in constraints.items()},
    }


def trial_rungs(trial: FrozenTrial) -> dict[int, dict[str, Any]]:
    """The trial's rung records by rung index, lowest first."""
    out = {}
    for key, value in trial.user_attrs.items():
        index = key.removeprefix(RUNG_PREFIX)
        if key.startswith(RUNG_PREFIX) and index.isdigit() and isinstance(value, dict):
            out[int(index)] = value
    return dict(sorted(out.items()))


def rung_records(study: optuna.Study, rung: int) -> list[RungEntry]:
    """Every trial that reached rung index ``rung``, whatever its state now (RUNNING,
    COMPLETE, PRUNED, FAIL), as the entries MO-ASHA ranks: values in the study's objective
    order. A trial that failed to be re-run (:data:`RERUN_REASONS`) is left out: its copy
    records the rung again.

    Raises:
        ValueError: a record lacks one of the study's objectives (a record of another study).
    """
    names = metric_names(study)
    out = []
    for trial in study.get_trials(deepcopy=False):
        record = trial.user_attrs.get(rung_key(rung))
        if not isinstance(record, dict) or is_rerun(trial):
            continue
        values = record.get("values") or {}
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(
                f"trial {trial.number}: {rung_key(rung)} has no value for {missing}; "
                f"the study's objectives are {names}"
            )
        constraints = record.get("constraints") or {}
        entry = RungEntry(
            trial.number, tuple(float(values[n]) for n in names), violation(constraints)
        )
        out.append(entry)
    return out


def pruned_at(trial: FrozenTrial) -> int | None:
    """The rung index a PRUNED trial stopped at (None for other trials)."""
    if trial.state != TrialState.PRUNED or PRUNED_RUNG not in trial.user_attrs:
        return None
    return int(trial.user_attrs[PRUNED_RUNG])


def prune_reason(trial: FrozenTrial) -> str:
    """Why the trial was pruned (empty for a trial nas did not prune)."""
    return str(trial.user_attrs.get(PRUNE_REASON, ""))


def warm_source(trial: FrozenTrial) -> str | None:
    """Where a warm-started trial's params came from (``study@storage #number``), or None."""
    value = trial.user_attrs.get(WARM_START)
    return str(value) if value is not None else None


def is_rerun(trial: FrozenTrial) -> bool:
    """Whether the trial failed in a way that queues its params again (:data:`RERUN_REASONS`:
    an orphan, an interrupt): its copy stands for it, so neither the total nor a rung counts
    it."""
    return trial.state == TrialState.FAIL and trial.user_attrs.get(REASON) in RERUN_REASONS
