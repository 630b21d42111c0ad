"""What a study optimises: the objective names nas knows, which of them are costs, and the
fallbacks when a study file names none.

One home for these rules: the trial (what it measures), the study (each objective's direction)
and the read-back views (which objective is the task metric) all read them from here. No torch,
no Optuna.
"""

from __future__ import annotations

from collections.abc import Sequence

from nas.config import StudyConfig
from nas.errors import NasError

PARAMS = "params"  # the student's parameter count, embeddings included
LATENCY_MS = "latency_ms"  # median batch-1 inference latency
COSTS = (PARAMS, LATENCY_MS)  # objectives that are costs (minimized), not task metrics


def objective_names(config: StudyConfig, primary_metric: str) -> list[str]:
    """The study's objectives by name; without ``objectives:`` the task's primary metric
    (``primary_metric``) and the parameter count."""
    if config.objectives:
        return [o.name for o in config.objectives]
    return [primary_metric, PARAMS]


def directions(config: StudyConfig, names: Sequence[str]) -> list[str]:
    """Each objective's direction: the study file's, else minimize a cost, maximize a metric."""
    by_name = {o.name: o.direction for o in config.objectives}
    return [by_name.get(n, "minimize" if n in COSTS else "maximize") for n in names]


def task_metric(names: Sequence[str]) -> str:
    """The objective that is a task metric (the first one that is not a cost)."""
    for name in names:
        if name not in COSTS:
            return name
    raise NasError(f"the study's objectives {list(names)} have no task metric")
