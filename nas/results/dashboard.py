"""optuna-dashboard for nas studies: publish nas's own front into the study, and serve it.

optuna-dashboard 0.21 draws its own Pareto list without looking at constraints, so nas writes
its feasible front (plot and table) into the study with optuna-dashboard's public API
(``save_plotly_graph_object`` and ``save_note``); the dashboard shows both on the study page.
Constraint values reach the dashboard's Pareto plot through the ``constraints`` list that
``study.tell_complete`` writes for every trial.

optuna-dashboard has no authentication and its API deletes studies (with their checkpoint
files). ``nas dashboard`` serves optuna-dashboard's WSGI app inside :class:`ReadOnly`, a
middleware that refuses every method but GET and HEAD (notes only with ``allow_notes``) and
checks each checkpoint download against the size and sha256 recorded when it was stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import ipaddress
import json
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound

import nas
from nas.errors import NasError
from nas.results.figures import MIN_TRIALS, front_figure, importance_figure, importances
from nas.results.summary import Summary, front_cells, pick_lines, summarize
from nas.study import ChecksumError, artifact_record, digest

FRONT_PLOT_ID = "nas-front"
READ_METHODS = frozenset({"GET", "HEAD"})
# optuna-dashboard 0.21's routes (optuna_dashboard/_app.py, artifact/_backend.py)
_NOTE_ROUTE = re.compile(r"^/api/studies/\d+(/\d+)?/note/*$")  # PUT: study note, trial note
_TRIAL_ARTIFACT = re.compile(r"^/artifacts/(\d+)/(\d+)/([0-9a-fA-F-]+)/*$")  # GET: a download

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def publish(study: optuna.Study) -> Summary:
    """Write nas's front plot, front table (as the study note) and, from
    :data:`~nas.results.figures.MIN_TRIALS` COMPLETE trials, its importance plots into the
    study."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    summary = summarize(study)
    save_plotly_graph_object(study, front_figure(summary), graph_object_id=FRONT_PLOT_ID)
    for objective in summary.names:
        result = importances(summary, study, objective)
        if result.values:
            figure = importance_figure(result)
            save_plotly_graph_object(study, figure, graph_object_id=importance_plot_id(objective))
    save_note(study, front_note(summary))
    return summary


def importance_plot_id(objective: str) -> str:
    return f"nas-importance-{objective}"


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
        "The dashboard's own Hyperparameter Importance chart ranks every parameter for every "
        "objective; nas's plots `nas-importance-*` (drawn from "
        f"{MIN_TRIALS} COMPLETE trials) rank only the parameters that can move each objective "
        "and grey out what a shuffled objective also reaches.",
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


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only: ``localhost`` or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_host(host: str, allow_remote: bool, allow_notes: bool) -> str | None:
    """Refuse a non-loopback ``host`` unless ``allow_remote``; returns the warning to print
    then (None on loopback).

    Raises:
        NasError: ``host`` is not loopback and ``allow_remote`` is not set.
    """
    if is_loopback(host):
        return None
    if not allow_remote:
        raise NasError(
            f"--host {host} serves the dashboard to the network, and it has no "
            "authentication; keep 127.0.0.1 and reach it through an SSH tunnel (ssh -L "
            "8080:127.0.0.1:8080 HOST), or pass --allow-remote"
        )
    edits = "study and trial notes can be edited" if allow_notes else "every write is refused"
    return (
        f"nas: warning: serving on {host} without authentication: anyone who can reach the "
        f"port can read the study and download its checkpoints ({edits})"
    )


def check_port(host: str, port: int) -> None:
    """Fail with a usable message when the port is taken, before starting the server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as bottle's server binds
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as the server will: a port in TIME_WAIT after a restart is free, a listener is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise NasError(f"port {port} on {host} is in use; pass another --port") from None
            raise NasError(f"cannot listen on {host}:{port} ({exc.strerror})") from None


class ReadOnly:
    """WSGI middleware around optuna-dashboard: refuses writes with 403 and checks downloads.

    Every method but GET and HEAD is refused (study deletion, renames, tells, uploads, user
    attributes...), except PUT on the study and trial note routes when ``allow_notes``. A
    trial artifact whose record has a size or sha256 is read and checked before the dashboard
    serves it; a changed file is refused with 500, naming the trial and the file.
    """

    def __init__(
        self, app: WSGIApp, storage: Any, artifact_store: Any, allow_notes: bool = False
    ) -> None:
        self.app, self.storage, self.store, self.allow_notes = (
            app,
            storage,
            artifact_store,
            allow_notes,
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", ""))
        note = self.allow_notes and method == "PUT" and _NOTE_ROUTE.match(path)
        if method not in READ_METHODS and not note:
            fix = "" if self.allow_notes else "; restart it with --allow-notes to edit notes"
            return _answer(
                start_response,
                "403 Forbidden",
                f"nas dashboard is read-only: {method} {path} is refused{fix}",
            )
        download = _TRIAL_ARTIFACT.match(path)
        if download:
            problem = self._check_download(int(download[1]), int(download[2]), download[3])
            if problem is not None:
                environ["wsgi.errors"].write(f"nas: error: {problem[1]}\n")
                return _answer(start_response, *problem)
        return self.app(environ, start_response)

    def _check_download(
        self, study_id: int, trial_id: int, artifact_id: str
    ) -> tuple[str, str] | None:
        """(status, message) when the stored file differs from its record or is gone."""
        try:
            trial = self.storage.get_trial(trial_id)
            study = self.storage.get_study_name_from_id(study_id)
        except KeyError:
            return None  # the dashboard answers 404
        record = artifact_record(trial, artifact_id)
        if self.store is None or (record.size is None and record.sha256 is None):
            return None  # nothing recorded to check (a file of an older nas)
        where = f"trial {trial.number} of study '{study}'"
        try:
            with contextlib.closing(self.store.open_reader(artifact_id)) as handle:
                sha256, size = digest(handle)
            record.check(sha256, size, where)
        except ArtifactNotFound:
            return "404 Not Found", f"{where}: checkpoint file {record.filename} is missing"
        except ChecksumError as exc:
            return "500 Internal Server Error", str(exc)
        return None


def _answer(start_response: StartResponse, status: str, reason: str) -> list[bytes]:
    """A JSON error as optuna-dashboard's API gives them (its UI shows ``reason``)."""
    body = json.dumps({"reason": reason}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


def dashboard_app(storage: Any, artifact_store: Any, allow_notes: bool = False) -> ReadOnly:
    """optuna-dashboard's WSGI app for ``storage`` and ``artifact_store``, read-only."""
    from optuna_dashboard import wsgi

    app = wsgi(storage, artifact_store=artifact_store)
    return ReadOnly(app, storage, artifact_store, allow_notes)


def serve(
    storage: Any,
    host: str,
    port: int,
    artifact_store: Any,
    allow_notes: bool = False,
    quiet: bool = False,
) -> None:
    """Serve :func:`dashboard_app` until interrupted (blocks), with the server
    ``optuna_dashboard.run_server`` uses (bottle's wsgiref); ``quiet``: no start-up banner and
    no line per request (errors still raise)."""
    from bottle import run

    app = dashboard_app(storage, artifact_store, allow_notes)
    run(app, host=host, port=port, quiet=quiet)
