"""Plotly figures of a study summary: the Pareto front, the hypervolume history, and parameter
importances. The HTML report and the optuna-dashboard publication draw the same figures.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import optuna
import plotly.graph_objects as go

from nas.summary import Summary, TrialRow, metric_digits

STYLE = {  # standing -> (legend name, marker)
    "front": ("Pareto front (feasible)", {"color": "#d62728", "size": 11, "symbol": "circle"}),
    "dominated": ("dominated", {"color": "#1f77b4", "size": 8, "symbol": "circle-open"}),
    "infeasible": ("infeasible (below threshold)", {"color": "#7f7f7f", "size": 8, "symbol": "x"}),
}


def _shape(row: TrialRow) -> str:
    p = row.params
    return (
        f"L{p.get('n_layers', '?')} H{p.get('n_heads', '?')} d{p.get('hidden_size', '?')} "
        f"ffn{p.get('ffn_dim', '?')}"
    )


def _hover(row: TrialRow, summary: Summary) -> str:
    values = "<br>".join(
        f"{n}: {row.values[n] / 1e6:.3f}M" if n == "params" else f"{n}: {row.values[n]:.4g}"
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
            rows.sort(key=lambda r: r.values["params"])
        fig.add_trace(
            go.Scatter(
                x=[r.values["params"] / 1e6 for r in rows],
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
    base = [r for r in summary.rows if r.baseline and r.state == "COMPLETE"]
    fig.add_trace(
        go.Scatter(
            x=[r.values["params"] / 1e6 for r in base],
            y=[r.values[metric] for r in base],
            mode="markers",
            marker={"symbol": "star", "size": 18, "color": "#ff7f0e", "line": {"width": 1}},
            name="baseline",
            text=[_hover(r, summary) for r in base],
            customdata=[r.number for r in base],
            hovertemplate="%{text}<extra></extra>",
        )
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
        f"{n} {v / 1e6:.3f}M" if n == "params" else f"{n} {v:.{metric_digits([v])}f}"
        for n, v in ref.items()
    )
    unit = " x ".join("M params" if n == "params" else n for n in summary.names)
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


def importances(summary: Summary, study: optuna.Study, objective: str) -> dict[str, float]:
    """PED-ANOVA importances (Optuna's and optuna-dashboard's default) for one objective.

    PED-ANOVA ranks params by how they matter for reaching *low* values, so maximized
    objectives are negated. Raises ValueError or RuntimeError when the study is too small.
    """
    i = summary.names.index(objective)
    sign = -1.0 if summary.directions[i] == "maximize" else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
            target=lambda t: sign * t.values[i],
        )
    return dict(result)


def importance_figure(objective: str, values: Mapping[str, float]) -> go.Figure:
    items = sorted(values.items(), key=lambda kv: kv[1])
    fig = go.Figure(
        go.Bar(
            x=[v for _, v in items],
            y=[k for k, _ in items],
            orientation="h",
            marker={"color": "#2ca02c"},
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Parameter importance for {objective} (PED-ANOVA)",
        xaxis_title="importance (normalized)",
        template="plotly_white",
        height=160 + 30 * len(items),
        margin={"l": 140, "t": 60, "b": 50},
    )
    return fig
