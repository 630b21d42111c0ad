"""Drivers sharing one study: who asked what, heartbeats, orphans, and the shared total.

Several ``nas study run`` processes (on one machine or many) may drive the same study. They
coordinate only through the storage, with steps that are atomic there: creating the study
(``lifecycle.open_study``), ending a RUNNING trial (:func:`_claim_failure`) and Optuna's own
popping of a WAITING trial. See docs/architecture.md, "Several drivers on one study".
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import optuna
import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from nas.study.artifacts import ArtifactRoot, open_store, parse_root
from nas.study.record import (
    ARTIFACT_ROOT,
    BASELINE_TAG,
    CHECKPOINT_FILES,
    DRIVER,
    HEARTBEAT,
    MESSAGE,
    REASON,
    REQUEUED_FROM,
    RERUN_REASONS,
)

HEARTBEAT_S = 30.0  # how often a running driver beats
ORPHAN_GRACE_S = 180.0  # a driver silent this long is dead (hosts' clocks agree far better)


def driver_id() -> str:
    """``host:pid:start`` of this process. The start time (clock ticks since boot, from /proc)
    tells a live driver from a new process that got the same pid: a restarted container keeps
    its host name and often its pid."""
    start = _start_ticks(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}" + (f":{start}" if start else "")


def _start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (the process start time), or None where /proc has none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[19] if len(fields) > 19 else None


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)  # count toward n_trials


def finished_count(study: optuna.Study) -> int:
    """Trials that count toward n_trials: COMPLETE, PRUNED (stopped at a rung: never re-run)
    and FAIL, except orphans (they re-run)."""
    trials = study.get_trials(deepcopy=False, states=FINISHED)
    return sum(1 for t in trials if not _reruns(t))


def counted_trials(study: optuna.Study) -> int:
    """Finished trials that count, plus the RUNNING trials of every driver.

    A driver asks a new trial only while this is below n_trials. Reading the count and asking
    are two steps, so D drivers can overshoot: once the count reaches n_trials, each of the other
    D - 1 drivers may have read a lower count and still be about to ask, at most one trial each
    (a driver asks one at a time). A study ends with at most n_trials + D - 1 counted trials.
    """
    states = (*FINISHED, TrialState.RUNNING)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if not _reruns(t))


def _reruns(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and trial.user_attrs.get(REASON) in RERUN_REASONS


def ask_within(study: optuna.Study, n_trials: int) -> optuna.Trial | None:
    """The next trial, tagged with this driver, or None once the study holds ``n_trials``."""
    while counted_trials(study) < n_trials:
        trial = study.ask()
        try:
            trial.set_user_attr(DRIVER, driver_id())
        except UpdateFinishedTrialError:
            continue  # another driver took it for an orphan before the tag (recover_orphans)
        return trial
    return None


def recover_orphans(
    study: optuna.Study, now: float | None = None, root: ArtifactRoot | None = None
) -> list[FrozenTrial]:
    """Fail RUNNING trials whose driver is gone (reason ``orphaned``), remove the checkpoint
    files and artifact records a cut-off tell left on them (:func:`drop_artifacts`; ``root``
    where a trial names none), and enqueue their params once. Returns the trials this driver
    recovered.

    A driver is gone when it ran on this host and its process no longer exists, or when its
    heartbeat is older than ``ORPHAN_GRACE_S``, on any host. A driver of another host that never
    beat (a nas without heartbeats) is left alone. A trial without a driver is an orphan once it
    started ``ORPHAN_GRACE_S`` ago (its driver died between asking and tagging it).
    """
    now = time.time() if now is None else now
    beats = heartbeats(study)
    orphans = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        driver = str(trial.user_attrs.get(DRIVER, ""))
        why = _gone(driver, beats.get(driver), trial, now)
        if why and _claim_failure(study, trial, "orphaned", why):
            drop_artifacts(study, trial, root)  # before any read caches the finished trial
            requeue(study, trial)
            orphans.append(trial)
    return orphans


def drop_artifacts(
    study: optuna.Study, trial: FrozenTrial, root: ArtifactRoot | None = None
) -> list[str]:
    """Remove the checkpoint of a trial that did not end COMPLETE: its files in the artifact
    store (those listed in ``checkpoint_files`` and those recorded) and, in a SQL storage, its
    ``artifacts:<id>`` records (Optuna's API cannot remove an attribute; a journal keeps its
    records, which then name removed files). Returns the artifact ids removed.

    The files' root is the trial's ``artifact_root``, else ``root``. Best effort for the files:
    a store that fails now leaves them unreferenced, as a killed driver's unrecorded ones.
    """
    recorded = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    listed = trial.user_attrs.get(CHECKPOINT_FILES)
    ids = {m.artifact_id for m in recorded}
    ids |= {str(i) for i in listed.values()} if isinstance(listed, dict) else set()
    url = trial.user_attrs.get(ARTIFACT_ROOT) or (root.url if root else None)
    if ids and url:
        store = open_store(parse_root(str(url)))
        for artifact_id in sorted(ids):
            with contextlib.suppress(Exception):  # already gone, or the store fails
                store.remove(artifact_id)
    if recorded:
        _delete_artifact_records(study, trial._trial_id)
    return sorted(ids)


def _delete_artifact_records(study: optuna.Study, trial_id: int) -> None:
    """``DELETE`` the trial's ``artifacts:*`` system attributes (Optuna's RDB schema: table
    ``trial_system_attributes``, columns ``trial_id`` and ``key``)."""
    storage = getattr(study._storage, "_backend", study._storage)
    if not isinstance(storage, optuna.storages.RDBStorage):
        return
    table = sqlalchemy.table(
        "trial_system_attributes", sqlalchemy.column("trial_id"), sqlalchemy.column("key")
    )
    statement = sqlalchemy.delete(table).where(
        table.c.trial_id == trial_id, table.c.key.like("artifacts:%")
    )
    with storage.engine.begin() as connection:
        connection.execute(statement)


def _gone(driver: str, beat: float | None, trial: FrozenTrial, now: float) -> str | None:
    """Why the trial's driver is gone, or None while it may be alive."""
    if not driver:  # datetime_start is the asking host's local time: same time zone assumed
        start = trial.datetime_start.timestamp() if trial.datetime_start else now
        return "no driver tagged it" if now - start > ORPHAN_GRACE_S else None
    if beat is not None and now - beat > ORPHAN_GRACE_S:
        return f"driver {driver} silent for {now - beat:.0f} s"
    host, _, rest = driver.partition(":")
    pid, _, started = rest.partition(":")  # older ids (host:pid) have no start
    if host != socket.gethostname() or not pid.isdigit():
        return None
    if not _pid_alive(int(pid)):
        return f"driver {driver} died"
    now_started = _start_ticks(int(pid))
    if started and now_started and now_started != started:
        return f"driver {driver} died (pid {pid} now belongs to another process)"
    return None


def _claim_failure(study: optuna.Study, trial: FrozenTrial, reason: str, message: str) -> bool:
    """End a RUNNING trial as FAIL ``reason``; False when another driver ended it first.

    The RUNNING -> FAIL step is atomic, so of two drivers recovering the same orphan exactly one
    re-queues it: Optuna's RDB storage reads the trial row with SELECT ... FOR UPDATE and
    refuses a finished trial (PostgreSQL, MySQL; on SQLite nas.study.storage's BEGIN IMMEDIATE
    serializes the read and the write), and a journal refuses the later of two records. The
    loser's reason attributes, written first, carry the same values.
    """
    storage, trial_id = study._storage, trial._trial_id
    try:
        storage.set_trial_user_attr(trial_id, REASON, reason)
        storage.set_trial_user_attr(trial_id, MESSAGE, message)
        return bool(storage.set_trial_state_values(trial_id, TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue a lost trial's params again, once (a re-run that is lost again is not).

    A trial lost while its params were being sampled keeps those it had, and all of an
    enqueued one's (the baseline's) from the queue record."""
    params = {**trial.params, **trial.system_attrs.get("fixed_params", {})}
    if not params or REQUEUED_FROM in trial.user_attrs:
        return
    tags: dict[str, Any] = {REQUEUED_FROM: trial.number}
    if trial.user_attrs.get(BASELINE_TAG):
        tags[BASELINE_TAG] = True
    study.enqueue_trial(params, user_attrs=tags, skip_if_exists=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def beat(study: optuna.Study, driver: str | None = None, at: float | None = None) -> None:
    """Record that ``driver`` (default: this process) is alive at ``at`` (default: now)."""
    when = time.time() if at is None else at
    study._storage.set_study_system_attr(
        study._study_id, HEARTBEAT + (driver or driver_id()), when
    )


def heartbeats(study: optuna.Study) -> dict[str, float]:
    """Driver id -> unix time of its last beat."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {
        k.removeprefix(HEARTBEAT): float(v) for k, v in attrs.items() if k.startswith(HEARTBEAT)
    }


class Heartbeat:
    """Beats for this driver every ``HEARTBEAT_S`` on a daemon thread, while in a ``with``.

    The first beat is written before the ``with`` body, so a driver never asks a trial before
    other drivers can see it alive. Wall-clock times: hosts must agree within ORPHAN_GRACE_S.
    """

    def __init__(self, study: optuna.Study, printer: Callable[[str], None]) -> None:
        self.study, self.printer = study, printer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nas-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        beat(self.study)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(HEARTBEAT_S):
            try:
                beat(self.study)
                failing = False
            except Exception as exc:  # noqa: BLE001 - a storage hiccup must not end the search
                if not failing:
                    self.printer(
                        f"heartbeat not written ({type(exc).__name__}); after "
                        f"{ORPHAN_GRACE_S:.0f} s without one, other drivers take this "
                        "driver's running trials for orphans"
                    )
                failing = True
