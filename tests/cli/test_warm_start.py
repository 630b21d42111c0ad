"""``nas study run --warm-start``: bad input is one line, exit 2, and nothing is written."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from support.cli_run import assert_usage_error, run_nas

from nas.study import open_storage


def _other(url: str, names: list[str]) -> None:
    study = optuna.create_study(
        storage=open_storage(url), directions=["maximize", "minimize"], study_name="other"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)


def _studies(url: str) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(open_storage(url)))


def test_a_missing_warm_start_study(tiny_study: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    _other(url, ["exact", "params"])
    result = run_nas("study", "run", str(tiny_study()), "--storage", url, "--warm-start", "nope")
    assert_usage_error(result, "--warm-start: no study 'nope' in", "studies there: other")
    assert _studies(url) == ["other"]  # the study 'tiny' was not created


def test_a_warm_start_study_with_other_objectives(tiny_study: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    _other(url, ["f1", "params"])
    result = run_nas("study", "run", str(tiny_study()), "--storage", url, "--warm-start", "other")
    assert_usage_error(
        result, "that study optimises f1 (maximize), params (minimize), this one exact"
    )
    assert _studies(url) == ["other"]


def test_warm_options_need_warm_start(tiny_study: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    result = run_nas("study", "run", str(tiny_study()), "--storage", url, "--warm-top", "2")
    assert_usage_error(result, "--warm-storage and --warm-top need --warm-start")
    assert not (tmp_path / "nas.db").exists()


def test_a_missing_warm_storage(tiny_study: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    other = f"sqlite:///{tmp_path / 'old.db'}"
    args = ["--storage", url, "--warm-start", "x", "--warm-storage", other]
    result = run_nas("study", "run", str(tiny_study()), *args)
    assert_usage_error(result, "no storage at", "old.db")
    assert not (tmp_path / "nas.db").exists() and not (tmp_path / "old.db").exists()
