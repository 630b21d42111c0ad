"""The Optuna side of a search: the study, telling results and failures, the front.

The study database is the single source of truth (DESIGN decision 1): resuming is running the
same study name against the same storage. This module knows Optuna, not Ray. Storage URLs live
in ``nas.storage``; drivers sharing a study (heartbeats, orphans, the total) in ``nas.drivers``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import warnings
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

import nas
from nas import feasibility
from nas.config import StudyConfig
from nas.errors import NasError
from nas.storage import DEFAULT_STORAGE as DEFAULT_STORAGE
from nas.storage import STORAGE_ENV as STORAGE_ENV
from nas.storage import StorageError as StorageError
from nas.storage import mask_password as mask_password
from nas.storage import open_storage as open_storage
from nas.storage import resolve_storage as resolve_storage

REASON = "fail_reason"  # user attribute of failed trials: oom, nan_loss, invalid_config, ...
MESSAGE = "fail_message"
BASELINE_TAG = "baseline"
REQUEUED_FROM = "requeued_from"  # user attr on a re-enqueued trial: the orphan's number
DRIVER = "driver"  # user attr: host:pid:start of the driver that asked the trial
RERUN_REASONS = ("orphaned", "interrupted")  # failures whose params are queued again once
DASHBOARD_CONSTRAINTS = "constraints"  # system attr: the list optuna-dashboard reads


def make_sampler(config: StudyConfig, salt: str = "") -> optuna.samplers.BaseSampler:
    """The study's sampler; a ``salt`` (a driver id) turns the configured seed into another.

    The driver that creates the study samples with the configured seed; every other driver (a
    second machine, a resume) salts it with its id, or it would propose the same sequence of
    params again.
    """
    seed = config.sampler.seed
    if salt and seed is not None:
        seed = zlib.crc32(f"{seed}:{salt}".encode()) % 2**31
    name = config.sampler.name
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def directions(config: StudyConfig, objective_names: Sequence[str]) -> list[str]:
    by_name = {o.name: o.direction for o in config.objectives}
    return [
        by_name.get(n, "minimize" if n in ("params", "latency_ms") else "maximize")
        for n in objective_names
    ]


def open_study(
    config: StudyConfig,
    storage: BaseStorage,
    objective_names: Sequence[str],
    url: str,
    dataset: str = "",
) -> optuna.Study:
    """Create or load the study; an existing study with other directions is an error.

    The driver that creates the study enqueues the baseline, so it runs once however many
    drivers start together: creation is atomic (the study name is unique in every storage;
    PostgreSQL, MySQL and SQLite refuse a second row, a journal its later record) and every
    other driver gets ``DuplicatedStudyError`` and loads the study.
    """
    wanted: list[Any] = directions(config, objective_names)
    try:
        storage.create_new_study([StudyDirection[d.upper()] for d in wanted], config.name)
        created = True
    except DuplicatedStudyError:
        created = False
    sampler = make_sampler(config, "" if created else f"{socket.gethostname()}:{os.getpid()}")
    study = optuna.load_study(study_name=config.name, storage=storage, sampler=sampler)
    have = [d.name.lower() for d in study.directions]
    if have != wanted:
        raise NasError(
            f"study '{config.name}' exists in {mask_password(url)} with directions {have}, "
            f"but {config.source_file} asks {wanted} for {list(objective_names)}; "
            "rename the study (name:) or use another storage"
        )
    if created and config.baseline:
        study.enqueue_trial(dict(config.baseline), user_attrs={BASELINE_TAG: True})
    if study.metric_names != list(objective_names):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(objective_names))
    if "config" not in study.user_attrs:
        study.set_user_attr("config", _config_snapshot(config))
        study.set_user_attr("teacher", config.teacher.path)
        study.set_user_attr("task", config.task)
        study.set_user_attr("dataset", dataset)
        study.set_user_attr("nas_version", nas.__version__)
    return study


def _config_snapshot(config: StudyConfig) -> dict[str, Any]:
    snapshot = dataclasses.asdict(config)
    if snapshot.get("storage"):
        snapshot["storage"] = mask_password(snapshot["storage"])
    return json.loads(json.dumps(snapshot, default=str))


def constraint_values(config: StudyConfig, metrics: Mapping[str, float]) -> dict[str, float]:
    """Optuna constraints (<= 0 feasible) of the config's resolved thresholds."""
    return feasibility.constraint_values(config.thresholds, metrics)


def tell_complete(
    study: optuna.Study,
    trial: optuna.Trial,
    values: Sequence[float],
    constraints: Mapping[str, float],
    attrs: Mapping[str, Any],
) -> FrozenTrial:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    for key, value in constraints.items():
        trial.set_constraint(key, value)
    if constraints:
        # optuna-dashboard 0.21 reads constraint values only from this list (Optuna's older
        # format); Optuna 5 reads both, so the list repeats the named values under "0", "1"...
        trial.storage.set_trial_system_attr(
            trial._trial_id, DASHBOARD_CONSTRAINTS, [float(v) for v in constraints.values()]
        )
    return study.tell(trial, list(values))


def named_constraints(trial: FrozenTrial) -> dict[str, float]:
    """The trial's constraints by name, without the dashboard's positional copies."""
    return {k: v for k, v in trial.constraints.items() if not k.isdigit()}


def tell_failure(
    study: optuna.Study,
    trial: optuna.Trial | int,
    reason: str,
    message: str,
    attrs: Mapping[str, Any] | None = None,
) -> FrozenTrial:
    """Mark a trial FAIL with a reason (oom, nan_loss, invalid_config, timeout, error...)."""
    number = trial if isinstance(trial, int) else trial.number
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    for key, value in {REASON: reason, MESSAGE: message[:2000], **(attrs or {})}.items():
        study._storage.set_trial_user_attr(trial_id, key, value)
    return study.tell(number, state=TrialState.FAIL)


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
