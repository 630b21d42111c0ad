"""``nas trial run``: one trial end to end, metrics as JSON on stdout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas.cli._common import command, group, parse_params, progress, quiet
from nas.config import load_study
from nas.errors import NasError


def register(commands: Any) -> None:
    sub = group(
        commands,
        "trial",
        "run single trials",
        "trial_command",
        ["nas trial run --study studies/quickstart.yaml --params '{\"n_layers\": 1}'"],
    )
    run = command(
        sub,
        "run",
        help="train, evaluate and save one student",
        description="Run one trial: build the student from --params (over the study's "
        "baseline), distill it from the cached teacher logits, evaluate it, print its metrics "
        "as JSON on stdout. Nothing is written to a study.",
        examples=[
            "nas trial run --study studies/quickstart.yaml --params '{\"n_layers\": 1}'",
            "nas trial run --study studies/quickstart.yaml --params @params.json --out student/",
        ],
    )
    run.add_argument(
        "--study",
        required=True,
        metavar="S.yaml",
        help="study config, e.g. studies/quickstart.yaml",
    )
    run.add_argument(
        "--params",
        default="{}",
        metavar="JSON",
        help="JSON object of parameters over the study's baseline, or @FILE to read it from "
        "a file (default: {}, the baseline)",
    )
    run.add_argument(
        "--out", type=Path, metavar="DIR", help="save the student here (Hugging Face folder)"
    )
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    run.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    from nas.params import params_over
    from nas.search_space import study_space

    if args.out is not None and args.out.exists():
        raise NasError(f"--out {args.out} exists; choose a new folder or remove it")
    config = load_study(args.study)
    given = parse_params(args.params)
    # Checked before prepare: bad params train no teacher and write nothing.
    space = study_space(config)
    params = space.trial_params(
        params_over(config.baseline or {}, given), where=f"--params {args.params}"
    )
    from nas.trial import prepare, run_trial  # heavy imports only when needed

    sink = quiet if args.quiet else progress
    prepared = prepare(config, sink)
    metrics = run_trial(prepared, params, args.out, sink, {"trial": "cli"})
    # "params" is the parameter count (Metrics); the sampled values are "trial_params"
    result = {"study": config.name, **metrics.as_dict(), "trial_params": params.as_dict()}
    if args.out is not None:
        result["checkpoint"] = str(args.out)
    print(json.dumps(result, indent=2))
    return 0
