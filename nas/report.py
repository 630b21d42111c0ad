"""``nas study report``: one self-contained HTML file (plotly.js inline, opens offline).

Sections: provenance and counts; the front table with the differences from the baseline and
the three picks; the Pareto front plot (front, dominated, infeasible, baseline; failed counts);
the hypervolume history against the reference point; parameter importances per objective; and
every trial in a table.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from pathlib import Path
from typing import Any

import optuna
import plotly.io as pio

import nas
from nas.errors import NasError
from nas.figures import (
    front_figure,
    hypervolume_figure,
    importance_figure,
    importances,
)
from nas.study import mask_password
from nas.summary import (
    Summary,
    TrialRow,
    front_table,
    hypervolume_history,
    metric_digits,
    pick_lines,
    reference_point,
    summarize,
)

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
tr.front td { background: #fdecea; } tr.failed td { color: #a00; }
tr.infeasible td { color: #777; } pre { background: #f8f8f8; padding: 1em; }
.meta td { text-align: left; }
"""


def write_report(study: optuna.Study, out: Path, url: str) -> Summary:
    """Write (or replace) the report file ``out`` atomically: temporary file, then rename."""
    if out.is_dir():
        raise NasError(f"{out} is a folder; --out takes an HTML file name such as report.html")
    if not out.parent.exists():
        raise NasError(f"folder {out.parent} does not exist; create it or choose another --out")
    summary = summarize(study)
    page = render(study, summary, url)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return summary


def render(study: optuna.Study, summary: Summary, url: str) -> str:
    config: dict[str, Any] = dict(study.user_attrs.get("config") or {})
    parts = [
        f"<h1>nas study report: {_e(summary.study)}</h1>",
        _meta(study, summary, url),
        "<h2>Pareto front</h2>",
        _front_section(summary),
        _figure(front_figure(summary), "nas-front", inline_js=True),
        "<h2>Hypervolume</h2>",
        _hypervolume_section(summary, config),
        "<h2>Parameter importance</h2>",
        _importance_section(study, summary),
        "<h2>Trials</h2>",
        _trials_table(summary),
    ]
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>nas report: {_e(summary.study)}</title><style>{CSS}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def _e(text: object) -> str:
    return html.escape(str(text))


def _figure(fig: Any, div_id: str, inline_js: bool = False) -> str:
    # plotly.js goes inline once, with the first figure; the others reuse it.
    return str(
        pio.to_html(
            fig,
            include_plotlyjs=inline_js,
            full_html=False,
            div_id=div_id,
            config={"displaylogo": False},
        )
    )


def _meta(study: optuna.Study, summary: Summary, url: str) -> str:
    attrs = study.user_attrs
    counts = {
        "Pareto front": summary.count("front"),
        "dominated": summary.count("dominated"),
        "infeasible": summary.count("infeasible"),
        "failed": summary.count("failed"),
        "running": summary.count("running"),
        "waiting": summary.count("waiting"),
    }
    failed = ", ".join(f"{k}: {v}" for k, v in sorted(summary.failures.items())) or "none"
    rows = [
        (
            "objectives",
            ", ".join(
                f"{n} ({d})" for n, d in zip(summary.names, summary.directions, strict=True)
            ),
        ),
        ("task", attrs.get("task", "?")),
        ("teacher", attrs.get("teacher", "?")),
        ("dataset", attrs.get("dataset", "?")),
        ("storage", mask_password(url)),
        (
            "trials",
            f"{len(summary.rows)} (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")",
        ),
        ("failure reasons", failed),
        (
            "made by",
            f"nas {nas.__version__} (study made by nas {attrs.get('nas_version', '?')}),"
            f" {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        ),
    ]
    cells = "".join(f"<tr><th class='l'>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table class='meta'>{cells}</table>"


def _front_section(summary: Summary) -> str:
    table = front_table(summary)
    picks = "".join(
        f"<li>{_e(label)}: {('trial ' + str(chosen.trial)) if chosen else 'none'}</li>"
        for label, chosen in pick_lines(summary.metric, summary.picks)
    )
    note = (
        "b = the baseline trial; selection = the split every trial was scored on; test = data "
        "no trial saw (scored once, after the search); confirmed = mean ± standard deviation "
        "over re-trainings with new seeds (nas study confirm); d = difference to the baseline"
    )
    return f"<pre id='front-table'>{_e(table)}</pre><p>{_e(note)}</p><ul>{picks}</ul>"


def _hypervolume_section(summary: Summary, config: dict[str, Any]) -> str:
    ref, source = reference_point(summary, config)
    history = hypervolume_history(summary, ref)
    if not history:
        return "<p>No COMPLETE trial yet: no hypervolume.</p>"
    where = "; ".join(f"{n} = {_number(n, ref[n])} from {source[n]}" for n in summary.names)
    text = (
        f"<p>Reference point: {_e(where)}. Only feasible trials better than the reference in "
        f"every objective add volume. Final hypervolume: {history[-1][1]:.6g}.</p>"
    )
    return text + _figure(hypervolume_figure(history, ref, summary), "nas-hypervolume")


def _number(objective: str, value: float) -> str:
    return f"{value / 1e6:.3f}M" if objective == "params" else f"{value:.6g}"


def _importance_section(study: optuna.Study, summary: Summary) -> str:
    parts = []
    for objective in summary.names:
        try:
            values = importances(summary, study, objective)
        except (ValueError, RuntimeError) as exc:
            parts.append(f"<p>{_e(objective)}: not computed ({_e(exc)}).</p>")
            continue
        if not values:
            parts.append(f"<p>{_e(objective)}: no parameter varies across trials.</p>")
            continue
        parts.append(_figure(importance_figure(objective, values), f"nas-importance-{objective}"))
    return "\n".join(parts)


def _trials_table(summary: Summary) -> str:
    names = summary.names
    keys = sorted({k for r in summary.rows for k in r.params})
    digits = metric_digits([r.values[summary.metric] for r in summary.rows if r.values])
    head = ["trial", "standing", *names, "constraints", *keys, "time (s)", "reason"]
    lines = ["<table id='trials'><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for r in summary.rows:
        lines.append(
            f"<tr class='{r.standing}'>" + "".join(_cells(r, names, keys, digits)) + "</tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


def _cells(r: TrialRow, names: list[str], keys: list[str], digits: int) -> list[str]:
    def value(n: str) -> str:
        if n not in r.values:
            return ""
        v = r.values[n]
        return f"{v / 1e6:.3f}M" if n == "params" else f"{v:.{digits}f}"

    def param(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    standing = r.standing + (" (baseline)" if r.baseline else "")
    constraints = ", ".join(f"{k}: {v:+.3g}" for k, v in r.constraints.items())
    reason = f"{r.reason}: {r.message}" if r.reason else ""
    cells = [str(r.number), standing, *(value(n) for n in names), constraints]
    cells += [param(r.params[k]) if k in r.params else "" for k in keys]
    cells += ["" if r.duration_s is None else f"{r.duration_s:.1f}", reason]
    return [
        f"<td class='l'>{_e(c)}</td>" if i in (1, len(cells) - 1) else f"<td>{_e(c)}</td>"
        for i, c in enumerate(cells)
    ]
