"""The searcher's tell path on a real study: NaN values, worker errors, the budget."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher
from support.fake_outcomes import fake_metrics

from nas.config import load_study
from nas.search.searcher import StudySearcher
from nas.search_space import load_search_space


def make_searcher(tiny_study, tmp_path: Path, budget: int = 3):  # type: ignore[no-untyped-def]
    config = load_study(tiny_study())
    space = load_search_space(config.search_space)
    study = optuna.create_study(directions=["maximize", "minimize"])
    lines: list[str] = []
    searcher = StudySearcher(
        study, space, config, ["exact", "params"], budget, tmp_path, lines.append
    )
    return searcher, study, lines


def test_nan_metric_fails_the_trial_as_nan_loss(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    searcher, study, lines = make_searcher(tiny_study, tmp_path)
    assert searcher.suggest("a") is not None
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    outcome = {
        "status": "ok",
        "metrics": fake_metrics(float("nan")),
        "checkpoint": str(checkpoint),
    }
    searcher.on_trial_complete("a", {"nas_outcome": json.dumps(outcome)})
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "nan_loss"
    assert "FAIL nan_loss" in lines[0]


def test_worker_error_and_missing_result_never_leave_running(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    searcher, study, _ = make_searcher(tiny_study, tmp_path)
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", None, error=True)
    searcher.on_trial_complete("b", {"unrelated": 1})
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert {t.user_attrs["fail_reason"] for t in study.trials} == {"error"}


def test_budget_ends_the_search(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    searcher, study, _ = make_searcher(tiny_study, tmp_path, budget=2)
    assert searcher.suggest("a") is not None
    assert searcher.suggest("b") is not None
    assert searcher.suggest("c") == Searcher.FINISHED
    assert len(study.trials) == 2


def test_an_unwritable_checkpoint_stops_the_run_and_requeues(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A full artifact disk fails every trial the same way: the run stops at the first, and
    its params (the baseline's here) are queued again instead of used up."""
    from nas.errors import ArtifactRootFailed
    from nas.study.drivers import finished_count

    searcher, study, lines = make_searcher(tiny_study, tmp_path)
    study.enqueue_trial({"n_layers": 1, "n_heads": 2}, user_attrs={"baseline": True})
    assert searcher.suggest("a") is not None
    message = "cannot write the checkpoint to the artifact root /x (No space left on device)"
    outcome = {"status": "fail", "reason": "artifact_write", "message": message}
    searcher.on_trial_complete("a", {"nas_outcome": json.dumps(outcome)})
    failed, again = study.trials
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == "artifact_write"
    assert again.state == TrialState.WAITING and again.user_attrs["baseline"] is True
    assert again.user_attrs["requeued_from"] == failed.number
    assert finished_count(study) == 0  # the lost attempt does not count toward the total
    assert isinstance(searcher.lost, ArtifactRootFailed) and searcher.lost.exit_code == 1
    assert "No space left" in str(searcher.lost) and "queued again" in str(searcher.lost)
    assert "FAIL artifact_write" in lines[-1]


def test_the_driver_gives_a_stopped_trials_thread_time_before_its_actor_is_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    from nas.search.driver import RunOptions, _init_ray

    monkeypatch.delenv("TUNE_FUNCTION_THREAD_TIMEOUT_S", raising=False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: None)
    _init_ray(RunOptions(storage="sqlite://", n_trials=1))
    assert os.environ["TUNE_FUNCTION_THREAD_TIMEOUT_S"] == "60"  # Ray's default is 2 s
    monkeypatch.setenv("TUNE_FUNCTION_THREAD_TIMEOUT_S", "5")
    _init_ray(RunOptions(storage="sqlite://", n_trials=1))
    assert os.environ["TUNE_FUNCTION_THREAD_TIMEOUT_S"] == "5"  # a user's setting is kept
