"""Reading a study back: standings, front, picks, reference point and hypervolume history."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from support.study_factory import hand_built_study

from nas.errors import NasError
from nas.results.summary import hypervolume_history, reference_point, summarize


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    return hand_built_study(f"sqlite:///{tmp_path / 'hand.db'}")


def test_standings_front_baseline_and_failures(study: optuna.Study) -> None:
    s = summarize(study)
    assert s.metric == "exact" and s.names == ["exact", "params"]
    standing = {r.number: r.standing for r in s.rows}
    assert standing == {
        0: "front",
        1: "front",
        2: "front",
        3: "dominated",
        4: "infeasible",
        5: "front",
        6: "failed",
        7: "failed",
    }
    assert [p.trial for p in s.front] == [5, 2, 0, 1]  # smallest first
    assert {p.trial for p in s.front} == {t.number for t in study.best_trials}
    assert s.baseline is not None and s.baseline.trial == 0 and s.baseline.metric == 67.0
    assert s.failures == {"oom": 1, "nan_loss": 1}
    assert s.picks.same_size is not None and s.picks.same_size.trial == 0
    assert s.picks.smallest is not None and s.picks.smallest.trial == 0
    # the positional copy optuna-dashboard reads is not shown as a second constraint
    assert s.rows[4].constraints == {"exact>=50": 5.0}


def test_reference_point_defaults_to_threshold_and_baseline(study: optuna.Study) -> None:
    s = summarize(study)
    ref, source = reference_point(s, study.user_attrs["config"])
    assert ref == {"exact": 50.0, "params": 66.0e6}
    assert source == {"exact": "threshold", "params": "baseline (trial 0)"}
    ref, source = reference_point(s, {"reference_point": {"params": 70e6}})
    assert ref == {"exact": 45.0, "params": 70e6}  # no threshold: the worst exact seen
    assert source["params"] == "study config" and source["exact"] == "worst value seen"
    with pytest.raises(NasError, match=r"reference_point names \['accuracy'\].*\['exact'"):
        reference_point(s, {"reference_point": {"accuracy": 0.5}})


def test_hypervolume_history_by_hand(study: optuna.Study) -> None:
    s = summarize(study)
    history = dict(hypervolume_history(s, {"exact": 50.0, "params": 66.0e6}))
    # Boxes up to (50 EM, 66.0M): trial 2 adds 16.8 x 14.6; trial 5 adds 5 x 36 less the
    # overlap 5 x 14.6. Trials 0 and 1 do not beat 66.0M; 3 is dominated; 4 is infeasible.
    assert history[0] == history[1] == 0.0
    assert history[2] == pytest.approx(16.8 * 14.6)
    assert history[3] == history[4] == pytest.approx(16.8 * 14.6)
    assert history[5] == pytest.approx(16.8 * 14.6 + 5 * 36 - 5 * 14.6)
    assert set(history) == {0, 1, 2, 3, 4, 5}  # failed trials have no point


def test_a_study_without_params_objective_is_refused(tmp_path: Path) -> None:
    other = optuna.create_study(storage=f"sqlite:///{tmp_path / 'o.db'}", study_name="o")
    with pytest.raises(NasError, match="include a task metric and params"):
        summarize(other)
