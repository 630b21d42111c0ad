"""Where a study's records live: ``nas:`` study system attributes, so ``optuna studies`` (which
prints every study user attribute) stays readable; studies made before the move keep them as
user attributes, and every reader and writer still works on those."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
from support.study_factory import hand_built_study

from nas.cli._drift import file_basis, remember_space, study_basis
from nas.config import Threshold, load_study
from nas.results import resolve_artifact_root, summarize, write_report
from nas.search_space import study_space
from nas.study import (
    CONFIG_ATTR,
    DATASET,
    NAS_VERSION,
    NO_ANSWER_KEY,
    SPACE_ATTR,
    TASK,
    TEACHER,
    TEACHER_KEY,
    TEST_KEY,
    config_snapshot,
    legacy_name,
    open_storage,
    open_study,
    set_study_record,
    study_record,
    teacher_scores,
)
from nas.study import (
    test_scores as scores_on_test,  # not collected as a test
)

SCORES = {"selection": {"exact": 75.0}, "test": {"exact": 73.5}}


def _new_study(tiny_study: Any, tmp_path: Path) -> tuple[optuna.Study, str]:
    """A study as ``nas study run`` leaves it now, with scores on the test split."""
    config = load_study(tiny_study())
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = open_study(config, open_storage(url), ["exact", "params"], url, "synthetic_qa")
    remember_space(study, study_space(config))
    set_study_record(study, TEACHER_KEY, SCORES)
    set_study_record(study, NO_ANSWER_KEY, {"selection": {"exact": 50.0}})
    set_study_record(study, f"{TEST_KEY}0", {"exact": 64.5})
    return study, url


def _widest_line(url: str) -> int:
    optuna_cli = Path(sys.executable).with_name("optuna")
    out = subprocess.run(
        [str(optuna_cli), "studies", "--storage", url],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": ""},
    ).stdout
    return max(len(line) for line in out.splitlines())


def test_a_new_study_keeps_its_records_where_optuna_studies_does_not_print_them(
    tiny_study: Any, tmp_path: Path
) -> None:
    study, url = _new_study(tiny_study, tmp_path)
    assert set(study.user_attrs) == {TASK, TEACHER, DATASET, NAS_VERSION}
    assert config_snapshot(study)["name"] == "tiny"  # type: ignore[index]
    assert config_snapshot(study)["thresholds"] == [  # type: ignore[index]
        {"metric": "exact", "min": 50.0, "above_no_answer": None}
    ]
    assert "n_layers" in study_record(study, SPACE_ATTR)
    assert teacher_scores(study) == SCORES and scores_on_test(study) == {0: {"exact": 64.5}}
    assert summarize(study).thresholds == [Threshold("exact", 50.0, None)]
    # the snapshot alone is over 1,500 characters; the table stays a line of a terminal
    assert _widest_line(url) < 300


def test_an_old_layout_study_loads_drift_checks_exports_and_reports(
    tiny_study: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    study = hand_built_study(url)  # its snapshot is the user attribute "config"
    study.set_user_attr("config", {**study.user_attrs["config"], "artifact_root": "/data/a"})
    study.set_user_attr(legacy_name(TEACHER_KEY), SCORES)
    study.set_user_attr(f"{legacy_name(TEST_KEY)}5", {"exact": 54.0})
    study.set_user_attr(legacy_name(SPACE_ATTR), {"alpha": {"name": "FloatDistribution"}})
    assert study_record(study, CONFIG_ATTR) == study.user_attrs["config"]

    summary = summarize(study)
    assert summary.thresholds == [Threshold("exact", 50.0, None)]
    assert summary.test == {5: {"exact": 54.0}} and summary.teacher == SCORES
    assert resolve_artifact_root(None, study).url == "/data/a"  # export's fallback root
    config = load_study(tiny_study())
    basis = study_basis(study, file_basis(config, study_space(config)))
    assert basis.snapshot == study.user_attrs["config"]
    assert basis.space == {"alpha": {"name": "FloatDistribution"}}
    out = tmp_path / "report.html"
    write_report(study, out, url)
    assert "exact &gt;= 50" in out.read_text() or "exact >= 50" in out.read_text()

    # a write (an accepted config change) keeps both copies equal: Optuna cannot delete one
    set_study_record(study, CONFIG_ATTR, {"thresholds": [{"metric": "exact", "min": 60.0}]})
    again = optuna.load_study(study_name=study.study_name, storage=url)
    assert again.user_attrs["config"] == config_snapshot(again)
    assert summarize(again).thresholds == [Threshold("exact", 60.0, None)]
