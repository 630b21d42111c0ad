"""A finished (or running) study read back as plain data: the front, the baseline, the picks,
every trial's standing, and the hypervolume history.

``nas study front``, the HTML report and the dashboard publication all read the study through
:func:`summarize`, so the three always agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.config import Threshold
from nas.errors import NasError
from nas.objectives import COSTS, PARAMS, task_metric
from nas.params import shape_label
from nas.results.picks import Picks, Point, deltas, pick
from nas.study import (
    LATENCY,
    config_snapshot,
    confirmed_points,
    failure_message,
    failure_reason,
    is_baseline,
    is_feasible,
    is_rerun,
    metric_names,
    named_constraints,
    no_answer_record,
    prune_reason,
    pruned_at,
    teacher_scores,
    test_scores,
    trial_rungs,
)


@dataclass(frozen=True)
class TrialRow:
    """One trial as the report's table shows it."""

    number: int
    state: str  # COMPLETE, FAIL, RUNNING, WAITING, PRUNED
    standing: str  # front, dominated, infeasible, pruned, failed, running, waiting
    values: dict[str, float]
    params: dict[str, Any]
    constraints: dict[str, float]
    baseline: bool
    reason: str = ""  # failure reason (oom, nan_loss, ...) of a FAIL trial; "rung k" if PRUNED
    message: str = ""  # a PRUNED trial's: its values at the rung and the decision
    duration_s: float | None = None
    # a PRUNED trial's objective values at the rung it stopped at (it has no final values)
    rung_values: dict[str, float] = field(default_factory=dict)
    latency_ms: float | None = None  # median batch-1 latency the trial measured


@dataclass(frozen=True)
class Summary:
    study: str
    names: list[str]  # objective names, in the study's order
    directions: list[str]  # "maximize" / "minimize" per objective
    metric: str  # the task metric among the objectives
    rows: list[TrialRow]
    front: list[Point]  # feasible Pareto front, smallest first
    baseline: Point | None
    picks: Picks
    failures: dict[str, int] = field(default_factory=dict)  # reason -> count
    test: dict[int, dict[str, float]] = field(default_factory=dict)  # trial -> test metrics
    teacher: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> metrics
    confirmed: dict[int, Any] = field(default_factory=dict)  # trial -> nas.study.confirm.Confirmed
    thresholds: list[Threshold] = field(default_factory=list)  # resolved, as trials were told
    no_answer: dict[str, dict[str, float]] = field(default_factory=dict)  # QA: split -> metrics

    def count(self, standing: str) -> int:
        return sum(1 for r in self.rows if r.standing == standing)


def summarize(study: optuna.Study) -> Summary:
    names = metric_names(study)
    if PARAMS not in names:
        raise NasError(
            f"study '{study.study_name}' has objectives {names}; nas reads studies whose "
            "objectives include a task metric and params (studies made by nas study run)"
        )
    metric = task_metric(names)
    im, ip = names.index(metric), names.index(PARAMS)
    front_numbers = {t.number for t in study.best_trials}
    rows = [_row(t, names, front_numbers) for t in study.get_trials(deepcopy=False)]

    def point(r: TrialRow) -> Point:
        return Point(r.number, r.values[names[im]], r.values[names[ip]], r.baseline)

    front = sorted((point(r) for r in rows if r.standing == "front"), key=lambda p: p.params)
    done = [r for r in rows if r.state == "COMPLETE"]
    baseline = next((point(r) for r in done if r.baseline), None)
    failures: dict[str, int] = {}
    for r in rows:
        if r.state == "FAIL":
            failures[r.reason] = failures.get(r.reason, 0) + 1
    return Summary(
        study=study.study_name,
        names=names,
        directions=[d.name.lower() for d in study.directions],
        metric=metric,
        rows=rows,
        front=front,
        baseline=baseline,
        picks=pick(front, baseline),
        failures=failures,
        test=test_scores(study),
        teacher=teacher_scores(study),
        confirmed=confirmed_points(study),
        thresholds=_thresholds(study),
        no_answer=no_answer_record(study),
    )


def _thresholds(study: optuna.Study) -> list[Threshold]:
    """The resolved thresholds of the config snapshot the study stored (``nas study run``)."""
    config = config_snapshot(study)
    entries = config.get("thresholds") if config is not None else None
    return [
        Threshold(str(t["metric"]), float(t["min"]), t.get("above_no_answer"))
        for t in entries or ()
        if isinstance(t, dict) and isinstance(t.get("min"), int | float)
    ]


def _row(t: FrozenTrial, names: list[str], front: set[int]) -> TrialRow:
    constraints = named_constraints(t)
    if t.state == TrialState.COMPLETE:
        if not is_feasible(t):
            standing = "infeasible"
        else:
            standing = "front" if t.number in front else "dominated"
    else:
        standing = {TrialState.FAIL: "failed", TrialState.RUNNING: "running"}.get(
            t.state, t.state.name.lower()
        )
    duration = t.duration.total_seconds() if t.duration is not None else None
    values = dict(zip(names, t.values, strict=True)) if t.values else {}
    return TrialRow(
        number=t.number,
        state=t.state.name,
        standing=standing,
        values=values,
        params=dict(t.params),
        constraints=constraints,
        baseline=is_baseline(t),
        reason=failure_reason(t) if t.state == TrialState.FAIL else _pruned_reason(t),
        message=_pruned_message(t) if t.state == TrialState.PRUNED else failure_message(t),
        duration_s=duration,
        rung_values=_pruned_values(t),
        latency_ms=_latency(t),
    )


def _latency(t: FrozenTrial) -> float | None:
    value = t.user_attrs.get(LATENCY)
    return float(value) if isinstance(value, int | float) else None


def _pruned_values(t: FrozenTrial) -> dict[str, float]:
    rung = pruned_at(t)
    record = trial_rungs(t).get(rung, {}) if rung is not None else {}
    return {k: float(v) for k, v in (record.get("values") or {}).items()}


def _pruned_reason(t: FrozenTrial) -> str:
    rung = pruned_at(t)
    return "" if rung is None else f"pruned at rung {rung}"


def _pruned_message(t: FrozenTrial) -> str:
    """A PRUNED trial's values at its rung, then why it stopped."""
    rung = pruned_at(t)
    record = trial_rungs(t).get(rung, {}) if rung is not None else {}
    values = ", ".join(f"{k} {v:.4g}" for k, v in (record.get("values") or {}).items())
    fraction = record.get("epoch_fraction")
    where = f"after {fraction:.0%} of training: {values}; " if fraction is not None else ""
    return where + prune_reason(t)


def rung_counts(study: optuna.Study) -> dict[int, tuple[int, int]]:
    """Rung index -> (trials that reached it, trials pruned there), for the rungs any trial
    recorded (empty when the study never pruned). A trial that is run again (an orphan) is
    left out: its copy records the rung again, and MO-ASHA ranks the copy's record."""
    counts: dict[int, list[int]] = {}
    for t in study.get_trials(deepcopy=False):
        if is_rerun(t):
            continue
        for rung in trial_rungs(t):
            counts.setdefault(rung, [0, 0])[0] += 1
        stopped = pruned_at(t)
        if stopped is not None:
            counts.setdefault(stopped, [0, 0])[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(counts.items())}


def rung_lines(study: optuna.Study) -> list[str]:
    """``nas study status``'s lines for pruning: one per rung, reached and pruned there."""
    return [
        f"  rung {k}: reached by {reached}, pruned at rung {k}: {pruned}"
        for k, (reached, pruned) in rung_counts(study).items()
    ]


# ------------------------------------------------------------------------------ text forms


def pick_lines(metric: str, picks: Picks) -> list[tuple[str, Any]]:
    """The reference experiment's three picks, labelled."""
    return [
        (f"keep the baseline's size, maximize {metric}", picks.same_size),
        (f"minimize size and maximize {metric} (knee)", picks.balanced),
        (f"minimize size, keep the baseline's {metric}", picks.smallest),
    ]


def front_cells(summary: Summary) -> tuple[list[str], list[list[str]]]:
    """The front as the reference experiment's table, with the teacher's row on top: a header
    and rows of cells, which :func:`front_table` and the dashboard note lay out.

    Every metric is shown on the selection split (what the trials were chosen on) and, once the
    study has scored them, on the test split no trial saw; ``confirmed`` is the mean and spread
    over re-trainings with new seeds (``nas study confirm``). The baseline appears once: on the
    front (``b``) or, when something dominates it, as its own row.
    """
    metric, baseline = summary.metric, summary.baseline
    on_front = {p.trial for p in summary.front}
    points = list(summary.front)
    if baseline is not None and baseline.trial not in on_front:
        points = sorted([*points, baseline], key=lambda p: p.params)
    d = digits(summary)
    confirm = bool(summary.confirmed)
    rows_by = {r.number: r for r in summary.rows}
    latency = any(rows_by[p.trial].latency_ms is not None for p in points if p.trial in rows_by)
    header = ["trial", "student", f"{metric} (selection)", f"{metric} (test)"]
    header += [f"confirmed {metric} (selection)", f"confirmed {metric} (test)"] if confirm else []
    header += ["params", *(["latency"] if latency else []), f"d {metric}", "d params"]
    rows = []
    if summary.teacher:
        cells = [
            _fmt(summary.teacher.get(split, {}).get(metric), d) for split in ("selection", "test")
        ]
        blank = [""] * (4 if latency else 3)
        rows.append(["teacher", "", *cells, *(["", ""] if confirm else []), *blank])
    for p in points:
        dm, dp = _deltas(p, baseline)
        tag = " b" if p.baseline else ("" if p.trial in on_front else " (off front)")
        test = summary.test.get(p.trial, {}).get(metric)
        trial = rows_by.get(p.trial)
        student = shape_label(trial.params) if trial else ""
        row = [f"{p.trial}{tag}", student, _fmt(p.metric, d), _fmt(test, d)]
        if confirm:
            c = summary.confirmed.get(p.trial)
            row += [c.text(metric, d, split) if c else "" for split in ("selection", "test")]
        row += [f"{p.params / 1e6:.3f}M"]
        if latency:
            ms = trial.latency_ms if trial else None
            row += ["" if ms is None else f"{ms:.2f} ms"]
        row += ["" if dm is None else f"{dm:+.{d}f}", dp]
        rows.append(row)
    if not summary.front:
        rows.append(["(no feasible COMPLETE trial yet)"] + [""] * (len(header) - 1))
    return header, rows


def front_table(summary: Summary) -> str:
    """:func:`front_cells` as fixed-width text."""
    header, rows = front_cells(summary)
    lines = [header, *rows]
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines
    )


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _deltas(p: Point, baseline: Point | None) -> tuple[float | None, str]:
    if p.baseline:
        return None, ""
    dm, dp = deltas(p, baseline)
    return dm, "" if dp is None else f"{dp:+.1f}%"


def front_text(summary: Summary) -> str:
    """The front table, what each column means, and the three picks: what every command prints."""
    lines = [
        f"Pareto front of {summary.study} (feasible, smallest first; b = baseline; "
        "selection = the split trials are scored on, test = data no trial saw):",
        front_table(summary),
    ]
    for label, chosen in pick_lines(summary.metric, summary.picks):
        lines.append(f"{label}: " + (f"trial {chosen.trial}" if chosen else "none"))
    return "\n".join(lines)


def front_record(summary: Summary) -> dict[str, Any]:
    """The front, baseline, teacher and picks as JSON-ready data (``--json``)."""

    def confirmed(trial: int) -> dict[str, object] | None:
        c = summary.confirmed.get(trial)
        if c is None:
            return None
        return {"seeds": list(c.seeds), "selection": c.selection, "test": c.test}

    baseline = summary.baseline
    front = []
    for p in summary.front:
        dm, dp = deltas(p, baseline)
        front.append(
            {
                **p.__dict__,
                "delta_metric": dm,
                "delta_params_pct": dp,
                "test": summary.test.get(p.trial),
                "confirmed": confirmed(p.trial),
            }
        )
    return {
        "metric": summary.metric,
        "baseline": baseline
        and {
            **baseline.__dict__,
            "test": summary.test.get(baseline.trial),
            "confirmed": confirmed(baseline.trial),
        },
        "teacher": summary.teacher,
        "front": front,
        "picks": {k: v and v.__dict__ for k, v in summary.picks.__dict__.items()},
    }


def digits(summary: Summary) -> int:
    """Decimals for the study's task metric, from the values its tables show."""
    points = [*summary.front, *([summary.baseline] if summary.baseline else [])]
    seen = [p.metric for p in points] + [v for s in summary.teacher.values() for v in s.values()]
    return metric_digits([v for v in seen if abs(v) <= 100] or [p.metric for p in points])


def metric_digits(values: list[float]) -> int:
    """Decimals for a metric: 4 for fractions (accuracy 0.8512), 2 for percentages (EM 67.07)."""
    return 4 if values and max(abs(v) for v in values) <= 1.0 else 2


# ------------------------------------------------------------------------------- hypervolume


def reference_point(
    summary: Summary, config: Mapping[str, Any] | None
) -> tuple[dict[str, float], dict[str, str]]:
    """The hypervolume reference point by objective, and where each value came from.

    From the study config's ``reference_point`` where given; otherwise the task metric's
    threshold, and the baseline's value for the costs; otherwise the worst value seen.
    """
    config = config or {}
    given = dict(config.get("reference_point") or {})
    unknown = sorted(set(given) - set(summary.names))
    if unknown:
        raise NasError(
            f"reference_point names {unknown}, which are not objectives of study "
            f"'{summary.study}' ({summary.names}); use those names in the study file"
        )
    thresholds = {t["metric"]: float(t["min"]) for t in config.get("thresholds") or ()}
    baseline = next((r for r in summary.rows if r.baseline and r.state == "COMPLETE"), None)
    done = [r for r in summary.rows if r.state == "COMPLETE"]
    point: dict[str, float] = {}
    source: dict[str, str] = {}
    for name, direction in zip(summary.names, summary.directions, strict=True):
        if name in given:
            point[name], source[name] = float(given[name]), "study config"
        elif name in thresholds and direction == "maximize":
            point[name], source[name] = thresholds[name], "threshold"
        elif baseline is not None and name in COSTS:
            point[name], source[name] = (
                baseline.values[name],
                f"baseline (trial {baseline.number})",
            )
        elif done:
            seen = [r.values[name] for r in done]
            point[name] = min(seen) if direction == "maximize" else max(seen)
            source[name] = "worst value seen"
    return point, source


def hypervolume_history(summary: Summary, ref: Mapping[str, float]) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the feasible trials up to it) in trial order.

    Parameter counts enter in millions, so a 2-objective value reads as metric x M params.
    Trials that do not beat the reference point in every objective add nothing.
    """
    from optuna._hypervolume import compute_hypervolume  # Optuna's own WFG implementation

    if set(ref) != set(summary.names):
        return []
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in summary.directions])
    scale = np.array([1e-6 if n == PARAMS else 1.0 for n in summary.names])
    ref_min = signs * scale * np.array([ref[n] for n in summary.names])
    kept: list[np.ndarray] = []
    history = []
    volume = 0.0
    for row in sorted(summary.rows, key=lambda r: r.number):
        if row.state != "COMPLETE":
            continue
        if row.standing != "infeasible":
            v = signs * scale * np.array([row.values[n] for n in summary.names])
            if (v < ref_min).all():
                kept.append(v)
                volume = float(compute_hypervolume(np.stack(kept), ref_min))
        history.append((row.number, volume if math.isfinite(volume) else 0.0))
    return history
