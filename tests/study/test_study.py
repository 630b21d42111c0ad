"""Optuna-side helpers: storage precedence, creating the study once, the baseline, the front."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support.together import run_together

from nas.config import load_study
from nas.errors import NasError
from nas.results.summary import front_text, summarize
from nas.study.drivers import finished_count
from nas.study.lifecycle import open_study, tell_failure
from nas.study.storage import open_storage, resolve_storage


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
    assert again.metric_names == ["exact", "params"]
    assert [t.user_attrs.get("baseline", False) for t in again.trials] == [True, False]


def test_the_creator_enqueues_the_baseline_once(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'b.db'}"
    config = load_study(tiny_study())
    for _ in range(3):  # the first run creates the study; resumes find it
        study = open_study(config, open_storage(url), ["exact", "params"], url)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.WAITING and trial.user_attrs["baseline"] is True
    assert trial.system_attrs["fixed_params"] == config.baseline


def test_drivers_starting_together_enqueue_one_baseline(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'race.db'}"
    config = load_study(tiny_study())
    storages = [open_storage(url) for _ in range(4)]  # four connections, as four drivers
    errors = run_together(lambda s: open_study(config, s, ["exact", "params"], url), storages)
    assert errors == []
    trials = optuna.load_study(study_name="tiny", storage=url).get_trials()
    assert [t.user_attrs.get("baseline") for t in trials] == [True]


def test_a_second_driver_samples_its_own_sequence(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = load_study(tiny_study(baseline=None))

    def first_params(study: optuna.Study) -> dict[str, object]:
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)
        return dict(trial.params)

    creator = open_study(config, open_storage(url), ["exact", "params"], url)
    other = open_study(config, open_storage(url), ["exact", "params"], url)
    assert first_params(creator) != first_params(other)  # the same seed would repeat it
    fresh = f"sqlite:///{tmp_path / 'again.db'}"  # the configured seed reproduces a new study
    again = open_study(config, open_storage(fresh), ["exact", "params"], fresh)
    assert first_params(again) == creator.trials[0].params


def test_other_directions_are_refused(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'd.db'}"
    optuna.create_study(study_name="tiny", storage=url, directions=["maximize", "maximize"])
    with pytest.raises(NasError, match="exists in .* with directions"):
        open_study(load_study(tiny_study()), open_storage(url), ["exact", "params"], url)
    assert optuna.load_study(study_name="tiny", storage=url).trials == []


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
    text = front_text(summarize(study))
    assert "1.000M" in text and "2.000M" in text and "0.500M" not in text
    assert finished_count(study) == 4
