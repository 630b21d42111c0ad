"""Warm starts on SQLite: which source trials, the mapping onto this space, idempotent enqueue."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from nas.errors import NasError
from nas.search_space import SearchSpace
from nas.study import (
    WARM_START,
    check_warm_objectives,
    enqueue_warm_start,
    open_storage,
    plan_warm_start,
    warm_source,
    warm_source_trials,
)

SOURCE_SPACE = {
    "n_layers": IntDistribution(1, 12),
    "n_heads": CategoricalDistribution([2, 4, 16]),
    "learning_rate": FloatDistribution(1e-5, 1e-2, log=True),
    "dropout": FloatDistribution(0.0, 0.5),  # this study's space has no dropout
}
SPACE = SearchSpace(
    {
        "n_layers": IntDistribution(1, 6),
        "n_heads": CategoricalDistribution([2, 4]),
        "hidden_size": CategoricalDistribution([64, 128]),  # the source has none
        "learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
    },
    "space.yaml",
)
BASELINE = {"n_layers": 2, "n_heads": 2, "hidden_size": 128, "learning_rate": 1e-4}
LABEL = "old@sqlite:///old.db"


def _study(tmp_path: Path, name: str, names: list[str], directions: list[str]) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = optuna.create_study(storage=open_storage(url), directions=directions, study_name=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)
    return study


def _source(tmp_path: Path) -> optuna.Study:
    study = _study(tmp_path, "old", ["exact", "params"], ["maximize", "minimize"])
    rows = [  # (n_layers, n_heads, lr, exact, params)
        (3, 4, 1e-4, 70.0, 30.0),  # 0: front
        (8, 2, 5e-3, 80.0, 60.0),  # 1: front; n_layers and learning_rate outside this space
        (2, 16, 1e-4, 60.0, 10.0),  # 2: front; 16 heads: not a choice here
        (3, 4, 2e-4, 65.0, 31.0),  # 3: dominated by 0, second best exact after 1 and 0
        (1, 2, 1e-4, 40.0, 50.0),  # 4: dominated
    ]
    for layers, heads, lr, exact, params in rows:
        values = {"n_layers": layers, "n_heads": heads, "learning_rate": lr, "dropout": 0.1}
        study.add_trial(
            create_trial(params=values, distributions=SOURCE_SPACE, values=[exact, params])
        )
    return study


def test_the_front_and_the_top_n(tmp_path: Path) -> None:
    source = _source(tmp_path)
    assert [t.number for t in warm_source_trials(source)] == [0, 1, 2]
    # top 3 by exact: 1, 0, 3 (3 is not on the front)
    assert [t.number for t in warm_source_trials(source, top=3)] == [0, 1, 2, 3]


def test_the_mapping_onto_this_space_says_each_change(tmp_path: Path) -> None:
    trials = warm_source_trials(_source(tmp_path), top=3)
    plan = plan_warm_start(trials, LABEL, SPACE.distributions, BASELINE, SPACE.validate)
    by_source = {t.source: t.params for t in plan.trials}
    assert by_source == {
        f"{LABEL} #0": {"n_layers": 3, "n_heads": 4, "hidden_size": 128, "learning_rate": 1e-4},
        f"{LABEL} #1": {"n_layers": 6, "n_heads": 2, "hidden_size": 128, "learning_rate": 1e-3},
        f"{LABEL} #3": {"n_layers": 3, "n_heads": 4, "hidden_size": 128, "learning_rate": 2e-4},
    }
    text = "\n".join(plan.lines)
    assert "warm start: dropout is not in this search space; dropped from 4 trial(s)" in text
    assert f"{LABEL} #1: n_layers = 8 is outside [1, 6]; clipped to 6" in text
    assert f"{LABEL} #1: learning_rate = 0.005 is outside [1e-05, 0.001]; clipped to 0.001" in text
    assert f"{LABEL} #2: skipped, n_heads = 16 is not a choice of this space [2, 4]" in text
    assert f"{LABEL} #0: hidden_size missing, takes 128" in text


def test_without_a_baseline_value_the_trial_is_skipped(tmp_path: Path) -> None:
    trials = warm_source_trials(_source(tmp_path))
    plan = plan_warm_start(trials, LABEL, SPACE.distributions, None, SPACE.validate)
    assert plan.trials == []
    assert "#0: skipped, it has no hidden_size" in plan.lines[1]
    assert "add hidden_size to baseline:" in plan.lines[1]


def test_a_combination_the_space_refuses_is_skipped(tmp_path: Path) -> None:
    space = SearchSpace({"n_heads": IntDistribution(1, 8), "hidden_size": IntDistribution(60, 64)})
    source = _study(tmp_path, "heads", ["exact", "params"], ["maximize", "minimize"])
    dists = {"n_heads": IntDistribution(1, 8), "hidden_size": IntDistribution(1, 100)}
    params = {"n_heads": 8, "hidden_size": 100}  # clipped to 64: 8 divides it
    source.add_trial(create_trial(params=params, distributions=dists, values=[1.0, 1.0]))
    params = {"n_heads": 7, "hidden_size": 100}  # 7 does not divide 64
    source.add_trial(create_trial(params=params, distributions=dists, values=[2.0, 2.0]))
    plan = plan_warm_start(source.trials, "heads", space.distributions, None, space.validate)
    assert [t.params for t in plan.trials] == [{"n_heads": 8, "hidden_size": 64}]
    assert "heads #1: skipped, this space refuses it" in plan.lines[-1]


def test_enqueueing_twice_adds_nothing(tmp_path: Path) -> None:
    trials = warm_source_trials(_source(tmp_path), top=3)
    plan = plan_warm_start(trials, LABEL, SPACE.distributions, BASELINE, SPACE.validate)
    target = _study(tmp_path, "new", ["exact", "params"], ["maximize", "minimize"])
    target.enqueue_trial(BASELINE, user_attrs={"baseline": True})
    lines = enqueue_warm_start(target, plan)
    assert lines == [f"warm start {t.source}: enqueued" for t in plan.trials]
    again = enqueue_warm_start(target, plan)
    assert all(line.endswith("enqueued before; not again") for line in again)
    waiting = target.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 + len(plan.trials)
    assert [warm_source(t) for t in waiting[1:]] == [t.source for t in plan.trials]
    assert waiting[1].user_attrs[WARM_START] == f"{LABEL} #0"


def test_params_the_study_has_already_are_not_enqueued(tmp_path: Path) -> None:
    trials = warm_source_trials(_source(tmp_path))
    plan = plan_warm_start(trials, LABEL, SPACE.distributions, BASELINE, SPACE.validate)
    target = _study(tmp_path, "new", ["exact", "params"], ["maximize", "minimize"])
    target.enqueue_trial(plan.trials[0].params)  # e.g. the baseline
    lines = enqueue_warm_start(target, plan)
    assert lines[0] == f"warm start {LABEL} #0: this study has these params already"
    assert len(target.get_trials(states=(TrialState.WAITING,))) == len(plan.trials)


def test_a_study_with_other_objectives_is_refused(tmp_path: Path) -> None:
    source = _source(tmp_path)
    check_warm_objectives(source, ["exact", "params"], ["maximize", "minimize"], LABEL)
    with pytest.raises(NasError, match=r"optimises exact \(maximize\), params \(minimize\), "):
        check_warm_objectives(source, ["f1", "params"], ["maximize", "minimize"], LABEL)
    with pytest.raises(NasError, match="same objectives and directions"):
        check_warm_objectives(source, ["exact"], ["maximize"], LABEL)
