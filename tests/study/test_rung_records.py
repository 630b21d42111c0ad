"""Rung records on a SQLite study: ``record_rung``, ``tell_pruned`` and the readers."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.study import (
    PRUNE_REASON,
    PRUNED_RUNG,
    REASON,
    PruningConfig,
    decide_at,
    front_rows,
    open_storage,
    prune_reason,
    pruned_at,
    record_rung,
    rung_key,
    rung_records,
    tell_complete,
    tell_failure,
    tell_pruned,
    trial_rungs,
)

DIRECTIONS = ["maximize", "minimize"]
LIMIT = {"accuracy>=0.6": 0.0}


def _study(tmp_path: Path) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = optuna.create_study(storage=open_storage(url), directions=DIRECTIONS, study_name="s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["accuracy", "params"])
    return study


def _at_rung(study: optuna.Study, accuracy: float, params: float) -> optuna.Trial:
    trial = study.ask()
    record_rung(
        study, trial, 0, 0.25, {"accuracy": accuracy, "params": params},
        {"accuracy>=0.6": 0.6 - accuracy},
    )  # fmt: skip
    return trial


def test_a_rung_record_reads_back_as_an_entry(tmp_path: Path) -> None:
    study = _study(tmp_path)
    trial = _at_rung(study, 0.5, 10.0)
    stored = study.trials[0]
    assert stored.user_attrs[rung_key(0)] == {
        "epoch_fraction": 0.25,
        "values": {"accuracy": 0.5, "params": 10.0},
        "constraints": {"accuracy>=0.6": pytest.approx(0.1)},
    }
    [entry] = rung_records(study, 0)
    assert (entry.number, entry.values, entry.feasible) == (trial.number, (0.5, 10.0), False)
    assert entry.violation == pytest.approx(0.1)
    assert rung_records(study, 1) == []
    assert list(trial_rungs(stored)) == [0]


def test_tell_pruned_ends_the_trial_pruned_outside_the_front(tmp_path: Path) -> None:
    study = _study(tmp_path)
    good = _at_rung(study, 0.9, 20.0)
    tell_complete(study, good, [0.9, 20.0], LIMIT, {})
    bad = study.ask()
    values = {"accuracy": 0.95, "params": 5.0}  # would dominate the front if it counted
    tell_pruned(
        study, bad, 0, values, "rank 2 of 2 at the rung\nsecond line",
        epoch_fraction=0.25, constraints={"accuracy>=0.6": -0.35},
    )  # fmt: skip
    stored = study.trials[bad.number]
    assert stored.state == TrialState.PRUNED and stored.values is None
    assert (pruned_at(stored), prune_reason(stored)) == (0, "rank 2 of 2 at the rung")
    assert stored.user_attrs[PRUNED_RUNG] == 0 and PRUNE_REASON in stored.user_attrs
    assert [t.number for t in front_rows(study)] == [good.number]
    # a PRUNED trial's rung record still counts at its rung (ASHA ranks every trial there)
    assert sorted(e.number for e in rung_records(study, 0)) == [good.number, bad.number]
    assert pruned_at(study.trials[good.number]) is None


def test_tell_pruned_is_idempotent(tmp_path: Path) -> None:
    study = _study(tmp_path)
    trial = _at_rung(study, 0.4, 9.0)
    values = {"accuracy": 0.4, "params": 9.0}
    first = tell_pruned(study, trial.number, 0, values, "rank 3 of 3")
    again = tell_pruned(study, trial.number, 0, values, "rank 3 of 3")  # the answer was lost
    assert first.state == again.state == TrialState.PRUNED
    assert len(study.trials) == 1 and study.trials[0].user_attrs[PRUNE_REASON] == "rank 3 of 3"


def test_tell_pruned_refuses_values_without_their_record(tmp_path: Path) -> None:
    study = _study(tmp_path)
    trial = _at_rung(study, 0.4, 9.0)
    with pytest.raises(ValueError, match=r"rung:0 does not hold \{'accuracy': 0.7"):
        tell_pruned(study, trial, 0, {"accuracy": 0.7, "params": 9.0}, "why")
    with pytest.raises(ValueError, match="rung:1 does not hold"):
        tell_pruned(study, trial, 1, {"accuracy": 0.4, "params": 9.0}, "why")
    assert study.trials[0].state == TrialState.RUNNING


def test_orphans_that_re_run_leave_the_rung(tmp_path: Path) -> None:
    study = _study(tmp_path)
    orphan = _at_rung(study, 0.9, 5.0)
    tell_failure(study, orphan, "orphaned", "driver gone")
    failed = _at_rung(study, 0.8, 6.0)
    tell_failure(study, failed, "nan_loss", "diverged after the rung")
    assert study.trials[0].user_attrs[REASON] == "orphaned"
    assert [e.number for e in rung_records(study, 0)] == [failed.number]


def test_the_decision_on_stored_records(tmp_path: Path) -> None:
    # nine trials reach rung 0 on a line (each dominated by the one before): eta 3 keeps 3
    study = _study(tmp_path)
    trials = [_at_rung(study, 0.95 - 0.03 * i, 10.0 + i) for i in range(9)]
    config = PruningConfig(enabled=True, eta=3)
    entries = rung_records(study, 0)
    kept = [e.number for e in entries if decide_at(config, 0, entries, e, DIRECTIONS).proceed]
    assert kept == [t.number for t in trials[:3]]
