"""``nas study run`` on an existing study: the study file against what the study ran under
(:mod:`nas.study.drift`), checked after the storage opens and before any data or teacher work."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import distribution_to_json
from optuna.storages import BaseStorage

from nas.config import StudyConfig, shown
from nas.errors import ConfigError
from nas.search_space import SearchSpace
from nas.study import (
    CHANGES_ATTR,
    SPACE_ATTR,
    Basis,
    Change,
    change_record,
    compare,
    config_snapshot,
    describe,
    location,
    no_answer_margins,
    set_study_record,
    snapshot,
    study_record,
    write_config,
)


def check_config_drift(
    config: StudyConfig,
    space: SearchSpace,
    storage: BaseStorage,
    url: str,
    accept: bool,
    say: Callable[[str], None],
) -> None:
    """Refuse (ConfigError, exit 2) a study file that changes what the existing study's results
    mean, or with ``accept`` record the change on the study. A new study passes."""
    if config.name not in {s.study_name for s in storage.get_all_studies()}:
        return
    study = optuna.load_study(study_name=config.name, storage=storage)
    new = file_basis(config, space)
    changes = compare(study_basis(study, new), new)
    if changes:
        where = f"{config.source_file}: study {shown(config.name)} exists in {location(url)}"
        fixed = [c for c in changes if c.fixed]
        if fixed:
            raise ConfigError(
                f"{where} and cannot take {describe(fixed)}: an Optuna study keeps its "
                "objectives' directions, and each parameter's distribution kind, log scale and "
                "categorical choices; run it under a new name (e.g. name: "
                f"{config.name}_v2) or in another storage"
            )
        if not accept:
            trials = len(study.get_trials(deepcopy=False))
            raise ConfigError(
                f"{where} and ran its {trials} trials under another config: "
                f"{describe(changes)}; "
                "that changes what their results mean: run it under a new name (e.g. name: "
                f"{config.name}_v2) to keep both, or pass --accept-config-change to record "
                "the change and go on"
            )
        _accept(study, config, new, changes, say)
    else:
        remember_space(study, space)


def remember_space(study: optuna.Study, space: SearchSpace) -> None:
    """Store the study's search space (what later runs are compared with), once."""
    if study_record(study, SPACE_ATTR) is None:
        set_study_record(study, SPACE_ATTR, space_json(space))


def space_json(space: SearchSpace) -> dict[str, Any]:
    return {name: json.loads(distribution_to_json(d)) for name, d in space.distributions.items()}


def file_basis(config: StudyConfig, space: SearchSpace) -> Basis:
    """What the study file asks for: its snapshot, objectives and search space."""
    from nas.objectives import directions, objective_names
    from nas.tasks import get_task

    names = objective_names(config, get_task(config.task).primary_metric)
    objectives = list(zip(names, directions(config, names), strict=True))
    return Basis(snapshot(config), objectives, space_json(space))


def study_basis(study: optuna.Study, new: Basis) -> Basis:
    """What the study's trials ran under: its snapshot, objectives (a study without metric
    names keeps the file's, so only directions compare) and search space (as stored, else as
    its trials recorded it, the first trial to use each parameter)."""
    config = config_snapshot(study)
    names = study.metric_names or [name for name, _ in new.objectives]
    if len(names) != len(study.directions):
        names = [f"objective {i}" for i in range(len(study.directions))]
    objectives = list(zip(names, [d.name.lower() for d in study.directions], strict=True))
    space = study_record(study, SPACE_ATTR)
    if not isinstance(space, dict):
        space = {}
        for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            for name, dist in trial.distributions.items():
                space.setdefault(name, json.loads(distribution_to_json(dist)))
    return Basis(config, objectives, space or None)


def _accept(
    study: optuna.Study,
    config: StudyConfig,
    new: Basis,
    changes: list[Change],
    say: Callable[[str], None],
) -> None:
    """Append the change to the study's changes and store the new snapshot and space."""
    history = list(study_record(study, CHANGES_ATTR) or [])
    set_study_record(study, CHANGES_ATTR, [*history, change_record(changes)])
    write_config(study, _resolved(config))
    set_study_record(study, SPACE_ATTR, new.space)
    say(
        f"accepted {len(changes)} config change(s) to study {shown(config.name)}, recorded in "
        f"its study attribute {CHANGES_ATTR}: {describe(changes)}"
    )


def _resolved(config: StudyConfig) -> StudyConfig:
    """The config with ``above_no_answer`` margins resolved, as the study stores it (readers of
    the snapshot need each threshold's ``min``): that needs the selection split's no-answer
    scores, so the split is read once more."""
    if not no_answer_margins([dataclasses.asdict(t) for t in config.thresholds]):
        return config
    from nas.feasibility import no_answer_scores, resolve_thresholds
    from nas.trial import load_splits

    _, splits, _ = load_splits(config)
    thresholds = resolve_thresholds(config, no_answer_scores(splits.eval))
    return dataclasses.replace(config, thresholds=thresholds)
