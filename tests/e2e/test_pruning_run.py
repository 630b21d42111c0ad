"""Pruning end to end: the real CLI, a local Ray, SQLite; MO-ASHA stops trials at a rung."""

from __future__ import annotations

from pathlib import Path

import optuna
import yaml
from conftest import TINY_BASELINE
from optuna.trial import TrialState
from support.cli_run import assert_usage_error
from support.cli_run import run_nas as nas

from nas.study import pruned_at, trial_rungs


def test_a_study_with_pruning_prunes_and_completes(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every trial is the same student (a space of one-choice parameters, the same seed), so
    every rung ties; MO-ASHA breaks ties by trial number, and with eta 2 a later trial is
    rank n of n > max(1, n // 2): trial 0 trains to the end, trials 1 and 2 stop at rung 0.
    One worker, so trial 0 always reaches the rung first."""
    space = tmp_path / "one_student.yaml"
    space.write_text(yaml.safe_dump({k: {"type": "categorical", "choices": [v]}
                                     for k, v in TINY_BASELINE.items()}))  # fmt: skip
    study_file = tiny_study(
        n_trials=3, search_space=str(space), pruning={"enabled": True, "eta": 2}
    )
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    result = nas("study", "run", str(study_file), "--storage", url, "--workers", "1", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=url)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED], states
    for trial in study.trials[1:]:
        assert pruned_at(trial) == 0
        assert (
            trial.values is None and "below the top 1 (eta 2)" in trial.user_attrs["prune_reason"]
        )
    # 200 examples at batch 32: 7 steps; rungs 1/9 and 1/3 at steps 1 and 3
    rungs = trial_rungs(study.trials[0])
    assert sorted(rungs) == [0, 1] and rungs[0]["epoch_fraction"] == 1 / 7
    assert rungs[0]["values"] == trial_rungs(study.trials[1])[0]["values"]
    assert "PRUNED at rung 0" in result.stderr and "3 of 3 trials finished" in result.stderr
    status = nas("study", "status", "tiny", "--storage", url)
    assert status.returncode == 0, status.stderr
    assert "PRUNED" in status.stdout and "pruned at rung 0: 2" in status.stdout
    # resume: the total is reached (PRUNED counts), nothing re-runs
    again = nas("study", "run", str(study_file), "--storage", url, "--workers", "1")
    assert again.returncode == 0 and "running 0 more" in again.stderr
    assert len(optuna.load_study(study_name="tiny", storage=url).trials) == 3


def test_bad_pruning_is_a_usage_error_before_any_work(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "nas.db"
    for pruning, fragment in (
        ({"enabled": True, "eta": 1}, "pruning.eta = 1 must be >= 2"),
        ({"enabled": True, "rungs": [0.5, 0.25]}, "pruning.rungs [0.5, 0.25] must increase"),
        ({"enabled": True, "rungs": [0.5, 1.0]}, "leave 1.0 out"),
    ):
        study_file = tiny_study(pruning=pruning)
        result = nas("study", "run", str(study_file), "--storage", f"sqlite:///{db}")
        assert_usage_error(result, fragment)
    only_costs = tiny_study(
        pruning={"enabled": True},
        objectives=[{"name": "params", "direction": "minimize"},
                    {"name": "latency_ms", "direction": "minimize"}],
    )  # fmt: skip
    assert_usage_error(nas("study", "run", str(only_costs), "--storage", f"sqlite:///{db}"),
                       "are costs that training does not change")  # fmt: skip
    assert not db.exists()  # nothing written
