"""``nas eval squad-v2``: the official SQuAD 2.0 evaluation, same keys and values."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nas.cli._common import command, group


def register(commands: Any) -> None:
    sub = group(
        commands,
        "eval",
        "score prediction files",
        "eval_command",
        ["nas eval squad-v2 --data dev-v2.0.json --predictions preds.json"],
        metavar="TASK",
    )
    squad = command(
        sub,
        "squad-v2",
        help="score SQuAD 2.0 predictions as the official evaluation script does",
        description="Score SQuAD 2.0 predictions as the official evaluation script (v2.0) does: "
        "the same JSON keys and values on stdout.",
        examples=[
            "nas eval squad-v2 --data dev-v2.0.json --predictions preds.json",
            "nas eval squad-v2 --data dev-v2.0.json --predictions preds.json "
            "--na-probs na.json --na-prob-thresh 0.5",
        ],
    )
    squad.add_argument(
        "--data", required=True, metavar="FILE", help="official-format JSON (dev-v2.0.json)"
    )
    squad.add_argument(
        "--predictions", required=True, metavar="FILE", help="JSON object: question id -> text"
    )
    squad.add_argument(
        "--na-probs", metavar="FILE", help="JSON object: question id -> no-answer probability"
    )
    squad.add_argument(
        "--na-prob-thresh",
        type=float,
        metavar="P",
        default=1.0,
        help="predict no answer above this probability (default 1.0)",
    )
    squad.set_defaults(run=squad_command)


def squad_command(args: argparse.Namespace) -> int:
    from nas.tasks import run_eval_files

    result = run_eval_files(args.data, args.predictions, args.na_probs, args.na_prob_thresh)
    print(json.dumps(result, indent=2))
    return 0
