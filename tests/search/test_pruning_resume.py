"""PRUNED is finished for every driver: a second driver and a resume neither re-run PRUNED
trials nor take them for orphans, and a driver SIGKILLed while a trial is at a rung is
recovered by the orphan step with every finished trial and rung record intact.

The first driver is a real process (``support/rung_driver.py``: the searcher and scheduler
of ``nas study run`` without Ray, fed reports made by hand) on a SQLite file; the later
drivers are made here the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher
from support.cli_run import REPO
from support.rung_driver import (
    DOMINATED,
    FIRST_RUNGS,
    TRIAL_0_EXACT,
    ray_trial,
    rung_result,
    searcher_for,
)

from nas.results import rung_counts
from nas.search.searcher import StudySearcher
from nas.search.stopping import TrialDeadlines
from nas.study import (
    REASON,
    counted_trials,
    finished_count,
    pruned_at,
    recover_orphans,
    rung_records,
    trial_rungs,
)

C, P, F, R, W = (
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.FAIL,
    TrialState.RUNNING,
    TrialState.WAITING,
)
PRUNING = {"enabled": True, "eta": 2}
KILL_POINTS = ("in_record", "before_decision", "in_tell")


def start(study_file: Path, folder: Path, stop: str) -> subprocess.Popen[str]:
    """The first driver, in its own process group, blocking at ``stop`` (see rung_driver)."""
    folder.mkdir(exist_ok=True)
    script = REPO / "tests" / "support" / "rung_driver.py"
    args = [study_file, f"sqlite:///{folder / 'nas.db'}", folder / "artifacts", folder / "marker"]
    with open(folder / "driver.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, str(script), *map(str, args), stop],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO / "tests")},
            start_new_session=True,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


def wait_until_there(driver: subprocess.Popen[str], folder: Path) -> None:
    deadline = time.time() + 120
    while not (folder / "marker").exists():
        assert driver.poll() is None, (folder / "driver.log").read_text()[-3000:]
        assert time.time() < deadline, (folder / "driver.log").read_text()[-3000:]
        time.sleep(0.1)


def kill(driver: subprocess.Popen[str]) -> None:
    if driver.poll() is None:
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)


def assert_first_trials_intact(study: optuna.Study, root: Path) -> None:
    """Trial 0 COMPLETE with its values and checkpoint; trials 1 and 2 PRUNED at rung 0 with
    the values they reported there."""
    first, *pruned = study.trials[:3]
    assert first.state == C and first.values == [TRIAL_0_EXACT, 1000.0]
    recorded = optuna.artifacts.get_all_artifact_meta(first, storage=study._storage)
    assert len(recorded) == 3
    assert {m.artifact_id for m in recorded} <= {p.name for p in root.iterdir()}
    for trial, (exact, params) in zip(pruned, FIRST_RUNGS[1:], strict=True):
        assert trial.state == P and pruned_at(trial) == 0 and trial.values is None
        assert trial_rungs(trial)[0]["values"] == {"exact": exact, "params": float(params)}
    for trial, (exact, params) in zip(study.trials[:3], FIRST_RUNGS, strict=True):
        assert trial_rungs(trial)[0]["values"] == {"exact": exact, "params": float(params)}


def prune_at_rung_0(
    searcher: StudySearcher, trial_id: str, exact: float, params: int
) -> FrozenTrial:
    """Report rung 0 for ``trial_id`` to a driver made here; it must stop the trial."""
    scheduler = TrialDeadlines(searcher, float("inf"))
    result = rung_result(0, exact, params)
    assert scheduler.on_trial_result(None, ray_trial(trial_id), result) == TrialScheduler.STOP
    searcher.on_trial_complete(trial_id, result)
    return searcher.study.trials[-1]


def test_a_second_driver_and_a_resume_leave_pruned_trials_finished(
    tiny_study: Callable[..., Path], tmp_path: Path
) -> None:
    study_file = tiny_study(n_trials=5, pruning=PRUNING)
    folder = tmp_path / "first"
    first = start(study_file, folder, "wait")
    try:
        wait_until_there(first, folder)
        # a second driver while the first is alive, trial 3 running there
        second = searcher_for(study_file, f"sqlite:///{folder / 'nas.db'}", folder / "artifacts")
        study = second.study
        assert recover_orphans(study, root=second.root) == []
        assert [t.state for t in study.trials] == [C, P, P, R]
        assert finished_count(study) == 3 and counted_trials(study) == 4
        assert second.suggest("x") is not None
        assert second.suggest("y") == Searcher.FINISHED  # 3 finished + 2 running: the total
        # the first driver's PRUNED trials are ranked at the rung: rank 5 of 5
        mine = prune_at_rung_0(second, "x", 50.5, 5000)
        assert mine.number == 4 and mine.state == P
        assert "rank 5 of 5 at the rung" in mine.user_attrs["prune_reason"]
        first.communicate("go\n", timeout=60)  # trial 3 completes, the driver exits
        assert first.returncode == 0, (folder / "driver.log").read_text()[-3000:]
    finally:
        kill(first)
    # a resume once both drivers are gone: nothing is an orphan, nothing runs again
    third = searcher_for(study_file, f"sqlite:///{folder / 'nas.db'}", folder / "artifacts")
    study = third.study
    assert recover_orphans(study, root=third.root) == []
    assert [t.state for t in study.trials] == [C, P, P, C, P]
    assert not [t for t in study.trials if REASON in t.user_attrs]
    assert finished_count(study) == 5 and third.suggest("z") == Searcher.FINISHED
    assert len(study.trials) == 5  # nothing queued
    assert_first_trials_intact(study, folder / "artifacts")
    assert rung_counts(study) == {0: (5, 3)}


def test_a_driver_killed_at_a_rung_is_recovered_and_loses_nothing(
    tiny_study: Callable[..., Path], tmp_path: Path
) -> None:
    """One driver per point of a rung, started together: SIGKILLed inside the transaction
    recording trial 3's rung, before the decision, and part-way through the PRUNED tell."""
    study_file = tiny_study(n_trials=4, pruning=PRUNING)
    drivers = {point: start(study_file, tmp_path / point, point) for point in KILL_POINTS}
    try:
        for point, driver in drivers.items():
            wait_until_there(driver, tmp_path / point)
    finally:
        for driver in drivers.values():
            kill(driver)
    for point in KILL_POINTS:
        folder = tmp_path / point
        resumed = searcher_for(study_file, f"sqlite:///{folder / 'nas.db'}", folder / "artifacts")
        study = resumed.study
        killed = study.trials[3]
        assert killed.state == R, point
        assert (0 in trial_rungs(killed)) == (point != "in_record"), point  # rolled back
        assert ("pruned_rung" in killed.user_attrs) == (point == "in_tell"), point

        (orphan,) = recover_orphans(study, root=resumed.root)
        assert orphan.number == 3, point
        assert [t.state for t in study.trials] == [C, P, P, F, W], point
        killed = study.trials[3]
        assert killed.user_attrs[REASON] == "orphaned" and pruned_at(killed) is None, point
        assert "died" in killed.user_attrs["fail_message"], point
        assert_first_trials_intact(study, folder / "artifacts")
        # MO-ASHA ranks the finished trials' records, not the orphan's
        assert [e.number for e in rung_records(study, 0)] == [0, 1, 2], point

        # the orphan's params run again once; its copy ranks against trials 0-2
        assert resumed.suggest("again") is not None
        rerun = prune_at_rung_0(resumed, "again", *DOMINATED)
        assert rerun.number == 4 and rerun.params == killed.params, point
        assert rerun.user_attrs["requeued_from"] == 3, point
        assert "rank 4 of 4 at the rung" in rerun.user_attrs["prune_reason"], point
        assert finished_count(study) == 4 and resumed.suggest("more") == Searcher.FINISHED
        assert [t.state for t in study.trials] == [C, P, P, F, P], point
        assert rung_counts(study) == {0: (4, 3)}, point
