"""``nas export``: trials of a study as Hugging Face folders, a model card each, an index."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from nas.cli._common import command, storage_arg
from nas.errors import NasError

ONNX_NAME, ONNX_OPSET = "model.onnx", 20  # nas.students.ONNX_FILE/OPSET (help text: no torch)


def register(commands: Any) -> None:
    export = command(
        commands,
        "export",
        help="write trials as Hugging Face folders",
        description="Copy the checkpoints of the Pareto front (or of chosen trials) out of the "
        "artifact store into OUT/trial-<number>/ folders that load with AutoModel*."
        "from_pretrained (bilstm, cnn and bow students: nas_family.json and model.safetensors, "
        "loaded by nas.students.load_family), each with nas.json provenance, the student's "
        "batch-1 latency, and a Hugging Face model card (front "
        "matter with a model-index of the test-split scores, an inference snippet that decides "
        "as nas does; local paths read <local>/NAME); OUT/index.json and OUT/index.csv list "
        "them. A chosen infeasible trial is exported with a warning. Every file is checked "
        "against the size and sha256 recorded when it was stored. OUT is written whole or not "
        "at all. --onnx adds model.onnx (logits, or start/end logits for QA; dynamic batch and "
        "sequence axes) to each folder, checked against PyTorch with onnxruntime, and an "
        "onnxruntime snippet to each card.",
        examples=[
            "nas export quickstart --out frontier/",
            "nas export sst2 --out deploy/ --onnx",
            "nas export quickstart --trials 3,7 --out picked/ --force",
        ],
    )
    export.add_argument("name", metavar="NAME", help="study name")
    export.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="export folder (must not exist, unless --force)",
    )
    which = export.add_mutually_exclusive_group()
    which.add_argument(
        "--front", action="store_true", help="the feasible Pareto front (the default)"
    )
    which.add_argument(
        "--trials", metavar="LIST", help="comma-separated COMPLETE trial numbers, e.g. 3,7"
    )
    storage_arg(export)
    export.add_argument(
        "--artifact-root",
        metavar="ROOT",
        help="where the study run stored checkpoints: a folder or s3://BUCKET/PREFIX "
        "(default: the root each trial recorded, then the study config's artifact_root, "
        "then .nas/artifacts)",
    )
    export.add_argument(
        "--force",
        action="store_true",
        help="replace OUT if it is a previous nas export (index.json and trial-N folders only), "
        "once the new one is done; never the current folder, one above it, or the study's "
        "storage or checkpoint folders",
    )
    export.add_argument(
        "--onnx",
        action="store_true",
        help=f"also write {ONNX_NAME} (opset {ONNX_OPSET}) in each folder, checked against "
        "PyTorch (needs the onnx extra: pip install 'nas-distill[onnx]')",
    )
    export.set_defaults(run=export_command)


def parse_trial_numbers(text: str) -> list[int]:
    """``"3,7"`` -> ``[3, 7]``; anything but non-negative integers is an error."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise NasError(
            f"--trials {text!r} is not a comma-separated list of trial numbers; write e.g. 3,7"
        )
    return [int(part) for part in parts]


def export_command(args: argparse.Namespace) -> int:
    from nas.cli._common import load_named_study
    from nas.results import export_trials, select_trials
    from nas.study import is_feasible, is_verifiable, parse_root, resolve_storage

    numbers = None if args.trials is None else parse_trial_numbers(args.trials)
    if os.path.lexists(args.out) and not args.force:
        raise NasError(
            f"--out {args.out} exists; choose a new folder, or pass --force to replace it"
        )
    convert = _onnx_convert() if args.onnx else None
    study = load_named_study(args)
    url = resolve_storage(args.storage)  # the URL load_named_study opened
    trials = select_trials(study, numbers)
    unverified = [str(t.number) for t in trials if not is_verifiable(t)]
    if unverified:
        print(
            f"nas: warning: trial(s) {', '.join(unverified)} were stored by an older nas "
            "without sha256 digests: their checkpoints cannot be verified (sizes are checked "
            "where recorded)",
            file=sys.stderr,
        )
    infeasible = {t.number: _missed(t) for t in trials if not is_feasible(t)}
    if infeasible:
        shown = "; ".join(f"trial {n}: {why}" for n, why in infeasible.items())
        print(
            f"nas: warning: exporting infeasible trial(s), which miss the study's thresholds "
            f"and are not on its Pareto front ({shown}); their model cards say so",
            file=sys.stderr,
        )
    root = parse_root(args.artifact_root) if args.artifact_root else None  # None: as recorded
    replacing = os.path.lexists(args.out)  # --force: export_trials checks it is an export
    if replacing:
        print(f"replacing the previous nas export in {args.out} once the new one is complete")
    rows = export_trials(study, trials, args.out, root, url, force=args.force, convert=convert)
    folders = ", ".join(str(row["folder"]) for row in rows)
    onnx = f" (each with {ONNX_NAME})" if convert else ""
    print(
        f"exported {len(rows)} trial(s) of study {study.study_name} to {args.out}: {folders}{onnx}"
    )
    return 0


def _onnx_convert() -> Any:
    """``--onnx``: the conversion export_trials runs in each trial folder; the onnx extra is
    checked first, so a missing package is one line before anything is read or written."""
    from nas.students import check_onnx_available, export_onnx

    check_onnx_available()
    return lambda folder: export_onnx(folder, where=f"--onnx: {folder.name}").record()


def _missed(trial: Any) -> str:
    """The constraints a trial misses, as ``name by amount``."""
    from nas.study import named_constraints

    missed = {k: v for k, v in named_constraints(trial).items() if v > 0}
    return ", ".join(f"{k} by {v:.4g}" for k, v in missed.items()) or "a constraint"
