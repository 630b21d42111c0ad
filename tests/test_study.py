"""Optuna-side helpers: storage URLs, masking, directions, orphans, the baseline, the front."""

from __future__ import annotations

import socket
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.config import load_study
from nas.errors import NasError
from nas.study import (
    enqueue_baseline,
    finished_count,
    format_front,
    mask_password,
    open_storage,
    open_study,
    recover_orphans,
    resolve_storage,
    tell_failure,
)


def test_mask_password_hides_only_the_secret() -> None:
    url = "postgresql://nas:s3cr%40t@db.internal:5432/studies"
    assert mask_password(url) == "postgresql://nas:***@db.internal:5432/studies"
    assert mask_password("sqlite:///nas.db") == "sqlite:///nas.db"
    assert mask_password("mysql+pymysql://root@h/db") == "mysql+pymysql://root@h/db"


def test_storage_precedence(tiny_study, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    config = load_study(tiny_study())
    monkeypatch.delenv("NAS_STORAGE", raising=False)
    assert resolve_storage(None, config) == "sqlite:///nas.db"
    monkeypatch.setenv("NAS_STORAGE", "sqlite:///env.db")
    assert resolve_storage(None, config) == "sqlite:///env.db"
    assert resolve_storage("sqlite:///cli.db", config) == "sqlite:///cli.db"


def test_journal_storage_file(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"journal:{tmp_path / 'study.log'}"
    config = load_study(tiny_study())
    study = open_study(config, open_storage(url), ["exact", "params"], url)
    study.enqueue_trial({"n_layers": 1})
    again = optuna.load_study(study_name="tiny", storage=open_storage(url))
    assert again.metric_names == ["exact", "params"] and len(again.trials) == 1


def test_unreachable_storage_is_a_user_error_without_the_password() -> None:
    with pytest.raises(NasError) as info:
        open_storage("postgresql://u:hunter2@127.0.0.1:1/x")
    assert "hunter2" not in str(info.value) and "u:***@" in str(info.value)


def test_orphans_fail_and_requeue_once(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'o.db'}"
    config = load_study(tiny_study())
    study = open_study(config, open_storage(url), ["exact", "params"], url)
    dead = study.ask()
    dead.suggest_int("n_layers", 1, 4)
    dead.set_user_attr("driver", f"{socket.gethostname()}:999999")  # no such process
    elsewhere = study.ask()
    elsewhere.set_user_attr("driver", "another-machine:1")
    orphans = recover_orphans(study)
    assert [t.number for t in orphans] == [dead.number]
    trials = study.get_trials()
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[dead.number].user_attrs["fail_reason"] == "orphaned"
    assert trials[elsewhere.number].state == TrialState.RUNNING  # may be alive elsewhere
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["requeued_from"] == dead.number
    # the re-run is orphaned again: it is not queued a second time
    rerun = study.ask()
    assert rerun.suggest_int("n_layers", 1, 4) == trials[dead.number].params["n_layers"]
    rerun.set_user_attr("driver", f"{socket.gethostname()}:999999")
    recover_orphans(study)
    assert study.get_trials(states=(TrialState.WAITING,)) == []
    assert finished_count(study) == 0  # orphans do not count toward the total


def test_baseline_is_enqueued_once(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'b.db'}"
    config = load_study(tiny_study())
    study = open_study(config, open_storage(url), ["exact", "params"], url)
    assert enqueue_baseline(study, config.baseline) is True
    assert enqueue_baseline(study, config.baseline) is False
    (trial,) = study.get_trials(states=(TrialState.WAITING,))
    assert trial.user_attrs["baseline"] is True


def test_front_excludes_failed_and_infeasible(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = load_study(tiny_study())
    url = f"sqlite:///{tmp_path / 'f.db'}"
    study = open_study(config, open_storage(url), ["exact", "params"], url)
    for exact, params in ((70.0, 2e6), (60.0, 1e6), (40.0, 0.5e6)):
        trial = study.ask()
        trial.set_constraint("exact>=50", 50.0 - exact)
        study.tell(trial, [exact, params])
    tell_failure(study, study.ask(), "oom", "CUDA out of memory")
    assert sorted(t.values[0] for t in study.best_trials) == [60.0, 70.0]
    text = format_front(study)
    assert "1.000M" in text and "2.000M" in text and "0.500M" not in text
    assert finished_count(study) == 4
