"""``nas dashboard NAME``: optuna-dashboard on 127.0.0.1 with the study's storage and artifacts,
read-only."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from nas.cli._common import command, log_args, set_log_level, storage_arg


def register(commands: Any) -> None:
    dash = command(
        commands,
        "dashboard",
        help="browse a study in optuna-dashboard (127.0.0.1 by default)",
        description="Publish nas's feasible front (plot and note) into the study, then serve "
        "optuna-dashboard with the study's storage and checkpoint artifacts until Ctrl-C. "
        "It serves read-only (the dashboard has no authentication): every request but GET "
        "and HEAD is refused with 403, and each checkpoint download is checked against the "
        "size and sha256 recorded when it was stored.",
        examples=[
            "nas dashboard quickstart",
            "nas dashboard quickstart --port 8081 --quiet",
            "nas dashboard quickstart --host 0.0.0.0 --allow-remote --no-publish",
        ],
    )
    dash.add_argument("name", metavar="NAME", help="study name")
    storage_arg(dash)
    dash.add_argument(
        "--artifact-root",
        metavar="ROOT",
        help="where the study run stored checkpoints (default: the root the trials "
        "recorded, then the study config's artifact_root, then .nas/artifacts)",
    )
    dash.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="HOST",
        help="address to listen on (default 127.0.0.1: this machine only; reach it from "
        "elsewhere through an SSH tunnel; any non-loopback address needs --allow-remote)",
    )
    dash.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host such as 0.0.0.0: anyone who can reach the port "
        "can read the study and download its checkpoints, without authentication",
    )
    dash.add_argument(
        "--allow-notes",
        action="store_true",
        help="let the dashboard edit study and trial notes; every other write (deleting a "
        "study or artifacts, renames, tells, user attributes) stays refused",
    )
    dash.add_argument("--port", type=int, default=8080, metavar="PORT", help="port (default 8080)")
    dash.add_argument(
        "--no-publish", action="store_true", help="do not write nas's front into the study"
    )
    log_args(dash, "no per-request log lines and no progress: the address line and warnings")
    dash.set_defaults(run=dashboard_command)


def dashboard_command(args: argparse.Namespace) -> int:
    from nas.cli._common import load_named_study
    from nas.errors import NasError
    from nas.results import check_host, check_port, publish, resolve_artifact_root, serve
    from nas.study import open_store, study_id, study_storage

    if not 0 < args.port < 65536:
        raise NasError(f"--port {args.port} is not a TCP port; pass 1-65535, e.g. 8080")
    warning = check_host(args.host, args.allow_remote, args.allow_notes)
    fix = "; or pass --no-publish (then nothing is written)"
    study = load_named_study(args, writes=not args.no_publish, fix=fix)
    check_port(args.host, args.port)
    done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    root = resolve_artifact_root(args.artifact_root, study, done[-1] if done else None)
    quiet = set_log_level(args) > logging.INFO  # --quiet or --log-level warning/error
    if not args.no_publish:
        summary = publish(study)
        if not quiet:
            print(f"published nas's front ({len(summary.front)} trials) into study {args.name}")
    number = study_id(study)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    mode = "notes editable" if args.allow_notes else "read-only"
    print(
        f"optuna-dashboard: http://{args.host}:{args.port}/dashboard/studies/{number} "
        f"({mode}; artifacts: {root}); Ctrl-C stops it",
        flush=True,
    )
    serve(study_storage(study), args.host, args.port, open_store(root), args.allow_notes, quiet)
    return 0
