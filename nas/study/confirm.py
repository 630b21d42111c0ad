"""Confirmed points: the front's students re-trained with new seeds, their mean and spread.

A front point's lead over its neighbour may be seed noise. ``nas study confirm NAME`` re-trains
each chosen student (the front by default) ``--seeds`` times with seeds the search never used,
through the same Ray workers, storage and artifact store as ``nas study run``: the runs are the
trials of a companion study ``NAME.confirm`` in the same storage, each enqueued with the
original trial's parameters and tagged with the trial it confirms and its seed, so an
interrupted confirmation resumes where it stopped. Each run is scored on the selection split
(its objective values) and, since nothing is selected from it, on the test split too.

:func:`confirmed_points` reads the companion study back: per confirmed trial, the mean and
sample standard deviation over the new seeds (the original run is left out: it was selected for
being good, so including it would bias the mean upwards). This module never imports torch.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from nas.study.record import CONFIRMS, SEED, TEST_METRICS

CONFIRM_SUFFIX = ".confirm"


def confirm_name(name: str) -> str:
    return name + CONFIRM_SUFFIX


@dataclass(frozen=True)
class Confirmed:
    """A trial's re-trainings: selection and test metrics per seed."""

    trial: int
    seeds: tuple[int, ...]
    selection: dict[str, list[float]] = field(default_factory=dict)  # metric -> per seed
    test: dict[str, list[float]] = field(default_factory=dict)

    def stats(self, metric: str, split: str = "selection") -> tuple[float, float, int] | None:
        """Mean, sample standard deviation (0 for one seed) and count of ``metric``."""
        values = (self.selection if split == "selection" else self.test).get(metric, [])
        if not values:
            return None
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return statistics.fmean(values), spread, len(values)

    def text(self, metric: str, digits: int, split: str = "selection") -> str:
        """``0.8610 ± 0.0040 (3 seeds)``."""
        stats = self.stats(metric, split)
        if stats is None:
            return ""
        mean, spread, n = stats
        return f"{mean:.{digits}f} ± {spread:.{digits}f} ({n} seed{'s' if n > 1 else ''})"


def confirmed_points(study: optuna.Study) -> dict[int, Confirmed]:
    """The confirmation runs of ``study`` (from ``NAME.confirm`` in its storage), by trial."""
    storage = study._storage
    try:
        other = optuna.load_study(study_name=confirm_name(study.study_name), storage=storage)
    except KeyError:
        return {}
    names = other.metric_names or []
    runs: dict[int, list[optuna.trial.FrozenTrial]] = {}
    for t in other.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        number = t.user_attrs.get(CONFIRMS)
        if isinstance(number, int):
            runs.setdefault(number, []).append(t)
    out = {}
    for number, trials in sorted(runs.items()):
        selection: dict[str, list[float]] = {}
        test: dict[str, list[float]] = {}
        for t in sorted(trials, key=lambda t: int(t.user_attrs.get(SEED, 0))):
            for name, value in zip(names, t.values or [], strict=False):
                selection.setdefault(name, []).append(float(value))
            for name, value in (t.user_attrs.get(TEST_METRICS) or {}).items():
                if isinstance(value, int | float) and math.isfinite(value):
                    test.setdefault(name, []).append(float(value))
        seeds = tuple(int(t.user_attrs.get(SEED, 0)) for t in trials)
        out[number] = Confirmed(number, tuple(sorted(seeds)), selection, test)
    return out


def new_seeds(used: int, count: int) -> list[int]:
    """``count`` training seeds other than the search's own (``training.seed``)."""
    return [used + 1000 * (k + 1) for k in range(count)]


def missing_runs(
    confirm_study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial], seeds: Sequence[int]
) -> list[tuple[optuna.trial.FrozenTrial, int]]:
    """(trial, seed) pairs not yet enqueued, running or finished in the companion study."""
    have = {
        (t.user_attrs.get(CONFIRMS), t.user_attrs.get(SEED))
        for t in confirm_study.get_trials(deepcopy=False)
    }
    return [(t, s) for t in trials for s in seeds if (t.number, s) not in have]
