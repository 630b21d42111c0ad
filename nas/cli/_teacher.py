"""``nas teacher train``: fine-tune the study's teacher and save it; ``nas teacher wos`` (also
``nas data wos``): its word-order sensitivity and the student family that suggests."""

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
        ["nas teacher train studies/quickstart.yaml", "nas teacher wos studies/sst2.yaml"],
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
    _add_wos(sub, "teacher")
    data = group(
        commands,
        "data",
        "what a study's data needs",
        "data_command",
        ["nas data wos studies/sst2.yaml"],
    )
    _add_wos(data, "data")


def _add_wos(sub: Any, name: str) -> None:
    """``nas teacher wos`` and ``nas data wos``: one command under both groups."""
    wos = command(
        sub,
        "wos",
        help="the teacher's word-order sensitivity and the student family it suggests",
        description="Score the study's teacher on its selection examples, then on the ones it "
        "gets right with their words shuffled (seeded, several shuffles): WOS = (100 - p) / 50 "
        "(Pham et al. 2020). Suggests bow below 0.2, bilstm up to 0.5, a transformer above: "
        "nas's reading of the seed blogs' Emotion 0.14 -> bow, SST-2 0.34 -> BiLSTM, "
        "CoLA 0.99 -> transformer. Classification studies only; nas study run measures it "
        "once on 500 selection examples and stores it on the study.",
        examples=[
            f"nas {name} wos studies/sst2.yaml",
            f"nas {name} wos studies/emotion.yaml --samples 500 --seed 1",
        ],
    )
    wos.add_argument("study", metavar="S.yaml", help="a classification study config")
    wos.add_argument(
        "--samples",
        type=int,
        metavar="N",
        help="score a seeded sample of N examples (default: all)",
    )
    wos.add_argument("--seed", type=int, default=0, metavar="S", help="sample and shuffle seed")
    wos.set_defaults(run=wos_command)


def train_command(args: argparse.Namespace) -> int:
    from nas.trial import train_teacher

    config = load_study(args.study)
    out = args.out or Path(config.paths.teacher)
    if out.exists() and not args.force:
        raise NasError(f"{out} exists; pass --force to replace it or --out for another folder")
    metrics = train_teacher(config, out, progress)
    print(json.dumps({"teacher": str(out), "metrics": metrics}, indent=2))
    return 0


def wos_command(args: argparse.Namespace) -> int:
    from nas.tasks import get_task
    from nas.trial import load_splits, teacher_wos

    config = load_study(args.study)
    if get_task(config.task).kind != "classification":
        raise NasError(
            f"{args.study}: task {config.task} is not classification; word-order sensitivity "
            "scores classification teachers, run it on a classification study"
        )
    if args.samples is not None and args.samples < 1:
        raise NasError(f"--samples {args.samples}: give a positive number of examples")
    task, splits, data = load_splits(config)
    result = teacher_wos(
        config.paths.teacher,
        task,
        splits.eval,
        data,
        len(splits.label_names),
        seed=args.seed,
        samples=args.samples,
    )
    print(
        f"WOS {result.wos:.3f} (p = {result.p:.1f} % on {result.shuffles} shuffles of the "
        f"{result.correct} of {result.examples} selection examples the teacher gets right; "
        f"seed {result.seed}) -> suggests {result.family} (nas's cut points 0.2 / 0.5 on the "
        "seeds' Emotion 0.14 -> bow, SST-2 0.34 -> BiLSTM, CoLA 0.99 -> transformer)"
    )
    return 0
