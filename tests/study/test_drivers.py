"""Drivers sharing a study: orphans by process and heartbeat, races for one orphan, the total."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support.servers import MARIADB, POSTGRES

from nas.config import load_study
from nas.study import drivers
from nas.study.drivers import (
    ORPHAN_GRACE_S,
    Heartbeat,
    _claim_failure,
    ask_within,
    beat,
    counted_trials,
    driver_id,
    finished_count,
    heartbeats,
    recover_orphans,
)
from nas.study.lifecycle import open_study
from nas.study.storage import open_storage

HOST = socket.gethostname()


def url_for(kind: str, tmp_path: Path) -> str:
    return {
        "sqlite": f"sqlite:///{tmp_path / 'nas.db'}",
        "journal": f"journal:{tmp_path / 'nas.log'}",
        "postgresql": POSTGRES,
        "mariadb": MARIADB,
    }[kind]


def new_study(tiny_study, url: str, name: str = "tiny") -> optuna.Study:  # type: ignore[no-untyped-def]
    config = load_study(tiny_study(name=name, baseline=None))
    return open_study(config, open_storage(url), ["exact", "params"], url)


def running(study: optuna.Study, driver: str | None) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_int("n_layers", 1, 4)
    if driver is not None:
        trial.set_user_attr("driver", driver)
    return trial


def test_orphans_by_process_and_heartbeat(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study = new_study(tiny_study, f"sqlite:///{tmp_path / 'o.db'}")
    now = time.time()
    beat(study, "fresh-host:1", now - 10)
    beat(study, "stale-host:1", now - ORPHAN_GRACE_S - 60)
    beat(study, f"{HOST}:1", now - ORPHAN_GRACE_S - 60)  # pid 1 lives: a reused pid
    trials = {
        "dead here": running(study, f"{HOST}:999999"),
        "alive here": running(study, driver_id()),
        "fresh elsewhere": running(study, "fresh-host:1"),
        "stale elsewhere": running(study, "stale-host:1"),
        "never beat elsewhere": running(study, "old-nas-host:1"),
        "stale pid reused": running(study, f"{HOST}:1"),
        # a restarted container: same host, same pid as this process, another start time
        "same pid, older process": running(study, f"{HOST}:{os.getpid()}:1"),
        "untagged, just asked": running(study, None),
    }
    orphans = {t.number for t in recover_orphans(study, now=now)}
    expected = {"dead here", "stale elsewhere", "stale pid reused", "same pid, older process"}
    assert orphans == {trials[k].number for k in expected}
    stored = study.get_trials()
    for key, trial in trials.items():
        state = stored[trial.number].state
        assert state == (TrialState.FAIL if key in expected else TrialState.RUNNING), key
    assert "silent for" in stored[trials["stale elsewhere"].number].user_attrs["fail_message"]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["requeued_from"] for t in waiting) == sorted(orphans)
    for t in waiting:
        assert t.system_attrs["fixed_params"] == stored[t.user_attrs["requeued_from"]].params
    assert finished_count(study) == 0  # orphans do not count toward the total
    # an untagged trial (its driver died between ask and tag) is an orphan after the grace
    later = recover_orphans(study, now=now + ORPHAN_GRACE_S + 60)
    assert trials["untagged, just asked"].number in {t.number for t in later}


def test_a_rerun_lost_again_is_not_queued_twice(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study = new_study(tiny_study, f"sqlite:///{tmp_path / 'r.db'}")
    first = running(study, f"{HOST}:999999")
    recover_orphans(study)
    rerun = study.ask()  # pops the queued params
    assert rerun.suggest_int("n_layers", 1, 4) == first.params["n_layers"]
    rerun.set_user_attr("driver", f"{HOST}:999999")
    assert [t.number for t in recover_orphans(study)] == [rerun.number]
    assert study.get_trials(states=(TrialState.WAITING,)) == []


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql", "mariadb"])
def test_two_drivers_recover_each_orphan_once(
    tiny_study: Callable[..., Path], tmp_path: Path, name: str, kind: str
) -> None:
    url = url_for(kind, tmp_path)
    study = new_study(tiny_study, url, name)
    lost = [running(study, f"{HOST}:999999").number for _ in range(6)]
    stale = study.get_trials(states=(TrialState.RUNNING,))  # what a slower driver still sees
    two = [optuna.load_study(study_name=name, storage=open_storage(url)) for _ in range(2)]
    start = threading.Barrier(2)
    found: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def driver(i: int) -> None:
        try:
            start.wait()
            found[i] = [t.number for t in recover_orphans(two[i])]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=driver, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(found[0] + found[1]) == lost  # each orphan recovered by exactly one driver
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["requeued_from"] for t in waiting) == lost
    # a driver that judged from an old read loses the RUNNING -> FAIL step and queues nothing
    assert not _claim_failure(two[1], stale[0], "orphaned", "late")
    assert len(study.get_trials(states=(TrialState.WAITING,))) == len(lost)


def test_the_total_overshoots_by_at_most_one_per_other_driver(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 't.db'}"
    a = new_study(tiny_study, url)
    b = optuna.load_study(study_name="tiny", storage=open_storage(url))
    n_trials = 3
    assert ask_within(a, n_trials) is not None and ask_within(a, n_trials) is not None
    real_ask = a.ask

    def b_asks_between_a_read_and_a_ask() -> optuna.Trial:
        assert ask_within(b, n_trials) is not None  # b reads 2 < 3 and asks: 3 held
        return real_ask()  # a read 2 < 3 before b asked: 4 held

    a.ask = b_asks_between_a_read_and_a_ask  # type: ignore[method-assign]
    assert ask_within(a, n_trials) is not None
    assert counted_trials(a) == n_trials + 1  # n_trials + (drivers - 1)
    assert ask_within(a, n_trials) is None and ask_within(b, n_trials) is None
    assert all(t.user_attrs["driver"] == driver_id() for t in a.get_trials())


def test_heartbeat_beats_until_the_driver_stops(
    tiny_study: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = new_study(tiny_study, f"sqlite:///{tmp_path / 'h.db'}")
    monkeypatch.setattr(drivers, "HEARTBEAT_S", 0.05)
    with Heartbeat(study, print) as heart:
        first = heartbeats(study)[driver_id()]
        time.sleep(0.5)
        assert heartbeats(study)[driver_id()] > first
    assert not heart._thread.is_alive()
    last = heartbeats(study)[driver_id()]
    time.sleep(0.2)
    assert heartbeats(study)[driver_id()] == last


def test_a_trial_taken_by_another_driver_drops_its_result(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from nas.search.searcher import StudySearcher
    from nas.search_space import load_search_space

    config = load_study(tiny_study(baseline=None))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    study = open_study(config, open_storage(url), ["exact", "params"], url)
    lines: list[str] = []
    space = load_search_space(config.search_space)
    searcher = StudySearcher(study, space, config, ["exact", "params"], 2, tmp_path, lines.append)
    assert searcher.suggest("a") is not None
    (trial,) = study.get_trials(states=(TrialState.RUNNING,))
    assert _claim_failure(study, trial, "orphaned", "judged dead by another driver")
    searcher.on_trial_complete("a", None, error=True)  # its own failure cannot be told now
    assert "was ended by another driver (FAIL orphaned)" in lines[-1]
    assert study.get_trials()[0].user_attrs["fail_message"] == "judged dead by another driver"


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_an_orphan_loses_the_checkpoint_a_cut_off_tell_left(
    tiny_study: Callable[..., Path], tmp_path: Path, kind: str
) -> None:
    """Both files the trial lists go, the recorded one's record too (a journal cannot remove a
    record); another trial's checkpoint stays."""
    import json

    from nas.study import ARTIFACT_ROOT, CHECKPOINT_FILES

    study = new_study(tiny_study, url_for(kind, tmp_path))
    root = tmp_path / "artifacts"
    root.mkdir()
    for name in ("a1", "a2", "keep"):
        (root / name).write_bytes(b"x")
    trial = running(study, f"{HOST}:999999")
    trial.set_user_attr(ARTIFACT_ROOT, str(root))
    trial.set_user_attr(CHECKPOINT_FILES, {"config.json": "a1", "model.safetensors": "a2"})
    meta = {"artifact_id": "a1", "filename": "config.json", "mimetype": "x", "encoding": None}
    trial.storage.set_trial_system_attr(trial._trial_id, "artifacts:a1", json.dumps(meta))
    assert [t.number for t in recover_orphans(study)] == [trial.number]
    assert sorted(p.name for p in root.iterdir()) == ["keep"]
    fresh = optuna.load_study(study_name="tiny", storage=open_storage(url_for(kind, tmp_path)))
    records = optuna.artifacts.get_all_artifact_meta(fresh.trials[0], storage=fresh._storage)
    assert [m.artifact_id for m in records] == ([] if kind == "sqlite" else ["a1"])
