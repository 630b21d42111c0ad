"""What nas study run prints at the end (nas.results.verdict) and per trial (runner.trial_line)."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import create_trial
from support.study_factory import hand_built_study

from nas.results.summary import front_text, summarize
from nas.results.verdict import offer_line, rule_line, scores_line, verdict_text
from nas.search.searcher import trial_line
from nas.study.record import ESTIMATE, PEAK


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    return hand_built_study(f"sqlite:///{tmp_path / 'hand.db'}")


def _score_on_test(study: optuna.Study, scores: dict[int, float]) -> None:
    study.set_user_attr("teacher_scores", {"selection": {"exact": 75.1234}, "test": {"exact": 74}})
    study.set_user_attr("no_answer", {"selection": {"exact": 40.0}, "test": {"exact": 41.25}})
    for number, exact in scores.items():
        study.set_user_attr(f"test:{number}", {"exact": exact})


def test_the_verdict_holds_the_front_text_and_ends_on_the_offer(study: optuna.Study) -> None:
    summary = summarize(study)
    text = verdict_text(summary)
    assert text.startswith(front_text(summary))  # the table and picks nas study front prints
    lines = text.splitlines()
    assert (
        "8 trials: 5 feasible (4 on the front), 1 infeasible, 2 failed (nan_loss 1, oom 1)"
        in lines
    )
    assert lines[-1].startswith("verdict: ")
    assert sum(line.split()[0] == "0" for line in lines if line.split()) == 1  # baseline once


def test_the_offer_is_decided_on_test_scores(study: optuna.Study) -> None:
    # Selection: trial 2 keeps 99.7% of the baseline (66.8 vs 67.0) at 78% of its size.
    assert offer_line(summarize(study)) == (
        "verdict: trial 2 keeps 99.7% of the baseline's exact on selection (66.80 vs 67.00) "
        "at 78% of its parameters"
    )
    # On the test split it falls to 91%, under the 95% bar: nothing smaller kept the score.
    _score_on_test(study, {0: 66.0, 2: 60.0, 5: 50.0})
    assert offer_line(summarize(study)) == (
        "verdict: nothing smaller kept 95% of the baseline's exact on test; the best smaller "
        "student, trial 2 keeps 91% of the baseline's exact on test (60.00 vs 66.00) at 78% of "
        "its parameters"
    )
    _score_on_test(study, {0: 66.0, 2: 64.5, 5: 63.0})  # trial 5 keeps 95.5% at 45%
    assert offer_line(summarize(study)).startswith(
        "verdict: trial 5 keeps 95% of the baseline's exact on test (63.00 vs 66.00) at 45%"
    )


def _study(url: str, name: str, trials: list[tuple[float, float, bool]]) -> optuna.Study:
    """(exact, params, baseline) COMPLETE trials, all feasible."""
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["exact", "params"])
    for exact, params, baseline in trials:
        attrs = {"baseline": True} if baseline else {}
        study.add_trial(create_trial(values=[exact, params], user_attrs=attrs))
    return study


def test_the_offer_without_smaller_students_baseline_or_front(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    assert offer_line(summarize(_study(url, "empty", []))) == (
        "verdict: no feasible student yet, so the front offers nothing"
    )
    assert offer_line(summarize(_study(url, "plain", [(60.0, 2e6, False)]))) == (
        "verdict: no baseline finished to compare with; the smallest feasible student is "
        "trial 0 (exact 60.00 on selection, 2.000M parameters)"
    )
    smallest = _study(url, "smallest", [(60.0, 2e6, True), (70.0, 3e6, False)])
    assert offer_line(summarize(smallest)) == (
        "verdict: nothing on the feasible front is smaller than the baseline (trial 0)"
    )


def test_rule_and_scores_name_the_no_answer_score_and_round(study: optuna.Study) -> None:
    summary = summarize(study)
    assert rule_line(summary) == "feasible: exact >= 50 on the selection split"
    assert scores_line(summary) == "baseline (trial 0), exact: 67.00 on selection"
    _score_on_test(study, {0: 66.0})
    summary = summarize(study)
    assert rule_line(summary) == (
        'feasible: exact >= 50 on the selection split; answering "no answer" to every question '
        "scores exact 40.00 there (41.25 on test)"
    )
    assert scores_line(summary) == (
        "teacher vs baseline (trial 0), exact: 74.00 vs 66.00 on test, 75.12 vs 67.00 on selection"
    )
    # A margin over the no-answer score is explained from the resolved bound alone.
    study.set_user_attr(
        "config", {"thresholds": [{"metric": "exact", "min": 50.0, "above_no_answer": 10.0}]}
    )
    study.set_user_attr("no_answer", {})
    assert rule_line(summarize(study)) == (
        'feasible: exact >= 50 on the selection split; answering "no answer" to every question '
        "scores exact 40.00 there, and the exact bound is 10 above that"
    )


def test_cpu_trial_lines_show_the_process_rss_alone() -> None:
    cpu = {PEAK: 669 * 2**20, "memory_kind": "cpu_max_rss", ESTIMATE: 39 * 2**20}
    shape = {"n_layers": 2, "n_heads": 4, "hidden_size": 128, "ffn_dim": 512}
    trial = create_trial(
        values=[55.0, 3e5],
        params=shape,
        distributions={k: IntDistribution(1, 1024) for k in shape},
        user_attrs=cpu,
        constraints={"exact>=50": -5.0},
    )
    line = trial_line(trial, ["exact", "params"], "3/12")
    assert line == (
        "[3/12] trial -1: L2 H4 d128 ffn512 exact=55.00 params=0.30M COMPLETE "
        "[process RSS 669.0 MiB]"
    )
    assert "estimate" not in line
    gpu = {**cpu, "memory_kind": "cuda_max_allocated"}
    trial = create_trial(values=[55.0, 3e5], user_attrs=gpu, constraints={"exact>=50": -5.0})
    assert "[peak 669.0 MiB (cuda_max_allocated), estimate 39.0 MiB]" in trial_line(
        trial, ["exact", "params"], "3/12"
    )
