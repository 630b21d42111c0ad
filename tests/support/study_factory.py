"""Hand-built studies with known fronts, for reading-back tests (summary, report, dashboard)."""

from __future__ import annotations

import warnings

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

DISTRIBUTIONS = {
    "n_layers": IntDistribution(1, 6),
    "hidden_size": IntDistribution(64, 768, step=64),
    "alpha": FloatDistribution(0.0, 1.0),
}

# (exact, params, n_layers, hidden, alpha, baseline) of the COMPLETE trials; threshold exact>=50
COMPLETE = [
    (67.0, 66.0e6, 6, 768, 0.5, True),  # 0 baseline, on the front
    (70.5, 66.4e6, 6, 768, 0.7, False),  # 1 front: best metric
    (66.8, 51.4e6, 4, 704, 0.3, False),  # 2 front
    (60.0, 60.0e6, 5, 640, 0.2, False),  # 3 dominated by 2
    (45.0, 20.0e6, 2, 256, 0.9, False),  # 4 infeasible (below 50)
    (55.0, 30.0e6, 3, 384, 0.6, False),  # 5 front: smallest feasible
]


def hand_built_study(url: str, name: str = "hand") -> optuna.Study:
    """A study as nas writes it: metric names, named and list constraints, baseline tag, two
    failed trials (oom, nan_loss) and the config snapshot with a threshold."""
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["exact", "params"])
    study.set_user_attr(
        "config", {"thresholds": [{"metric": "exact", "min": 50.0}], "reference_point": None}
    )
    study.set_user_attr("task", "squad_v2")
    study.set_user_attr("teacher", "teachers/bert-squad2")
    for exact, params, layers, hidden, alpha, baseline in COMPLETE:
        c = 50.0 - exact
        study.add_trial(
            create_trial(
                values=[exact, params],
                params={"n_layers": layers, "hidden_size": hidden, "alpha": alpha},
                distributions=DISTRIBUTIONS,
                user_attrs={"baseline": True} if baseline else {},
                system_attrs={"constraints": [c], "constraints:exact>=50": c},
            )
        )
    for reason in ("oom", "nan_loss"):
        study.add_trial(
            create_trial(
                state=TrialState.FAIL,
                params={"n_layers": 6, "hidden_size": 768, "alpha": 0.1},
                distributions=DISTRIBUTIONS,
                user_attrs={"fail_reason": reason, "fail_message": f"{reason} happened"},
            )
        )
    return study
