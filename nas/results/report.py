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
from nas.feasibility import constraint_name
from nas.objectives import PARAMS
from nas.results.figures import (
    COST_PARAMS,
    front_figure,
    hypervolume_figure,
    importance_figure,
    importances,
)
from nas.results.summary import (
    Summary,
    TrialRow,
    front_table,
    hypervolume_history,
    metric_digits,
    pick_lines,
    reference_point,
    summarize,
)
from nas.results.verdict import rule_line
from nas.study import (
    DATASET,
    NAS_VERSION,
    TASK,
    TEACHER,
    config_snapshot,
    mask_password,
    wos_record,
)

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
tr.front td { background: #fdecea; } tr.failed td { color: #a00; }
tr.infeasible td { color: #777; } tr.pruned td { color: #6a3d9a; }
pre { background: #f8f8f8; padding: 1em; overflow-x: auto; }
.meta td { text-align: left; }
.scroll { overflow-x: auto; max-width: 100%; }
#trials td { max-width: 28em; overflow-wrap: anywhere; }
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
    config: dict[str, Any] = dict(config_snapshot(study) or {})
    local = _Local(str(config.get("cache_dir") or ""))
    parts = [
        f"<h1>nas study report: {_e(summary.study)}</h1>",
        _meta(study, summary, url, local),
        "<h2>Pareto front</h2>",
        _front_section(summary),
        _figure(front_figure(summary), "nas-front", inline_js=True),
        "<h2>Hypervolume</h2>",
        _hypervolume_section(summary, config),
        "<h2>Parameter importance</h2>",
        _importance_section(study, summary),
        "<h2>Trials</h2>",
        _trials_table(summary, local),
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


class _Local:
    """Shows paths without this machine's folders: ``{cache_dir}`` and the cache folder become
    "the cache folder", other absolute paths their last two parts, the home folder ``~``."""

    def __init__(self, cache_dir: str) -> None:
        self.cache_dir = cache_dir.rstrip("/")

    def path(self, value: object) -> str:
        text = str(value)
        for cache in ("{cache_dir}", self.cache_dir):
            if cache and text.startswith(cache + "/"):
                return f"{text[len(cache) + 1 :]} (in the study's cache folder)"
        if text.startswith("/"):
            return f".../{'/'.join(Path(text).parts[-2:])} (a local folder)"
        return text

    def text(self, value: str) -> str:
        """A message with the cache folder and the home folder shortened."""
        if self.cache_dir:
            value = value.replace(self.cache_dir, "<cache folder>")
        return value.replace("{cache_dir}", "<cache folder>").replace(str(Path.home()), "~")


def _storage(url: str) -> str:
    """The storage without a password or this machine's folders: a SQLite file by its name."""
    if url.startswith("sqlite:///"):
        return f"SQLite file {Path(url[len('sqlite:///') :]).name}"
    if "://" not in url:  # a JournalStorage file
        return f"journal file {Path(url).name}"
    return mask_password(url)


def _meta(study: optuna.Study, summary: Summary, url: str, local: _Local) -> str:
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
        ("feasibility", rule_line(summary).removeprefix("feasible: ")),
        ("task", attrs.get(TASK, "?")),
        ("teacher", local.path(attrs.get(TEACHER, "?"))),
        ("teacher word-order sensitivity", _wos(study)),
        ("dataset", local.path(attrs.get(DATASET, "?"))),
        ("storage", _storage(url)),
        (
            "trials",
            f"{len(summary.rows)} (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")",
        ),
        ("failure reasons", failed),
        (
            "made by",
            f"nas {nas.__version__} (study made by nas {attrs.get(NAS_VERSION, '?')}),"
            f" {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}",
        ),
    ]
    cells = "".join(f"<tr><th class='l'>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table class='meta'>{cells}</table>"


def _wos(study: optuna.Study) -> str:
    record = wos_record(study)
    if not record:
        return "not measured (question answering, or a study run before nas measured it)"
    return (
        f"WOS {record['wos']:.2f}: accuracy {record['p']:.1f} % on shuffled copies of the "
        f"{record['correct']} selection examples it gets right; suggests {record['family']} "
        "students (Pham et al. 2020)"
    )


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
    return f"{value / 1e6:.3f}M" if objective == PARAMS else f"{value:.6g}"


def _importance_section(study: optuna.Study, summary: Summary) -> str:
    parts = [
        "<p>Each objective is explained only by the parameters that can move it (params by "
        f"{', '.join(COST_PARAMS['params'])}; latency_ms by {', '.join(COST_PARAMS['latency_ms'])}"
        "; the task metric by all). A grey bar is no larger than what the same values, "
        "shuffled over the trials, give the top parameter: it may be noise.</p>"
    ]
    for objective in summary.names:
        result = importances(summary, study, objective)
        if not result.values:
            parts.append(f"<p>{_e(objective)}: {_e(result.verdict)}.</p>")
            continue
        parts.append(_figure(importance_figure(result), f"nas-importance-{objective}"))
    return "\n".join(parts)


def _trials_table(summary: Summary, local: _Local) -> str:
    names = summary.names
    keys = sorted({k for r in summary.rows for k in r.params})
    digits = metric_digits([r.values[summary.metric] for r in summary.rows if r.values])
    head = ["trial", "standing", *names, "feasible", *keys, "time (s)", "reason"]
    lines = [
        "<div class='scroll'><table id='trials'><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr>"
    ]
    for r in summary.rows:
        lines.append(
            f"<tr class='{r.standing}'>"
            + "".join(_cells(r, summary, keys, digits, local))
            + "</tr>"
        )
    lines.append("</table></div>")
    return "\n".join(lines)


def _feasible(r: TrialRow, summary: Summary, digits: int) -> str:
    """``yes``, or ``no:`` and each missed bound in words (``exact 45.00 < 50``)."""
    if r.state != "COMPLETE" or not r.constraints:
        return ""
    by_name = {constraint_name(t): t for t in summary.thresholds}
    missed = []
    for name, c in r.constraints.items():
        if c <= 0:
            continue
        t = by_name.get(name)
        if t is None:  # a constraint of a rule this study no longer states
            missed.append(f"{name} missed by {c:.3g}")
        else:
            missed.append(f"{t.metric} {t.bound - c:.{digits}f} < {t.bound:g}")
    return "no: " + "; ".join(missed) if missed else "yes"


def _cells(
    r: TrialRow, summary: Summary, keys: list[str], digits: int, local: _Local
) -> list[str]:
    names = summary.names

    def value(n: str) -> str:
        if n not in r.values:
            return ""
        v = r.values[n]
        return f"{v / 1e6:.3f}M" if n == PARAMS else f"{v:.{digits}f}"

    def param(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    standing = r.standing + (" (baseline)" if r.baseline else "")
    reason = local.text(f"{r.reason}: {r.message}") if r.reason else ""
    cells = [str(r.number), standing, *(value(n) for n in names), _feasible(r, summary, digits)]
    cells += [param(r.params[k]) if k in r.params else "" for k in keys]
    cells += ["" if r.duration_s is None else f"{r.duration_s:.1f}", reason]
    return [
        f"<td class='l'>{_e(c)}</td>"
        if i in (1, 2 + len(names), len(cells) - 1)
        else f"<td>{_e(c)}</td>"
        for i, c in enumerate(cells)
    ]
