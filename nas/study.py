"""The Optuna side of a search: storage, the study, telling results, failures and orphans.

The study database is the single source of truth (DESIGN decision 1): resuming is running the
same study name against the same storage. This module knows Optuna, not Ray.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

import nas
from nas.config import StudyConfig
from nas.errors import NasError

DEFAULT_STORAGE = "sqlite:///nas.db"
STORAGE_ENV = "NAS_STORAGE"
REASON = "fail_reason"  # user attribute of failed trials: oom, nan_loss, invalid_config, ...
MESSAGE = "fail_message"
BASELINE_TAG = "baseline"
REQUEUED_FROM = "requeued_from"  # user attr on a re-enqueued trial: the orphan's number
DRIVER = "driver"  # user attr: host:pid of the driver that asked the trial
RERUN_REASONS = ("orphaned", "interrupted")  # failures whose params are queued again once
DASHBOARD_CONSTRAINTS = "constraints"  # system attr: the list optuna-dashboard reads


class StorageError(NasError):
    """The storage URL cannot be opened."""


def resolve_storage(cli: str | None, config: StudyConfig | None = None) -> str:
    """The storage URL: ``--storage``, then the study config, then ``NAS_STORAGE``, then SQLite.

    Commands that name a study rather than a config file pass no config.
    """
    from_config = config.storage if config is not None else None
    return cli or from_config or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def mask_password(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(url: str) -> BaseStorage:
    """An Optuna storage for a SQLAlchemy URL or ``journal:PATH`` (a JournalStorage file)."""
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 60}
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # sqlalchemy raises many types; all mean "cannot open"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(
            f"storage {mask_password(url)} cannot be opened ({first[:300]}); check the URL, "
            "that the server runs and the database exists, or use sqlite:///nas.db"
        ) from None


def make_sampler(config: StudyConfig) -> optuna.samplers.BaseSampler:
    seed = config.sampler.seed
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
    """Create or load the study; an existing study with other directions is an error."""
    wanted: list[Any] = directions(config, objective_names)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if config.name in existing:
        have = [d.name.lower() for d in existing[config.name].directions]
        if have != wanted:
            raise NasError(
                f"study '{config.name}' exists in {mask_password(url)} with directions {have}, "
                f"but {config.source_file} asks {wanted} for {list(objective_names)}; "
                "rename the study (name:) or use another storage"
            )
    study = optuna.create_study(
        study_name=config.name,
        storage=storage,
        directions=wanted,
        sampler=make_sampler(config),
        load_if_exists=True,
    )
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


def driver_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def finished_count(study: optuna.Study) -> int:
    """Trials that count toward n_trials: COMPLETE and FAIL, except orphans (they re-run)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    return sum(1 for t in trials if t.user_attrs.get(REASON) not in RERUN_REASONS)


def constraint_values(config: StudyConfig, metrics: Mapping[str, float]) -> dict[str, float]:
    """Optuna constraints (<= 0 feasible): ``min - value`` per threshold."""
    return {f"{t.metric}>={t.min:g}": t.min - float(metrics[t.metric]) for t in config.thresholds}


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


def recover_orphans(study: optuna.Study, alive: set[str] | None = None) -> list[FrozenTrial]:
    """Fail RUNNING trials whose driver is gone (reason ``orphaned``) and enqueue their params
    once. A driver counts as gone when it ran on this host and its process no longer exists,
    or when its id is not in ``alive`` (the drivers known to be running)."""
    orphans = []
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        driver = str(trial.user_attrs.get(DRIVER, ""))
        if alive is not None and driver in alive:
            continue
        d_host, _, d_pid = driver.partition(":")
        if alive is None and d_host == host and d_pid.isdigit() and _pid_alive(int(d_pid)):
            continue
        if alive is None and d_host not in (host, ""):
            continue  # another machine's driver: it fails its own trials when it restarts
        tell_failure(study, trial.number, "orphaned", f"driver {driver or '?'} died")
        requeue(study, trial)
        orphans.append(trial)
    return orphans


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue a lost trial's params again, once (a re-run that is lost again is not)."""
    if not trial.params or REQUEUED_FROM in trial.user_attrs:
        return
    tags: dict[str, Any] = {REQUEUED_FROM: trial.number}
    if trial.user_attrs.get(BASELINE_TAG):
        tags[BASELINE_TAG] = True
    study.enqueue_trial(trial.params, user_attrs=tags, skip_if_exists=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def enqueue_baseline(study: optuna.Study, baseline: Mapping[str, Any] | None) -> bool:
    """Enqueue the baseline params once per study (never again on resume)."""
    if not baseline or study.user_attrs.get("baseline_enqueued"):
        return False
    study.enqueue_trial(dict(baseline), user_attrs={BASELINE_TAG: True})
    study.set_user_attr("baseline_enqueued", True)
    return True


def front_rows(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front (``study.best_trials``), smallest student first."""
    trials = study.best_trials
    names = study.metric_names or []
    key = names.index("params") if "params" in names else len(study.directions) - 1
    return sorted(trials, key=lambda t: t.values[key])


def format_front(study: optuna.Study) -> str:
    names = study.metric_names or [f"value{i}" for i in range(len(study.directions))]
    rows = front_rows(study)
    if not rows:
        return "Pareto front: empty (no feasible COMPLETE trial yet)"
    header = ["trial", *names, "n_layers", "n_heads", "hidden_size", "ffn_dim"]
    lines = [header]
    for t in rows:
        values = [
            f"{v / 1e6:.3f}M" if n == "params" else f"{v:.2f}"
            for n, v in zip(names, t.values, strict=False)
        ]
        tag = "*" if t.user_attrs.get(BASELINE_TAG) else ""
        lines.append(
            [f"{t.number}{tag}", *values, *(str(t.params.get(k, "")) for k in header[-4:])]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=False)) for row in lines
    ]
    return "Pareto front (feasible, * = baseline):\n" + "\n".join(text)


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
