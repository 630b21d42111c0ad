"""The Optuna side of a search: the study, telling results and failures, the front.

The study database is the single source of truth (DESIGN decision 1): resuming is running the
same study name against the same storage. This module knows Optuna, not Ray. Storage URLs live
in ``nas.study.storage``; drivers sharing a study (heartbeats, orphans, the total) in
``nas.study.drivers``.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import optuna
import sqlalchemy.exc
from optuna.exceptions import DuplicatedStudyError, StorageInternalError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

import nas
from nas import feasibility
from nas.config import StudyConfig
from nas.errors import NasError, StorageUnreachable
from nas.objectives import directions
from nas.study.drift import snapshot
from nas.study.record import (
    BASELINE_TAG,
    CONFIG_ATTR,
    DASHBOARD_CONSTRAINTS,
    DATASET,
    MESSAGE,
    NAS_VERSION,
    PRUNE_REASON,
    PRUNED_RUNG,
    REASON,
    TASK,
    TEACHER,
    config_snapshot,
    rung_key,
    rung_record,
    set_study_record,
)
from nas.study.storage import first_line, mask_password

# Pauses between attempts to record a trial while the storage fails (about two minutes in all:
# a PostgreSQL restart or failover, a SQLite lock held past its busy timeout), then the driver
# stops and leaves the trial RUNNING for the next driver.
TELL_RETRY_PAUSES_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
_T = TypeVar("_T")


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
        # group: a space with several student families is conditional (define-by-run), and
        # multivariate TPE models each group of parameters that occur together jointly; a
        # space without families is one group, sampled as without the option
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=True
            )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


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
    if config_snapshot(study) is None:
        write_config(study, config)
        study.set_user_attr(DATASET, dataset)
        study.set_user_attr(NAS_VERSION, nas.__version__)
    return study


def write_config(study: optuna.Study, config: StudyConfig) -> None:
    """Store ``config`` as the study's snapshot (the storage password masked), and the short
    copies of its task and teacher that ``optuna studies`` shows."""
    stored = snapshot(config)
    if stored.get("storage"):
        stored["storage"] = mask_password(stored["storage"])
    set_study_record(study, CONFIG_ATTR, stored)
    for key, value in ((TEACHER, config.teacher.path), (TASK, config.task)):
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


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
    """Record a trial's attributes and constraints, then end it COMPLETE with ``values``.

    The trial stays RUNNING until the last write (state and values, one transaction), and every
    write before it is idempotent, so a tell cut off part-way can be repeated whole; what is
    stored already is not written again. Optuna has no public batched write: each attribute is
    one transaction.
    """
    stored = write_user_attrs(study, trial, attrs)
    _set_constraints(study, trial, stored, constraints)
    return study.tell(trial, list(values))


def _set_constraints(
    study: optuna.Study, trial: optuna.Trial, stored: FrozenTrial, constraints: Mapping[str, float]
) -> None:
    """Set the trial's Optuna constraints (<= 0 feasible), skipping those stored already."""
    for key, value in constraints.items():
        if key not in stored.constraints:  # Optuna warns about, and ignores, a second set
            trial.set_constraint(key, value)
    if constraints:
        # optuna-dashboard 0.21 reads constraint values only from this list (Optuna's older
        # format); Optuna 5 reads both, so the list repeats the named values under "0", "1"...
        listed = [float(v) for v in constraints.values()]
        if stored.system_attrs.get(DASHBOARD_CONSTRAINTS) != listed:
            study._storage.set_trial_system_attr(trial._trial_id, DASHBOARD_CONSTRAINTS, listed)


def write_user_attrs(
    study: optuna.Study, trial: optuna.Trial | int, attrs: Mapping[str, Any]
) -> FrozenTrial:
    """Set the trial's user attributes ``attrs`` in order, skipping those stored with the same
    value (a repeated tell). Returns the trial as read before the writes."""
    storage = study._storage
    trial_id = (
        trial._trial_id
        if isinstance(trial, optuna.Trial)
        else storage.get_trial_id_from_study_id_trial_number(study._study_id, trial)
    )
    stored = storage.get_trial(trial_id)
    for key, value in attrs.items():
        if key not in stored.user_attrs or stored.user_attrs[key] != _as_stored(value):
            storage.set_trial_user_attr(trial_id, key, value)
    return stored


def _as_stored(value: Any) -> Any:
    """``value`` as it reads back from the storage (JSON: tuples become lists)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return value


def tell_failure(
    study: optuna.Study,
    trial: optuna.Trial | int,
    reason: str,
    message: str,
    attrs: Mapping[str, Any] | None = None,
) -> FrozenTrial:
    """Mark a trial FAIL with a reason (oom, nan_loss, invalid_config, timeout, error...).

    Like :func:`tell_complete`, it can be repeated whole after a storage error part-way. A
    trial already finished raises (Optuna's ValueError): the searcher's ``_settled`` tells a
    lost answer of its own from another driver's FAIL ``orphaned``, which must be reported."""
    write_user_attrs(study, trial, {REASON: reason, MESSAGE: message[:2000], **(attrs or {})})
    return study.tell(trial, state=TrialState.FAIL)


def record_rung(
    study: optuna.Study,
    trial: optuna.Trial | int,
    rung: int,
    epoch_fraction: float,
    values: Mapping[str, float],
    constraints: Mapping[str, float],
) -> FrozenTrial:
    """Store the trial's evaluation at rung index ``rung`` (``rung:<k>``, see
    :func:`nas.study.record.rung_record`) before its decision, so the trials deciding after it
    rank against it. Idempotent: the same record is not written twice."""
    record = rung_record(epoch_fraction, values, constraints)
    return write_user_attrs(study, trial, {rung_key(rung): record})


def tell_pruned(
    study: optuna.Study,
    trial: optuna.Trial | int,
    rung: int,
    values: Mapping[str, float],
    reason: str,
    *,
    epoch_fraction: float | None = None,
    constraints: Mapping[str, float] | None = None,
) -> FrozenTrial:
    """End a trial PRUNED at rung index ``rung``, with its values there and a one-line reason.

    The rung record is written when ``epoch_fraction`` is given (else it must be stored
    already, by :func:`record_rung`, with these values). Like :func:`tell_failure` it can be
    repeated whole after a storage error part-way; a trial already PRUNED (a tell whose answer
    was lost) is returned as stored. A PRUNED trial has no values, so it never enters the
    front (Optuna's ``best_trials`` reads COMPLETE trials only). It carries the rung's
    constraints as its Optuna constraints, as Optuna's own ``constraints_func`` gives PRUNED
    trials theirs: TPE then ranks a trial infeasible at its rung with the infeasible trials, by
    violation (docs/architecture.md, "Pruning in a run").

    Raises:
        ValueError: no rung record to go with the values, or one with other values.
    """
    stored = _stored(study, trial)
    if stored.state == TrialState.PRUNED:
        return stored
    record = stored.user_attrs.get(rung_key(rung))
    if epoch_fraction is not None:
        record = rung_record(epoch_fraction, values, constraints or {})
    elif not isinstance(record, dict) or record.get("values") != _as_stored(dict(values)):
        raise ValueError(
            f"trial {stored.number}: {rung_key(rung)} does not hold {dict(values)}; "
            "record the rung first (record_rung) or pass epoch_fraction and constraints"
        )
    attrs = {rung_key(rung): record, PRUNED_RUNG: rung, PRUNE_REASON: reason.splitlines()[0]}
    write_user_attrs(study, stored.number, attrs)
    live = trial if isinstance(trial, optuna.Trial) else optuna.Trial(study, stored._trial_id)
    _set_constraints(study, live, stored, record.get("constraints") or {})
    return study.tell(stored.number, state=TrialState.PRUNED)


def _stored(study: optuna.Study, trial: optuna.Trial | int) -> FrozenTrial:
    storage = study._storage
    if isinstance(trial, optuna.Trial):
        return storage.get_trial(trial._trial_id)
    return storage.get_trial(
        storage.get_trial_id_from_study_id_trial_number(study._study_id, trial)
    )


def storage_outage(exc: BaseException) -> bool:
    """Whether ``exc`` is a storage error that may pass: a lost or refused connection, a server
    restarting, a SQLite lock held past the busy timeout, a full disk, an unreadable journal.
    Bad data or a schema mismatch (IntegrityError, DataError, ProgrammingError) fails the same
    way again, so it is not one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.DBAPIError):
            outage = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
            return isinstance(seen, outage) or seen.connection_invalidated
        transient = (
            sqlalchemy.exc.DisconnectionError,
            sqlalchemy.exc.TimeoutError,  # no pooled connection within the pool's timeout
            sqlalchemy.exc.PendingRollbackError,
            sqlite3.OperationalError,
            OSError,
        )
        if isinstance(seen, transient) or "database is locked" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return isinstance(exc, StorageInternalError)  # a failed commit with no cause kept


def storage_label(study: optuna.Study) -> str:
    """The study's storage as messages name it: its URL with the password masked."""
    url = _storage_url(study)
    return mask_password(url) if url else type(study._storage).__name__


def _storage_url(study: optuna.Study) -> str:
    storage = study._storage
    return str(getattr(getattr(storage, "_backend", storage), "url", ""))


def with_storage_retries(
    action: Callable[[], _T], study: optuna.Study, what: str, say: Callable[[str], None]
) -> _T:
    """``action()``, repeated after a storage outage (:func:`storage_outage`) with the pauses
    of ``TELL_RETRY_PAUSES_S``; the first outage is said in one line. ``action`` must be safe
    to repeat whole (the ``tell_*`` functions are). Other errors are raised at once.

    Raises:
        StorageUnreachable: the storage still failed after the last pause; ``what`` (e.g.
            ``trial 7``) is named with the storage and what happens to it.
    """
    waited = 0.0
    for pause in (*TELL_RETRY_PAUSES_S, None):
        try:
            return action()
        except Exception as exc:
            if not storage_outage(exc):
                raise
            cause = _outage_text(exc, _storage_url(study))
            if pause is None:
                raise StorageUnreachable(
                    f"storage {storage_label(study)} stayed unreachable for {waited:.0f} s "
                    f"while recording {what} ({cause}); {what} stays RUNNING and the next "
                    "`nas study run` re-runs it"
                ) from None
            if not waited:
                total = sum(TELL_RETRY_PAUSES_S)
                say(
                    f"storage {storage_label(study)} failed while recording {what} ({cause}); "
                    f"retrying for up to {total:.0f} s"
                )
            time.sleep(pause)
            waited += pause
    raise AssertionError("unreachable")


def _outage_text(exc: BaseException, url: str) -> str:
    """The first line of the error under Optuna's generic "exception during the commit"."""
    inner = exc.__cause__ if isinstance(exc, StorageInternalError) and exc.__cause__ else exc
    text = first_line(inner, url) if url else (str(inner).strip().splitlines() or [""])[0]
    return f"{type(inner).__name__}: {text}"[:300]


# Optuna's private handles, needed where its public API has no equivalent, used only in this
# package: a trial read back by id mid-tell, the storage object for optuna-dashboard, the id
# in the dashboard's URL.
def stored_trial(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    """``trial`` as the storage holds it now (its state after a tell whose answer was lost)."""
    return study._storage.get_trial(trial._trial_id)


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage object ``study`` reads and writes (what optuna-dashboard serves)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The storage's id of ``study`` (optuna-dashboard's URL names studies by it)."""
    return study._study_id
