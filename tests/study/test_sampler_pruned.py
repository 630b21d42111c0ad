"""What TPE does with the PRUNED trials nas tells (docs/architecture.md, "Pruning in a run").

Optuna's TPE (``optuna/samplers/_tpe/sampler.py``, ``_split_trials``) models the trials it
reads as a good group ("below") and a bad one ("above"): feasible COMPLETE trials fill the good
group first, then PRUNED ones, then infeasible ones (any state) by violation. nas relies on
that: a trial it prunes is a negative example once the study has enough feasible COMPLETE
trials, and a trial infeasible at its rung ranks with the infeasible ones because
``tell_pruned`` gives it its rung's constraints. The PRUNED trials must carry no intermediate
values: TPE reads those through ``study.direction``, which a multi-objective study refuses.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.samplers._tpe.sampler import _split_trials
from optuna.trial import TrialState

from nas.study import named_constraints, record_rung, tell_complete, tell_pruned

SPACE = {"x": FloatDistribution(0.0, 1.0)}
LIMIT = "accuracy>=0.6"  # a constraint value > 0 is infeasible


def _complete(study: optuna.Study, accuracy: float, params: float) -> int:
    trial = study.ask(SPACE)
    tell_complete(study, trial, [accuracy, params], {LIMIT: 0.6 - accuracy}, {})
    return trial.number


def _pruned(study: optuna.Study, accuracy: float, params: float) -> int:
    trial = study.ask(SPACE)
    values = {"accuracy": accuracy, "params": params}
    record_rung(study, trial, 0, 1 / 9, values, {LIMIT: 0.6 - accuracy})
    tell_pruned(study, trial, 0, values, "below the top 1 (eta 3)")
    return trial.number


def _study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "params"])
    return study


def _split(study: optuna.Study, n_below: int) -> tuple[list[int], list[int]]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    below, above = _split_trials(study, trials, n_below)
    return [t.number for t in below], [t.number for t in above]


def test_tpe_counts_pruned_trials_as_the_bad_group() -> None:
    study = _study()
    best = _complete(study, 0.9, 10.0)
    small = _complete(study, 0.7, 2.0)
    dominated = _complete(study, 0.65, 20.0)
    # better rung values than every finished trial: still below all of them for TPE
    pruned = [_pruned(study, 0.95, 1.0), _pruned(study, 0.92, 1.5)]
    for number in pruned:
        frozen = study.trials[number]
        assert frozen.values is None and frozen.intermediate_values == {}
    below, above = _split(study, 2)
    assert below == [best, small]
    assert above == sorted([dominated, *pruned])


def test_tpe_ranks_a_trial_infeasible_at_its_rung_with_the_infeasible() -> None:
    study = _study()
    done = [_complete(study, 0.8, 10.0), _complete(study, 0.75, 5.0)]
    feasible_at_rung = _pruned(study, 0.7, 3.0)
    infeasible_at_rung = _pruned(study, 0.3, 3.0)  # violation 0.3
    near_miss = _complete(study, 0.55, 4.0)  # infeasible, violation 0.05
    assert named_constraints(study.trials[infeasible_at_rung]) == {LIMIT: pytest.approx(0.3)}
    # the good group needs 4: the feasible finished trials, the feasible pruned one, then the
    # least violation: the near miss that finished, not the trial pruned while infeasible
    below, above = _split(study, 4)
    assert below == sorted([*done, feasible_at_rung, near_miss])
    assert above == [infeasible_at_rung]
