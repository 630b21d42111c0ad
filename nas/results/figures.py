"""Plotly figures of a study summary: the Pareto front (with its feasibility bound), the
hypervolume history, and parameter importances. The HTML report and the optuna-dashboard
publication draw the same figures.

Importances are PED-ANOVA's (Optuna's public ``get_param_importances``), computed only over the
parameters that can move each objective (:data:`COST_PARAMS`), only from :data:`MIN_TRIALS`
COMPLETE trials, and drawn against what a shuffled objective gives (:data:`SHUFFLES`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from nas.config import Threshold
from nas.objectives import LATENCY_MS, PARAMS
from nas.params import shape_label
from nas.results.summary import Summary, TrialRow, metric_digits

SHAPE = ("n_layers", "n_heads", "hidden_size", "ffn_dim")
# What a cost objective can depend on. nas.students.cost.parameter_count is a function of n_layers,
# hidden_size and ffn_dim only (the head count splits q/k/v into blocks without resizing them);
# batch-1 latency runs the whole shape. A task metric may depend on every parameter.
COST_PARAMS = {PARAMS: ("n_layers", "hidden_size", "ffn_dim"), LATENCY_MS: SHAPE}

# Importances need this many COMPLETE trials. Measured (tests/results/test_figures.py keeps the
# noise half true): on the quickstart space with random sampling, 10 trials of a pure-noise metric
# give a top normalized importance of 0.37 (median of 10 studies), a metric driven by n_layers
# and learning_rate 0.45, and neither stands out from shuffles (0/10 each); at 20 trials the
# real metric starts to stand out (2/10), at 40 it always does (10/10), and noise stays at
# the chance rate (2 of 40 studies of 10-80 trials).
MIN_TRIALS = 20
# A bar is trusted only above what the same objective values, shuffled over the same trials,
# give the top parameter in any of 19 shuffles (a 5 % level): normalized importances sum to 1,
# so a pure-noise objective draws bars as tall as a real one.
SHUFFLES = 19
# PED-ANOVA compares the best QUANTILE of trials with all of them; Optuna's default 0.1 is 2-4
# trials in a 20-40 trial study, where the real metric above stood out in 1/10 and 0/10 studies.
QUANTILE = 0.3

STYLE = {  # standing -> (legend name, marker)
    "front": ("Pareto front (feasible)", {"color": "#d62728", "size": 11, "symbol": "circle"}),
    "dominated": ("dominated", {"color": "#1f77b4", "size": 8, "symbol": "circle-open"}),
    "infeasible": ("infeasible (below threshold)", {"color": "#7f7f7f", "size": 8, "symbol": "x"}),
}


@dataclass(frozen=True)
class Importance:
    """Parameter importances for one objective, and how far they are from noise."""

    objective: str
    params: tuple[str, ...]  # the parameters assessed: those that vary and can move it
    trials: int  # COMPLETE trials
    values: dict[str, float]  # normalized (sum 1), largest first; empty when not computed
    noise: float = 0.0  # normalized importance a shuffled objective gives its top parameter

    @property
    def standing_out(self) -> list[str]:
        """Parameters whose importance is above the shuffled objective's."""
        return [k for k, v in self.values.items() if v > self.noise]

    @property
    def verdict(self) -> str:
        """One phrase: how many parameters stand out, or why nothing is shown."""
        if not self.params:
            return "no parameter that can move it varies across trials"
        if not self.values:
            return f"not computed: {self.trials} COMPLETE trials, importances need {MIN_TRIALS}"
        out = self.standing_out
        if not out:
            return "low confidence: no parameter stands out from a shuffled objective"
        return f"{len(out)} of {len(self.values)} stand out from a shuffled objective"


def _shape(row: TrialRow) -> str:
    return shape_label(row.params)


def _hover(row: TrialRow, summary: Summary) -> str:
    values = "<br>".join(
        f"{n}: {row.values[n] / 1e6:.3f}M" if n == PARAMS else f"{n}: {row.values[n]:.4g}"
        for n in summary.names
    )
    tag = " (baseline)" if row.baseline else ""
    return f"trial {row.number}{tag}<br>{_shape(row)}<br>{values}"


def front_figure(summary: Summary) -> go.Figure:
    """Task metric against size: front, dominated, infeasible; the baseline as a star."""
    metric = summary.metric
    fig = go.Figure()
    for standing, (name, marker) in STYLE.items():
        rows = [r for r in summary.rows if r.standing == standing]
        if standing == "front":
            rows.sort(key=lambda r: r.values[PARAMS])
        fig.add_trace(
            go.Scatter(
                x=[r.values[PARAMS] / 1e6 for r in rows],
                y=[r.values[metric] for r in rows],
                mode="lines+markers" if standing == "front" else "markers",
                line={"shape": "hv", "color": marker["color"], "width": 1},
                marker=marker,
                name=f"{name}: {len(rows)}",
                text=[_hover(r, summary) for r in rows],
                customdata=[r.number for r in rows],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    pruned = [r for r in summary.rows if r.standing == "pruned" and metric in r.rung_values]
    if pruned:  # at the values of the rung they stopped at: not comparable with final ones
        fig.add_trace(
            go.Scatter(
                x=[r.rung_values[PARAMS] / 1e6 for r in pruned],
                y=[r.rung_values[metric] for r in pruned],
                mode="markers",
                marker={"color": "#9467bd", "size": 8, "symbol": "triangle-down-open"},
                name=f"pruned (at its rung): {len(pruned)}",
                text=[f"trial {r.number}: {r.reason}<br>{r.message}" for r in pruned],
                customdata=[r.number for r in pruned],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    base = [r for r in summary.rows if r.baseline and r.state == "COMPLETE"]
    fig.add_trace(
        go.Scatter(
            x=[r.values[PARAMS] / 1e6 for r in base],
            y=[r.values[metric] for r in base],
            mode="markers",
            marker={"symbol": "star", "size": 18, "color": "#ff7f0e", "line": {"width": 1}},
            name="baseline",
            text=[_hover(r, summary) for r in base],
            customdata=[r.number for r in base],
            hovertemplate="%{text}<extra></extra>",
        )
    )
    for t in summary.thresholds:
        if t.metric == metric:  # a bound on another metric has no axis here
            fig.add_hline(
                y=t.bound,
                line={"dash": "dash", "color": "#7f7f7f", "width": 1},
                annotation_text=f"feasible above: {bound_text(t, summary)}",
                annotation_position="bottom right",
            )
    failed = ", ".join(f"{k} {v}" for k, v in sorted(summary.failures.items())) or "none"
    fig.update_layout(
        title=f"{summary.study}: {metric} vs parameters (failed trials: {failed})",
        xaxis_title="parameters (millions)",
        yaxis_title=metric,
        template="plotly_white",
        # the legend sits under the title: optuna-dashboard's cards clip anything below
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
        margin={"t": 110, "b": 60},
        height=480,
    )
    return fig


def hypervolume_figure(
    history: list[tuple[int, float]], ref: Mapping[str, float], summary: Summary
) -> go.Figure:
    ref_text = ", ".join(
        f"{n} {v / 1e6:.3f}M" if n == PARAMS else f"{n} {v:.{metric_digits([v])}f}"
        for n, v in ref.items()
    )
    unit = " x ".join("M params" if n == PARAMS else n for n in summary.names)
    fig = go.Figure(
        go.Scatter(
            x=[n for n, _ in history],
            y=[v for _, v in history],
            mode="lines+markers",
            line={"shape": "hv"},
            name="hypervolume",
        )
    )
    fig.update_layout(
        title=f"Hypervolume of the feasible front against ({ref_text})",
        xaxis_title="trial",
        yaxis_title=f"hypervolume ({unit})",
        template="plotly_white",
        height=380,
    )
    return fig


def depends_on(objective: str, params: Iterable[str]) -> list[str]:
    """The parameters of ``params`` that can move ``objective``: all of them for a task metric,
    the shape parameters of :data:`COST_PARAMS` for a cost."""
    allowed = COST_PARAMS.get(objective)
    return [p for p in params if allowed is None or p in allowed]


def importances(summary: Summary, study: optuna.Study, objective: str) -> Importance:
    """Importances of the parameters that can move ``objective``, with the level a shuffled
    objective reaches (:data:`SHUFFLES` permutations of the same values over the same trials).

    Nothing is computed below :data:`MIN_TRIALS` COMPLETE trials. Maximized objectives are
    negated: PED-ANOVA ranks parameters by how they matter for reaching *low* values.
    """
    i = summary.names.index(objective)
    sign = -1.0 if summary.directions[i] == "maximize" else 1.0
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    values = {t.number: sign * t.values[i] for t in done}
    varying = [k for k in sorted({k for t in done for k in t.params}) if _varies(done, k)]
    params = depends_on(objective, varying)
    if len(done) < MIN_TRIALS or not params:
        return Importance(objective, tuple(params), len(done), {})
    real = _raw_importances(study, params, values)
    rng = np.random.default_rng(0)  # the same shuffles every time: reports are reproducible
    numbers, observed = list(values), np.array(list(values.values()))
    null = []
    for _ in range(SHUFFLES):
        shuffled = dict(zip(numbers, rng.permutation(observed).tolist(), strict=True))
        null.append(max(_raw_importances(study, params, shuffled).values()))
    total = sum(real.values())
    if total <= 0:  # no parameter separates the best trials from the rest at all
        return Importance(objective, tuple(params), len(done), dict.fromkeys(params, 0.0), 1.0)
    normalized = dict(sorted(((k, v / total) for k, v in real.items()), key=lambda kv: -kv[1]))
    return Importance(objective, tuple(params), len(done), normalized, max(null) / total)


def _varies(trials: list[FrozenTrial], param: str) -> bool:
    return len({repr(t.params.get(param)) for t in trials}) > 1


def _raw_importances(
    study: optuna.Study, params: list[str], values: Mapping[int, float]
) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-study and experimental (normalize) warnings
        return optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.PedAnovaImportanceEvaluator(target_quantile=QUANTILE),
            params=params,
            target=lambda t: values[t.number],
            normalize=False,
        )


def importance_figure(result: Importance) -> go.Figure:
    """Bars, largest on top; grey where a shuffled objective reaches as much (dashed line)."""
    items = sorted(result.values.items(), key=lambda kv: kv[1])
    fig = go.Figure(
        go.Bar(
            x=[v for _, v in items],
            y=[k for k, _ in items],
            orientation="h",
            marker={"color": ["#2ca02c" if v > result.noise else "#bbbbbb" for _, v in items]},
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.add_vline(
        x=result.noise,
        line={"dash": "dash", "color": "#555", "width": 1},
        annotation_text="shuffled objective",
        annotation_position="top",
    )
    fig.update_layout(
        title=f"Parameter importance for {result.objective} (PED-ANOVA, {result.trials} "
        f"trials): {result.verdict}",
        xaxis_title="importance (normalized); grey: no more than a shuffled objective gives",
        template="plotly_white",
        height=190 + 30 * len(items),
        margin={"l": 140, "t": 80, "b": 60},
    )
    return fig


def bound_text(t: Threshold, summary: Summary) -> str:
    """``exact ≥ 50 (the no-answer score 40 + 10)``, or ``exact ≥ 50`` for a fixed bound."""
    text = f"{t.metric} ≥ {t.bound:g}"
    if t.above_no_answer is None:
        return text
    score = summary.no_answer.get("selection", {}).get(t.metric, t.bound - t.above_no_answer)
    return text + f" (the no-answer score {score:.4g} + {t.above_no_answer:g})"
