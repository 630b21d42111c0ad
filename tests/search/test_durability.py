"""A finished trial's outcome is recorded or retried, never dropped; SIGTERM and hung workers.

The storage tests drive ``StudySearcher`` with fake outcomes (a real checkpoint in a real
artifact root) against real storages, and break the storage in the middle of the tell: the
PostgreSQL backend is terminated (``pg_terminate_backend``), or another connection holds the
SQLite write lock past the busy timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import psycopg
import pytest
from optuna.exceptions import StorageInternalError
from optuna.trial import TrialState
from ray.tune.experiment import Trial
from ray.tune.search import Searcher
from sqlalchemy import event
from support.cli_run import REPO
from support.fake_outcomes import fake_result
from support.servers import POSTGRES

from nas.config import load_study
from nas.errors import StorageUnreachable
from nas.search.searcher import StudySearcher
from nas.search.stopping import StopWhenLost, TrialDeadlines
from nas.search_space import load_search_space
from nas.study import lifecycle as study
from nas.study import storage
from nas.study.drivers import finished_count, recover_orphans
from nas.study.lifecycle import open_study
from nas.study.record import named_constraints
from nas.study.storage import open_storage

ADMIN = "host=127.0.0.1 port=5432 dbname=test user=postgres"
RECORD = "INSERT INTO trial_system_attributes"  # an artifact record (or a constraint)
HOST = socket.gethostname()


def engine_of(s: optuna.Study) -> Any:
    return getattr(s._storage, "_backend", s._storage).engine


class PostgresOutage:
    """Terminates the backend of the study's connection at the tell's second artifact record
    (one is written); ``persistent``: at every statement from then on (the server stays
    unreachable)."""

    def __init__(self, s: optuna.Study, persistent: bool) -> None:
        self.engine, self.persistent, self.kills, self.records = engine_of(s), persistent, 0, 0
        event.listen(self.engine, "before_cursor_execute", self._hook)

    def _hook(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.records += statement.startswith(RECORD)
        if (self.kills == 0 and self.records < 2) or (self.kills and not self.persistent):
            return
        pid = conn.connection.dbapi_connection.info.backend_pid
        with psycopg.connect(ADMIN, autocommit=True) as admin:  # waits until it is gone
            admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid = %s",
                [pid],
            )
        self.kills += 1

    def end(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._hook)


class SqliteLock:
    """Another connection takes the write lock (``BEGIN IMMEDIATE``) just before the tell's
    second artifact record (one is written), and holds it past the busy timeout: for
    ``hold_s`` seconds, or until :meth:`end`. (nas begins every SQLite transaction, reads
    too, with the write lock.)"""

    def __init__(self, s: optuna.Study, path: Path, hold_s: float | None) -> None:
        self.storage, self.path, self.hold_s = s._storage, path, hold_s
        self.kills, self.records = 0, 0
        self.blocker: sqlite3.Connection | None = None
        self.timer: threading.Timer | None = None
        self.real = self.storage.set_trial_system_attr
        self.storage.set_trial_system_attr = self._write  # type: ignore[method-assign]

    def _write(self, *args: Any) -> None:
        self.records += 1
        if self.records == 2:
            self.kills += 1
            self.blocker = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self.blocker.execute("BEGIN IMMEDIATE")
            if self.hold_s is not None:
                self.timer = threading.Timer(self.hold_s, self.release)
                self.timer.start()
        self.real(*args)

    def release(self) -> None:
        if self.blocker is not None:
            self.blocker.execute("ROLLBACK")
            self.blocker.close()
            self.blocker = None

    def end(self) -> None:
        if self.timer is not None:
            self.timer.join()
        self.release()
        self.storage.set_trial_system_attr = self.real  # type: ignore[method-assign]


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(study, "TELL_RETRY_PAUSES_S", (0.05, 0.1, 0.2, 0.4))
    monkeypatch.setattr(storage, "SQLITE_BUSY_TIMEOUT_S", 0.25)


def url_for(kind: str, tmp_path: Path) -> str:
    return POSTGRES if kind == "postgresql" else f"sqlite:///{tmp_path / 'nas.db'}"


def driver(
    tiny_study: Callable[..., Path], url: str, name: str, tmp_path: Path
) -> tuple[StudySearcher, optuna.Study, list[str]]:
    """A searcher on a one-trial study, as a new ``nas study run`` process would have it."""
    config = load_study(tiny_study(name=name, baseline=None, n_trials=1))
    s = open_study(config, open_storage(url), ["exact", "params"], url)
    lines: list[str] = []
    space = load_search_space(config.search_space)
    artifacts = tmp_path / "artifacts"
    searcher = StudySearcher(s, space, config, ["exact", "params"], 1, artifacts, lines.append)
    return searcher, s, lines


def outage(kind: str, s: optuna.Study, tmp_path: Path, persistent: bool) -> Any:
    if kind == "postgresql":
        return PostgresOutage(s, persistent)
    return SqliteLock(s, tmp_path / "nas.db", None if persistent else 0.6)


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_an_outage_during_the_tell_is_retried_and_loses_nothing(
    tiny_study: Callable[..., Path], tmp_path: Path, name: str, kind: str, fast_retries: None
) -> None:
    searcher, s, lines = driver(tiny_study, url_for(kind, tmp_path), name, tmp_path)
    assert searcher.suggest("a") is not None
    result = fake_result(tmp_path / "artifacts", exact=61.5)
    fault = outage(kind, s, tmp_path, persistent=False)
    try:
        searcher.on_trial_complete("a", result)
    finally:
        fault.end()
    assert fault.kills >= 1
    assert searcher.lost is None and searcher.live == {}
    (trial,) = optuna.load_study(study_name=name, storage=url_for(kind, tmp_path)).trials
    assert trial.state == TrialState.COMPLETE and trial.values == [61.5, 1000.0]
    assert named_constraints(trial) == {"exact>=50": -11.5}
    assert trial.system_attrs["constraints"] == [-11.5]
    assert trial.user_attrs["metric:exact"] == 61.5 and trial.user_attrs["params"] == 1000
    recorded = optuna.artifacts.get_all_artifact_meta(trial, storage=s._storage)
    assert {m.filename for m in recorded} == set(trial.user_attrs["checkpoint_files"])
    assert len(list((tmp_path / "artifacts").iterdir())) == 3  # nothing removed
    retry_lines = [line for line in lines if "retrying for up to" in line]
    assert len(retry_lines) == 1, lines
    assert "COMPLETE" in lines[-1]


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_an_unreachable_storage_stops_the_driver_and_the_next_run_completes(
    tiny_study: Callable[..., Path], tmp_path: Path, name: str, kind: str, fast_retries: None
) -> None:
    url = url_for(kind, tmp_path)
    searcher, s, lines = driver(tiny_study, url, name, tmp_path)
    config = searcher.suggest("a")
    assert config is not None
    fault = outage(kind, s, tmp_path, persistent=True)
    try:
        searcher.on_trial_complete("a", fake_result(tmp_path / "artifacts"))
        assert isinstance(searcher.lost, StorageUnreachable)
        assert StopWhenLost(searcher).stop_all()  # the Tune loop ends
        assert searcher.suggest("b") == Searcher.FINISHED
        searcher.fail_live("error", "the Ray run ended")  # what _run_ray's finally does
    finally:
        fault.end()
    message = str(searcher.lost)
    assert searcher.lost.exit_code == 1
    assert f"storage {storage.mask_password(url)} stayed unreachable" in message
    assert "trial 0 stays RUNNING and the next `nas study run` re-runs it" in message
    assert len([line for line in lines if "retrying for up to" in line]) == 1
    assert "a" in searcher.live  # never dropped
    (trial,) = optuna.load_study(study_name=name, storage=url).trials
    assert trial.state == TrialState.RUNNING
    # cut off part-way: one of three files recorded, all three listed
    assert len(optuna.artifacts.get_all_artifact_meta(trial, storage=s._storage)) == 1
    assert len(trial.user_attrs["checkpoint_files"]) == 3

    # the driver exits; the next `nas study run` recovers the trial, then completes the study
    s._storage.set_trial_user_attr(trial._trial_id, "driver", f"{HOST}:999999")
    again, s2, lines2 = driver(tiny_study, url, name, tmp_path)
    (orphan,) = recover_orphans(s2, root=again.root)
    stored = s2._storage.get_trial(orphan._trial_id)
    assert stored.state == TrialState.FAIL and stored.user_attrs["fail_reason"] == "orphaned"
    assert optuna.artifacts.get_all_artifact_meta(stored, storage=s2._storage) == []
    assert list((tmp_path / "artifacts").iterdir()) == []  # its files are removed
    rerun = again.suggest("c")
    assert rerun is not None and rerun["params"] == config["params"]
    again.on_trial_complete("c", fake_result(tmp_path / "artifacts", exact=70.0))
    assert finished_count(s2) == 1  # the study is complete
    complete = s2.get_trials(states=(TrialState.COMPLETE,))
    assert [t.values for t in complete] == [[70.0, 1000.0]]


def test_a_commit_whose_answer_is_lost_is_kept(
    tiny_study: Callable[..., Path], tmp_path: Path, fast_retries: None
) -> None:
    """The state was committed but the reply never came: the retry finds its own COMPLETE
    trial, keeps it and its files (it must not take it for another driver's)."""
    searcher, s, lines = driver(tiny_study, url_for("sqlite", tmp_path), "tiny", tmp_path)
    assert searcher.suggest("a") is not None
    tell = s.tell

    def commit_then_fail(*args: Any, **kwargs: Any) -> Any:
        s.tell = tell  # type: ignore[method-assign]
        tell(*args, **kwargs)
        raise StorageInternalError("commit") from sqlite3.OperationalError("disk I/O error")

    s.tell = commit_then_fail  # type: ignore[method-assign]
    searcher.on_trial_complete("a", fake_result(tmp_path / "artifacts"))
    assert searcher.lost is None and searcher.live == {}
    (trial,) = s.get_trials()
    assert trial.state == TrialState.COMPLETE
    assert len(list((tmp_path / "artifacts").iterdir())) == 3
    assert "retrying" in lines[0] and "COMPLETE" in lines[-1]


def test_an_error_that_is_no_outage_fails_the_trial_and_removes_its_checkpoint(
    tiny_study: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad data or a bug after the files were recorded: not retried; FAIL error says why, and
    neither the files nor their records are left."""
    searcher, s, lines = driver(tiny_study, url_for("sqlite", tmp_path), "tiny", tmp_path)
    assert searcher.suggest("a") is not None

    def refused(*args: Any) -> None:
        raise TypeError("Object of type bytes is not JSON serializable")

    monkeypatch.setattr("nas.search.searcher.tell_complete", refused)  # after the records
    searcher.on_trial_complete("a", fake_result(tmp_path / "artifacts"))
    (trial,) = s.get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "error"
    assert "could not record the outcome: TypeError" in trial.user_attrs["fail_message"]
    fresh = optuna.load_study(study_name="tiny", storage=url_for("sqlite", tmp_path))
    assert optuna.artifacts.get_all_artifact_meta(fresh.trials[0], storage=fresh._storage) == []
    assert list((tmp_path / "artifacts").iterdir()) == []
    assert not [line for line in lines if "retrying" in line]
    assert searcher.lost is None and searcher.live == {}


def test_the_driver_stops_a_hung_worker_and_the_trial_fails_as_timeout(
    tiny_study: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searcher, s, lines = driver(tiny_study, url_for("sqlite", tmp_path), "tiny", tmp_path)
    assert searcher.suggest("a") is not None
    killed: list[object] = []
    monkeypatch.setattr("ray.kill", killed.append)
    actor = object()
    hung = SimpleNamespace(
        trial_id="a", status=Trial.RUNNING, temporary_state=SimpleNamespace(ray_actor=actor)
    )
    waiting = SimpleNamespace(trial_id="b", status=Trial.PENDING, temporary_state=None)
    deadlines = TrialDeadlines(searcher, limit_s=15.0)
    assert deadlines.enforce([hung, waiting], now=100.0) == []  # first seen RUNNING at 100
    assert deadlines.enforce([hung, waiting], now=115.0) == []
    assert deadlines.enforce([hung, waiting], now=115.5) == ["a"]
    assert killed == [actor]
    assert deadlines.enforce([hung], now=130.0) == []  # killed once
    searcher.on_trial_complete("a", None, error=True)  # what Ray reports for a killed actor
    (trial,) = s.get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "timeout"
    assert "stopped its worker after 16 s" in trial.user_attrs["fail_message"]
    assert "FAIL timeout" in lines[-1]


def test_sigterm_is_an_interrupt() -> None:
    """The handler raises Ctrl-C's exception once and says so; the earlier handler is back."""
    from nas.search.stopping import sigterm_interrupts

    with pytest.raises(KeyboardInterrupt), sigterm_interrupts(signal.SIG_DFL) as sigterm:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert sigterm.received
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_hung_worker_times_out_and_sigterm_interrupts_the_run(
    tiny_study: Callable[..., Path], tmp_path: Path
) -> None:
    """The real CLI, once: every worker hangs before its training loop (NAS_FAULT_HANG). The
    driver kills the first at its deadline (FAIL timeout, not queued again); SIGTERM while the
    second hangs ends it as interrupted, queued again, exit 143, no stack dump."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study_file = tiny_study(name="hang", n_trials=2, trial_timeout_s=2)  # driver limit 12 s
    log = tmp_path / "driver.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(
            [sys.executable, "-m", "nas", "study", "run", str(study_file), "--storage", url],
            cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "NAS_FAULT_HANG": "1"},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        deadline = time.time() + 150
        while time.time() < deadline and not timed_out_then_running(url):
            assert driver.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        driver.send_signal(signal.SIGTERM)
        driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    stderr = log.read_text()
    assert driver.returncode == 143, stderr[-3000:]
    for dump in ("Traceback", "Stack trace", "*** SIG", "Aborted", "core dumped"):
        assert dump not in stderr, stderr[-3000:]
    assert "stopped: running trials were marked FAIL interrupted and queued again" in stderr
    trials = optuna.load_study(study_name="hang", storage=url).trials
    first, second = trials[0], trials[1]
    assert first.state == TrialState.FAIL and first.user_attrs["fail_reason"] == "timeout"
    assert "the driver stopped its worker" in first.user_attrs["fail_message"]
    assert second.state == TrialState.FAIL and second.user_attrs["fail_reason"] == "interrupted"
    assert "SIGTERM" in second.user_attrs["fail_message"]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert [t.user_attrs["requeued_from"] for t in waiting] == [second.number]
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def timed_out_then_running(url: str) -> bool:
    try:
        trials = optuna.load_study(study_name="hang", storage=url).trials
    except Exception:  # noqa: BLE001 - the study is not created yet
        return False
    timed_out = [t for t in trials if t.user_attrs.get("fail_reason") == "timeout"]
    return bool(timed_out) and any(t.state == TrialState.RUNNING for t in trials)
