"""Config drift: what a re-run's study file changes against what the study's trials ran under.

A study stores the config it was run with (a JSON snapshot of the
:class:`~nas.config.StudyConfig`, ``nas.study.record.CONFIG_ATTR``), its objectives (Optuna's
metric names and directions) and its search space. ``nas study run`` on an existing study
compares the study file with them before anything expensive, and refuses changes that alter
what past results mean (:func:`compare`); ``--accept-config-change`` records them instead
(:func:`change_record`).

Pure functions on plain values: no Optuna, no torch, no Ray.
"""

from __future__ import annotations

import dataclasses
import json
import reprlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Keys whose change leaves past trials' results as they were: how many trials, how they are
# scheduled and sampled (a sampler proposes new points; the points run keep their values),
# where things are stored, what is displayed, and inference-only settings. The baseline is
# enqueued only when the study is created, so editing it changes nothing. The search space's
# file path is free; its distributions are compared. Objectives and thresholds have their own
# comparisons. Every other key (task, data, teacher, student_source, calibration, the training
# recipe) is compared, so a key added to the config later is compared unless listed here.
FREE_KEYS = (
    "name",
    "n_trials",
    "sampler",
    "storage",
    "artifact_root",
    "cache_dir",
    "resources",
    "trial_timeout_s",
    "source_file",
    "baseline",
    "reference_point",
    "search_space",
    "training.device",
    "training.eval_batch_size",
    "training.log_every",
    "objectives",
    "thresholds",
    # pruning stops future trials early; the trials already finished keep their values
    "pruning",
)
# Mappings whose keys are the user's (BertConfig fields), not the config's: a key added there is
# a change. A key the config gained in a newer nas is missing from older snapshots, and is not.
OPEN_MAPPINGS = ("teacher.train.arch",)
MAX_LISTED = 8  # changes a message names before "and N more"

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 40, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 6


@dataclass(frozen=True)
class Change:
    """One key whose value differs between the study and the study file."""

    key: str  # dotted: data.max_train_samples, objectives[0].name, search_space.alpha.high
    old: Any
    new: Any
    # Optuna cannot change it in an existing study: the directions, a distribution's kind, its
    # log scale, a categorical's choices (optuna.distributions.check_distribution_compatibility)
    fixed: bool = False

    def text(self) -> str:
        return f"{self.key} {_short(self.old)} -> {_short(self.new)}"


@dataclass(frozen=True)
class Basis:
    """What a study's results rest on, as plain values."""

    snapshot: Mapping[str, Any] | None  # the config snapshot; None: the study has none
    objectives: Sequence[tuple[str, str]]  # (name, direction)
    space: Mapping[str, Mapping[str, Any]] | None  # param -> distribution JSON; None: unknown


def snapshot(config: Any) -> dict[str, Any]:
    """A config as the study stores it: ``dataclasses.asdict`` through JSON."""
    return dict(json.loads(json.dumps(dataclasses.asdict(config), default=str)))


def compare(old: Basis, new: Basis) -> list[Change]:
    """Every change from ``old`` (the study) to ``new`` (the study file) that alters what past
    results mean. Keys the old snapshot lacks (written by an older nas) are not compared."""
    changes = _objectives(old.objectives, new.objectives)
    if old.snapshot is not None and new.snapshot is not None:
        changes += _thresholds(old.snapshot.get("thresholds"), new.snapshot.get("thresholds"))
        changes += _values("", old.snapshot, new.snapshot)
    if old.space is not None and new.space is not None:
        changes += _space(old.space, new.space)
    return changes


def describe(changes: Sequence[Change]) -> str:
    """``key old -> new`` for each change, the first :data:`MAX_LISTED` of them."""
    shown = "; ".join(c.text() for c in changes[:MAX_LISTED])
    more = len(changes) - MAX_LISTED
    return shown + (f"; and {more} more" if more > 0 else "")


def change_record(changes: Sequence[Change], now: float | None = None) -> dict[str, Any]:
    """One entry of the study's ``config_changes`` list: when, and each key's old and new."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return {
        "time": stamp,
        "changes": [{"key": c.key, "old": c.old, "new": c.new} for c in changes],
    }


def no_answer_margins(thresholds: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any threshold (snapshot form) is an ``above_no_answer`` margin."""
    return any(t.get("above_no_answer") is not None for t in thresholds)


# ----------------------------------------------------------------------------- comparisons


def _objectives(old: Sequence[tuple[str, str]], new: Sequence[tuple[str, str]]) -> list[Change]:
    if len(old) != len(new):
        return [Change("objectives", _pairs(old), _pairs(new), fixed=True)]
    changes = []
    for i, ((old_name, old_dir), (new_name, new_dir)) in enumerate(zip(old, new, strict=True)):
        if old_name != new_name:
            changes.append(Change(f"objectives[{i}].name", old_name, new_name))
        if old_dir != new_dir:
            changes.append(Change(f"objectives[{i}].direction", old_dir, new_dir, fixed=True))
    return changes


def _pairs(objectives: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{name} ({direction})" for name, direction in objectives]


def _thresholds(old: Any, new: Any) -> list[Change]:
    """Thresholds as written: the metric, and ``above_no_answer`` or ``min``. A margin's
    ``min`` is what the study resolved it to on its selection split, so it is not compared."""
    old_rules, new_rules = [_rule(t) for t in old or ()], [_rule(t) for t in new or ()]
    if len(old_rules) != len(new_rules):
        return [
            Change(
                "thresholds",
                [_rule_text(r) for r in old_rules],
                [_rule_text(r) for r in new_rules],
            )
        ]
    changes = []
    for i, (a, b) in enumerate(zip(old_rules, new_rules, strict=True)):
        for field in ("metric", "above_no_answer", "min"):
            if a.get(field) != b.get(field):
                changes.append(Change(f"thresholds[{i}].{field}", a.get(field), b.get(field)))
    return changes


def _rule(threshold: Mapping[str, Any]) -> dict[str, Any]:
    margin = threshold.get("above_no_answer")
    if margin is not None:
        return {"metric": threshold.get("metric"), "above_no_answer": margin}
    return {"metric": threshold.get("metric"), "min": threshold.get("min")}


def _rule_text(rule: Mapping[str, Any]) -> str:
    if "above_no_answer" in rule:
        return f"{rule['metric']} >= no-answer + {rule['above_no_answer']:g}"
    return f"{rule['metric']} >= {rule['min']:g}"


def _values(prefix: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    changes = []
    open_mapping = prefix.rstrip(".") in OPEN_MAPPINGS
    keys = list(old) + [k for k in new if k not in old] if open_mapping else list(old)
    for key in keys:
        dotted = f"{prefix}{key}"
        if _free(dotted) or (key not in new and not open_mapping):
            continue
        before, after = old.get(key), new.get(key)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            changes += _values(f"{dotted}.", before, after)
        elif before != after:
            changes.append(Change(dotted, before, after))
    return changes


def _free(key: str) -> bool:
    return any(key == free or key.startswith(f"{free}.") for free in FREE_KEYS)


def _space(
    old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
) -> list[Change]:
    changes = []
    for name in sorted(set(old) | set(new)):
        key = f"search_space.{name}"
        a, b = old.get(name), new.get(name)
        if a is None or b is None:
            changes.append(Change(key, _dist_text(a), _dist_text(b), fixed=True))
            continue
        if a.get("name") != b.get("name"):
            changes.append(Change(key, _dist_text(a), _dist_text(b), fixed=True))
            continue
        before, after = dict(a.get("attributes") or {}), dict(b.get("attributes") or {})
        for attr in sorted(set(before) | set(after)):
            if before.get(attr) != after.get(attr):
                # choices and the log scale are what Optuna refuses to change in a study
                fixed = attr in ("choices", "log")
                changes.append(Change(f"{key}.{attr}", before.get(attr), after.get(attr), fixed))
    return changes


def _dist_text(dist: Mapping[str, Any] | None) -> str:
    if dist is None:
        return "absent"
    attrs = dist.get("attributes") or {}
    if "choices" in attrs:
        return f"choices {_short(attrs['choices'])}"
    return f"{dist.get('name', '?')} [{attrs.get('low')}, {attrs.get('high')}]"


def _short(value: Any) -> str:
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
