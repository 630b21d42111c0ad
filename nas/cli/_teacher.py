"""``nas teacher train``: fine-tune the study's teacher and save it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas.cli._common import command, group, progress
from nas.config import load_study
from nas.errors import NasError


def register(commands: Any) -> None:
    sub = group(
        commands,
        "teacher",
        "fine-tune a teacher",
        "teacher_command",
        ["nas teacher train studies/quickstart.yaml"],
    )
    train = command(
        sub,
        "train",
        help="fine-tune the study's teacher (teacher.train) and save it",
        description="Fine-tune a teacher on the study's task, from teacher.train.init (a "
        "pretrained checkpoint) or from a random BERT built from teacher.train.arch, and save "
        "it to teacher.path (nas study run does this on first use).",
        examples=[
            "nas teacher train studies/quickstart.yaml",
            "nas teacher train studies/quickstart.yaml --out teachers/qs --force",
        ],
    )
    train.add_argument("study", metavar="S.yaml", help="study config with a teacher.train section")
    train.add_argument(
        "--out", type=Path, metavar="DIR", help="folder to save to (default: teacher.path)"
    )
    train.add_argument("--force", action="store_true", help="replace an existing folder")
    train.set_defaults(run=train_command)


def train_command(args: argparse.Namespace) -> int:
    from nas.trial import train_teacher

    config = load_study(args.study)
    out = args.out or Path(config.paths.teacher)
    if out.exists() and not args.force:
        raise NasError(f"{out} exists; pass --force to replace it or --out for another folder")
    metrics = train_teacher(config, out, progress)
    print(json.dumps({"teacher": str(out), "metrics": metrics}, indent=2))
    return 0
