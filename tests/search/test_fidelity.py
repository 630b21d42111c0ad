"""A front worth trusting: feasibility that an abstaining student cannot pass, test scores
beside selection scores, the teacher's row, and confirmed spreads."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from support.study_factory import hand_built_study

from nas.config import StudyConfig, TeacherConfig, Threshold
from nas.feasibility import (
    constraint_values,
    describe_thresholds,
    no_answer_scores,
    resolve_thresholds,
)
from nas.results.summary import front_table, summarize
from nas.study import CONFIRMS, SEED, TEST_METRICS, confirm_name, confirmed_points
from nas.study.record import TEACHER_KEY, TEST_KEY, set_study_record
from nas.tasks import squad_metric
from nas.tasks.squad_io import read_squad_file, split_by_articles


@pytest.fixture(scope="module")
def squad_selection(shared_data: Path) -> list:  # type: ignore[type-arg]
    """The last 4 articles of the shared SQuAD 2.0 half dev set, as a study's selection split."""
    examples = read_squad_file(shared_data / "squad_v2" / "dev-v2.0.json")
    return split_by_articles(examples, 4, "dev-v2.0.json")[1]


def _config(*thresholds: Threshold) -> StudyConfig:
    return StudyConfig(
        name="t",
        task="squad_v2",
        teacher=TeacherConfig(path="x"),
        search_space="s.yaml",
        thresholds=thresholds,
    )


def test_no_answer_score_is_the_share_of_unanswerable_questions(squad_selection: list) -> None:  # type: ignore[type-arg]
    scores = no_answer_scores(squad_selection)
    share = 100 * sum(e.is_impossible for e in squad_selection) / len(squad_selection)
    assert scores["exact"] == pytest.approx(share) and scores["f1"] == pytest.approx(share)
    assert scores["HasAns_f1"] == 0.0 and scores["NoAns_exact"] == 100.0
    assert 40 < share < 60  # SQuAD 2.0's half: about half the questions have no answer


def test_an_abstaining_student_is_infeasible_and_an_answering_one_is_not(
    squad_selection: list,  # type: ignore[type-arg]
) -> None:
    no_answer = no_answer_scores(squad_selection)
    config = _config(Threshold("exact", above_no_answer=1.0), Threshold("HasAns_f1", min=10.0))
    resolved = resolve_thresholds(config, no_answer)
    assert resolved[0].bound == pytest.approx(no_answer["exact"] + 1.0)
    # the old fixed rule, exact >= 50, lets the abstainer through on this split
    abstain = squad_metric.evaluate(squad_selection, {e.id: "" for e in squad_selection})
    assert abstain["exact"] >= 50.0
    assert any(v > 0 for v in constraint_values(resolved, abstain).values())
    # a student that answers the answerable half right and abstains elsewhere is feasible
    good = {e.id: (e.answers[0] if e.answers else "") for e in squad_selection}
    answered = squad_metric.evaluate(squad_selection, good)
    assert all(v <= 0 for v in constraint_values(resolved, answered).values())


def test_abstaining_and_nan_students_stay_off_the_front(
    squad_selection: list,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    """Through Optuna's own front: the abstainer (small, so it would anchor the front) is
    infeasible; a NaN student never becomes COMPLETE (the runner tells it FAIL nan_loss)."""
    from nas.study.lifecycle import tell_complete, tell_failure

    resolved = resolve_thresholds(
        _config(Threshold("exact", above_no_answer=1.0)), no_answer_scores(squad_selection)
    )
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'f.db'}", directions=["maximize", "minimize"]
    )
    abstain = squad_metric.evaluate(squad_selection, {e.id: "" for e in squad_selection})
    good = squad_metric.evaluate(
        squad_selection, {e.id: (e.answers[0] if e.answers else "") for e in squad_selection}
    )
    for metrics, params in ((abstain, 1e6), (good, 60e6)):
        tell_complete(
            study,
            study.ask(),
            [metrics["exact"], params],
            constraint_values(resolved, metrics),
            {},
        )
    tell_failure(study, study.ask(), "nan_loss", "eval logits are not finite")
    assert [t.number for t in study.best_trials] == [1]


def _with_test_and_confirmations(study: optuna.Study) -> None:
    set_study_record(study, f"{TEST_KEY}0", {"exact": 64.5})
    set_study_record(study, f"{TEST_KEY}2", {"exact": 61.25})
    set_study_record(study, TEACHER_KEY, {"selection": {"exact": 75.0}, "test": {"exact": 73.5}})
    companion = optuna.create_study(
        study_name=confirm_name(study.study_name),
        storage=study._storage,
        directions=["maximize", "minimize"],
    )
    companion.set_metric_names(["exact", "params"])
    for seed, exact, test in ((1000, 66.0, 63.0), (2000, 68.0, 65.0)):
        t = companion.ask()
        t.set_user_attr(CONFIRMS, 2)
        t.set_user_attr(SEED, seed)
        t.set_user_attr(TEST_METRICS, {"exact": test})
        companion.tell(t, [exact, 51.4e6])


def test_front_table_shows_selection_test_teacher_and_confirmed(tmp_path: Path) -> None:
    study = hand_built_study(f"sqlite:///{tmp_path / 'h.db'}")
    _with_test_and_confirmations(study)
    summary = summarize(study)
    assert summary.test == {0: {"exact": 64.5}, 2: {"exact": 61.25}}
    confirmed = confirmed_points(study)[2]
    assert confirmed.seeds == (1000, 2000)
    assert confirmed.stats("exact") == pytest.approx((67.0, 1.41421356, 2))
    assert confirmed.stats("exact", "test") == pytest.approx((64.0, 1.41421356, 2))
    lines = front_table(summary).splitlines()
    assert "exact (selection)" in lines[0] and "exact (test)" in lines[0]
    assert lines[1].split()[:3] == ["teacher", "75.00", "73.50"]
    row2 = next(line for line in lines if line.split()[0] == "2")
    assert "66.80" in row2 and "61.25" in row2
    assert "67.00 ± 1.41 (2 seeds)" in row2 and "64.00 ± 1.41 (2 seeds)" in row2
    trials = [line.split()[0] for line in lines[2:]]
    assert trials.count("0") == 1  # the baseline once, marked b, on the front
    assert any(line.split()[:2] == ["0", "b"] for line in lines)
    row5 = next(line for line in lines if line.split()[0] == "5")
    assert " - " in f" {row5} "  # not scored on test: a dash, not a number


def test_the_start_line_states_the_rule_with_its_sign() -> None:
    above = Threshold("exact", min=50.0, above_no_answer=10.0)
    below = Threshold("exact", min=20.0, above_no_answer=-20.0)
    no_answer = {"exact": 40.0}
    assert describe_thresholds((above,), no_answer) == (
        "feasible when exact >= 50 (answering 'no answer' everywhere scores 40.00, + 10)"
    )
    assert describe_thresholds((below,), no_answer).endswith("scores 40.00, - 20)")
