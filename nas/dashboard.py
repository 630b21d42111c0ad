"""optuna-dashboard for nas studies: publish nas's own front into the study, and serve it.

optuna-dashboard 0.21 draws its own Pareto list without looking at constraints, so nas writes
its feasible front (plot and table) into the study with optuna-dashboard's public API
(``save_plotly_graph_object`` and ``save_note``); the dashboard shows both on the study page.
Constraint values reach the dashboard's Pareto plot through the ``constraints`` list that
``study.tell_complete`` writes for every trial.
"""

from __future__ import annotations

import datetime as dt
import errno
import socket
from typing import Any

import optuna

import nas
from nas.errors import NasError
from nas.figures import front_figure
from nas.summary import Summary, front_cells, pick_lines, summarize

FRONT_PLOT_ID = "nas-front"


def publish(study: optuna.Study) -> Summary:
    """Write nas's front plot and front table (as the study note) into the study."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    summary = summarize(study)
    save_plotly_graph_object(study, front_figure(summary), graph_object_id=FRONT_PLOT_ID)
    save_note(study, front_note(summary))
    return summary


def front_note(summary: Summary) -> str:
    """The front as a Markdown table with the differences from the baseline, and the picks."""
    metric = summary.metric
    lines = [
        f"## nas: feasible Pareto front of `{summary.study}`",
        "",
        f"Trials: {len(summary.rows)} — front {summary.count('front')}, dominated "
        f"{summary.count('dominated')}, infeasible {summary.count('infeasible')}, failed "
        f"{summary.count('failed')}"
        + (
            " (" + ", ".join(f"{k} {v}" for k, v in sorted(summary.failures.items())) + ")"
            if summary.failures
            else ""
        )
        + ".",
        "",
        "The dashboard's own Pareto list ignores constraints; this table and the plot "
        f"`{FRONT_PLOT_ID}` are nas's feasible front.",
        "",
        "selection = the split every trial was scored on; test = data no trial saw; "
        "b = the baseline.",
        "",
    ]
    header, rows = front_cells(summary)
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---:|" * len(header))
    lines += ["| " + " | ".join(cell.strip() for cell in row) + " |" for row in rows]
    lines += [""] + [
        f"- {label}: {'trial ' + str(c.trial) if c else 'none'}"
        for label, c in pick_lines(metric, summary.picks)
    ]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines += ["", f"_Published by nas {nas.__version__} at {stamp}._"]
    return "\n".join(lines)


def check_port(host: str, port: int) -> None:
    """Fail with a usable message when the port is taken, before starting the server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as the server will: a port in TIME_WAIT after a restart is free, a listener is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise NasError(f"port {port} on {host} is in use; pass another --port") from None
            raise NasError(f"cannot listen on {host}:{port} ({exc.strerror})") from None


def serve(storage: Any, host: str, port: int, artifact_store: Any) -> None:
    """Run optuna-dashboard until interrupted (blocks)."""
    from optuna_dashboard import run_server

    run_server(storage, host=host, port=port, artifact_store=artifact_store)
