"""Warm starts: another study's best params, mapped onto this study's space and enqueued.

``nas study run S.yaml --warm-start OTHER`` takes OTHER's feasible front (and with
``--warm-top N`` its N best feasible trials by the first objective), maps each trial's params
onto this space and enqueues them, each tagged ``warm_start: "OTHER@storage #number"``:

- a parameter this space lacks is dropped;
- a parameter this space has and OTHER's trial lacks takes the baseline's value (or the
  space's only value, for a fixed parameter); with neither, the trial is skipped;
- a number outside this space's range is clipped into it (and onto its step); a categorical
  value this space does not offer skips the trial; so does a combination the space's rules
  refuse (heads that do not divide the hidden size).

Each of these is said in one line. A source trial already enqueued (its tag is on a trial of
this study) is not enqueued again, so re-running the command adds nothing. Pure Optuna.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from nas.errors import NasError
from nas.study.record import WARM_START, front_rows, is_feasible, metric_names


@dataclass(frozen=True)
class WarmTrial:
    params: dict[str, Any]
    source: str  # "study@storage #number"


@dataclass
class WarmPlan:
    """What a warm start enqueues, and the lines that say what the mapping changed."""

    trials: list[WarmTrial] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def check_warm_objectives(
    source: optuna.Study, names: Sequence[str], directions: Sequence[str], label: str
) -> None:
    """Refuse a source study that optimises other objectives (or in other directions).

    Raises:
        NasError: one line naming both objective lists and the fix.
    """
    lower = (d.name.lower() for d in source.directions)
    theirs = list(zip(metric_names(source), lower, strict=False))  # unequal: not the same
    ours = list(zip(names, directions, strict=True))
    if theirs != ours:
        raise NasError(
            f"--warm-start {label}: that study optimises {_show(theirs)}, this one "
            f"{_show(ours)}; warm-start from a study with the same objectives and directions"
        )


def warm_source_trials(source: optuna.Study, top: int = 0) -> list[FrozenTrial]:
    """The source's feasible front, then its ``top`` best feasible trials by the first
    objective (those not on the front), in trial order."""
    chosen = {t.number: t for t in front_rows(source)}
    if top:
        done = source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        feasible = [t for t in done if is_feasible(t) and t.values]
        sign = -1.0 if source.directions[0].name == "MAXIMIZE" else 1.0
        for t in sorted(feasible, key=lambda t: (sign * t.values[0], t.number))[:top]:
            chosen.setdefault(t.number, t)
    return [chosen[n] for n in sorted(chosen)]


def plan_warm_start(
    trials: Sequence[FrozenTrial],
    label: str,
    distributions: Mapping[str, BaseDistribution],
    baseline: Mapping[str, Any] | None,
    validate: Callable[[dict[str, Any]], dict[str, Any]],
) -> WarmPlan:
    """Map each source trial's params onto ``distributions``; ``validate`` applies the space's
    rules (``SearchSpace.validate``) and raises ``NasError`` for a combination it refuses."""
    out = WarmPlan()
    dropped: dict[str, int] = {}
    for trial in trials:
        source = f"{label} #{trial.number}"
        for name in trial.params:
            if name not in distributions:
                dropped[name] = dropped.get(name, 0) + 1
        params = _mapped(trial.params, distributions, baseline, source, out.lines)
        if params is None:
            continue
        try:
            params = validate(params)
        except NasError as exc:
            out.lines.append(f"warm start {source}: skipped, this space refuses it ({exc})")
            continue
        out.trials.append(WarmTrial(params, source))
    for name, count in sorted(dropped.items()):
        out.lines.insert(
            0, f"warm start: {name} is not in this search space; dropped from {count} trial(s)"
        )
    return out


def enqueue_warm_start(study: optuna.Study, warm: WarmPlan) -> list[str]:
    """Enqueue the plan's trials not enqueued before (by their source tag), or whose params
    equal a trial's of ``study`` (the baseline). Returns one line per trial."""
    trials = study.get_trials(deepcopy=False)
    tagged = {t.user_attrs.get(WARM_START) for t in trials}
    known = [t.params or dict(t.system_attrs.get("fixed_params", {})) for t in trials]
    lines = []
    for item in warm.trials:
        if item.source in tagged:
            lines.append(f"warm start {item.source}: enqueued before; not again")
        elif item.params in known:
            lines.append(f"warm start {item.source}: this study has these params already")
        else:
            study.enqueue_trial(item.params, user_attrs={WARM_START: item.source})
            known.append(item.params)
            lines.append(f"warm start {item.source}: enqueued")
    return lines


def _mapped(
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    baseline: Mapping[str, Any] | None,
    source: str,
    lines: list[str],
) -> dict[str, Any] | None:
    out = {}
    for name, dist in distributions.items():
        if name not in params:
            value = _fill(name, dist, baseline)
            if value is None:
                lines.append(
                    f"warm start {source}: skipped, it has no {name} and this study no "
                    f"baseline value for it; add {name} to baseline: in the study file"
                )
                return None
            lines.append(f"warm start {source}: {name} missing, takes {value[0]!r}")
            out[name] = value[0]
            continue
        value = params[name]
        if isinstance(dist, CategoricalDistribution):
            if value not in dist.choices:
                lines.append(
                    f"warm start {source}: skipped, {name} = {value!r} is not a choice of "
                    f"this space {list(dist.choices)}"
                )
                return None
            out[name] = value
            continue
        assert isinstance(dist, FloatDistribution | IntDistribution)
        clipped = _clip(value, dist)
        if clipped != value:
            lines.append(
                f"warm start {source}: {name} = {value!r} is outside "
                f"[{dist.low:g}, {dist.high:g}]; clipped to {clipped!r}"
            )
        out[name] = clipped
    return out


def _fill(
    name: str, dist: BaseDistribution, baseline: Mapping[str, Any] | None
) -> tuple[Any] | None:
    """The value a parameter the source lacks takes: the baseline's, else a fixed one's."""
    if baseline and name in baseline:
        return (baseline[name],)
    if isinstance(dist, CategoricalDistribution) and len(dist.choices) == 1:
        return (dist.choices[0],)
    if isinstance(dist, FloatDistribution | IntDistribution) and dist.low == dist.high:
        return (dist.low,)
    return None


def _clip(value: Any, dist: FloatDistribution | IntDistribution) -> Any:
    number = min(max(value, dist.low), dist.high)
    if dist.step is not None:  # onto the grid low, low + step, ... (high lies on it)
        steps = round((number - dist.low) / dist.step)
        number = min(dist.low + steps * dist.step, dist.high)
    if isinstance(dist, IntDistribution):
        return int(round(number))
    return float(number) if number != value else value


def _show(pairs: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{n} ({d})" for n, d in pairs) or "nothing"
