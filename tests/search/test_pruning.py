"""MO-ASHA in the driver, driven in-process: the scheduler hands each rung to the searcher,
which records it and decides; a stopped trial becomes PRUNED with its rung, a resume counts it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from support.fake_outcomes import fake_result

from nas.config import load_study
from nas.search.searcher import StudySearcher, trial_line
from nas.search.stopping import TrialDeadlines
from nas.search.worker import RUNG_RESULT
from nas.search_space import load_search_space
from nas.study import (
    counted_trials,
    finished_count,
    front_rows,
    pruned_at,
    recover_orphans,
    trial_rungs,
)


def rung(index: int, exact: float, params: int, step: int = 2) -> dict[str, Any]:
    """What a worker reports at a rung (nas.search.worker.report_rung)."""
    result = {"rung": index, "step": step, "total_steps": 18, "task": {"exact": exact}}
    result.update(params=params, latency_ms=None)
    return {RUNG_RESULT: json.dumps(result), "nas_outcome": "{}"}


def driver(tiny_study, tmp_path: Path, **pruning: Any):  # type: ignore[no-untyped-def]
    config = load_study(tiny_study(pruning={"enabled": True, "eta": 2, **pruning}))
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["exact", "params"])  # as open_study does
    lines: list[str] = []
    space = load_search_space(config.search_space)
    searcher = StudySearcher(study, space, config, ["exact", "params"], 4, tmp_path, lines.append)
    return searcher, TrialDeadlines(searcher, float("inf")), study, lines


def ray_trial(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status=Trial.RUNNING, temporary_state=None)


def test_a_dominated_trial_is_stopped_and_pruned_a_better_one_continues(
    tiny_study,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    searcher, scheduler, study, lines = driver(tiny_study, tmp_path)
    for trial_id in "abc":
        assert searcher.suggest(trial_id) is not None
    # a: first at rung 0, continues; b: less accurate and larger than a, rank 2 of 2: stops
    assert scheduler.on_trial_result(None, ray_trial("a"), rung(0, 70.0, 1000)) == "CONTINUE"
    b = rung(0, 60.0, 2000)
    assert scheduler.on_trial_result(None, ray_trial("b"), b) == TrialScheduler.STOP
    # c dominates a: rank 1 of 3, within the top max(1, 3 // 2)
    assert scheduler.on_trial_result(None, ray_trial("c"), rung(0, 80.0, 900)) == "CONTINUE"
    # on STOP, Tune calls the searcher's on_trial_complete with that last result
    searcher.on_trial_complete("b", b)
    pruned = study.trials[1]
    assert pruned.state == TrialState.PRUNED and pruned_at(pruned) == 0
    assert trial_rungs(pruned)[0]["values"] == {"exact": 60.0, "params": 2000.0}
    assert trial_rungs(pruned)[0]["epoch_fraction"] == 2 / 18
    assert "rank 2 of 2 at the rung, below the top 1 (eta 2)" in pruned.user_attrs["prune_reason"]
    assert "trial 1: " in lines[-1] and "PRUNED at rung 0: rank 2 of 2" in lines[-1]
    # the ones that continued carry their rung and finish as before
    searcher.on_trial_complete("a", fake_result(tmp_path / "artifacts", exact=72.0))
    assert study.trials[0].state == TrialState.COMPLETE and 0 in trial_rungs(study.trials[0])
    assert [t.number for t in front_rows(study)] == [0]  # a PRUNED trial never enters it
    # a later rung ranks only the trials that reached it: c alone continues there
    assert scheduler.on_trial_result(None, ray_trial("c"), rung(1, 85.0, 900, 6)) == "CONTINUE"
    assert sorted(trial_rungs(study.trials[2])) == [0, 1]


def test_an_infeasible_trial_is_stopped_behind_a_feasible_one(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    searcher, scheduler, study, _ = driver(tiny_study, tmp_path)
    searcher.suggest("a")
    searcher.suggest("b")
    scheduler.on_trial_result(None, ray_trial("a"), rung(0, 55.0, 5000))
    # smaller than a but below the threshold (exact >= 50): ranked after every feasible one
    b = rung(0, 40.0, 100)
    assert scheduler.on_trial_result(None, ray_trial("b"), b) == TrialScheduler.STOP
    searcher.on_trial_complete("b", b)
    assert "infeasible" in study.trials[1].user_attrs["prune_reason"]


def test_grace_trials_and_min_rung_stop_nobody(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    searcher, scheduler, study, _ = driver(tiny_study, tmp_path, min_rung=1)
    searcher.suggest("a")
    searcher.suggest("b")
    scheduler.on_trial_result(None, ray_trial("a"), rung(0, 70.0, 1000))
    assert scheduler.on_trial_result(None, ray_trial("b"), rung(0, 60.0, 2000)) == "CONTINUE"
    assert 0 in trial_rungs(study.trials[1])  # recorded all the same


def test_resume_counts_pruned_as_finished_and_never_re_runs_it(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    searcher, scheduler, study, _ = driver(tiny_study, tmp_path)
    searcher.suggest("a")
    searcher.suggest("b")
    scheduler.on_trial_result(None, ray_trial("a"), rung(0, 70.0, 1000))
    b = rung(0, 60.0, 2000)
    scheduler.on_trial_result(None, ray_trial("b"), b)
    searcher.on_trial_complete("b", b)
    searcher.on_trial_complete("a", fake_result(tmp_path / "artifacts"))
    assert finished_count(study) == 2 and counted_trials(study) == 2
    # a later driver: no orphan to recover, nothing queued again
    assert recover_orphans(study, now=1e12) == []
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]


def test_a_trial_stopped_before_an_interrupt_is_still_pruned(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    searcher, scheduler, study, _ = driver(tiny_study, tmp_path)
    searcher.suggest("a")
    searcher.suggest("b")
    scheduler.on_trial_result(None, ray_trial("a"), rung(0, 70.0, 1000))
    scheduler.on_trial_result(None, ray_trial("b"), rung(0, 60.0, 2000))
    searcher.fail_live("interrupted", "the driver was interrupted (Ctrl-C)")
    states = [t.state for t in study.trials]
    assert states[:2] == [TrialState.FAIL, TrialState.PRUNED]  # a re-runs (queued again), b not
    assert len(study.trials) == 3 and study.trials[2].state == TrialState.WAITING
    assert "PRUNED" in trial_line(study.trials[1], ["exact", "params"], "2/4")
