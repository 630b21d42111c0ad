"""``nas student``: what a student of given params would be, before training it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas.cli._common import command, parse_params, progress
from nas.errors import NasError

BATCH_SIZE = 32  # the estimate's batch without --batch-size or a batch_size in --params


def register(commands: Any) -> None:
    student = command(
        commands,
        "student",
        help="show (and with --out, write) the sliced student: parts, parameters, memory",
        description="Build the student that --params describe from --source and print the shape "
        "and parameter count of each part, the total, and the estimated memory of one AdamW "
        "training step. With --data, hidden channels, heads and FFN neurons are ranked by the "
        "source's activations on that study's training split (as trials do); without it the "
        "ranking is data-free. --out writes the sliced, untrained student as a Hugging Face "
        "folder to inspect before a search.",
        examples=[
            "nas student --source distilbert-base-uncased --task squad_v2 "
            '--params \'{"n_layers": 3, "hidden_size": 384}\'',
            "nas student --source .nas/cache/teachers/quickstart --task qa "
            "--params @params.json --data studies/quickstart.yaml --out sliced/ --json",
        ],
    )
    student.add_argument(
        "--source",
        required=True,
        metavar="DIR",
        help="DistilBERT or BERT checkpoint: folder or hub name",
    )
    student.add_argument(
        "--task",
        required=True,
        metavar="TASK",
        help="a task name (squad_v2, sst2, ...) or just qa / classification: picks the head",
    )
    student.add_argument(
        "--num-labels", type=int, default=2, metavar="N", help="classifier labels"
    )
    student.add_argument(
        "--params",
        required=True,
        metavar="JSON",
        help='JSON: {"n_layers": 3, "n_heads": 12, "hidden_size": 768, ...}, or @FILE',
    )
    student.add_argument(
        "--data",
        type=Path,
        metavar="STUDY.yaml",
        help="rank by the source's activations on this study's training split (its calibration "
        "settings and cache_dir); default: data-free ranking (LayerNorm gains)",
    )
    student.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the sliced, untrained student here (config, model.safetensors, tokenizer, "
        "nas.json); the folder must not exist",
    )
    student.add_argument(
        "--batch-size", type=int, metavar="N", help=f"default: params' batch_size or {BATCH_SIZE}"
    )
    student.add_argument(
        "--seq-len", type=int, default=384, metavar="N", help="tokens per feature (384)"
    )
    student.add_argument("--bf16", action="store_true", help="estimate with bf16 autocast")
    student.add_argument("--json", action="store_true", help="machine-readable output")
    student.set_defaults(run=student_command)


def _calibration(study: Path, source: Any, source_name: str) -> Any:
    """Activation statistics of ``source`` on calibration features of ``study``'s train split."""
    from nas.config import load_study
    from nas.students import calibration_stats
    from nas.trial import encoded, load_splits, load_tokenizer, resolve_device

    config = load_study(study)
    task, splits, data = load_splits(config)
    tokenizer = load_tokenizer(source_name, "student source")
    cache = Path(config.cache_dir)
    features = encoded(task, splits.train, tokenizer, data, cache)
    return calibration_stats(
        source,
        features,
        config.calibration,
        cache,
        device=resolve_device(config.training.device),
        batch_size=config.training.eval_batch_size,
        where=str(study),
        progress=progress,
    )


def _write(out: Path, model: Any, source_name: str, record: dict[str, Any]) -> None:
    """The student as a Hugging Face folder, the source's tokenizer when it has one."""
    from transformers import AutoTokenizer

    from nas.cache import write_folder_atomically

    try:
        tokenizer = AutoTokenizer.from_pretrained(source_name)
    except (OSError, ValueError, KeyError):
        tokenizer = None
        progress(f"{source_name} has no readable tokenizer; writing the student without one")

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        (tmp / "nas.json").write_text(json.dumps(record, indent=2))

    write_folder_atomically(out, write)


def _batch_size(args: argparse.Namespace, params: dict[str, Any]) -> int:
    """The estimate's batch: --batch-size, else the batch_size of --params (optional here:
    only the shape is needed), else :data:`BATCH_SIZE`, as --help says."""
    if args.batch_size:
        return int(args.batch_size)
    if "batch_size" in params:
        return int(params["batch_size"])
    return BATCH_SIZE


def student_command(args: argparse.Namespace) -> int:
    import nas
    from nas.params import StudentShape
    from nas.search_space import check_params
    from nas.students import (
        build_student,
        count_parameters,
        describe_student,
        estimate_training_memory,
        load_source,
        ranking_description,
        student_report,
    )
    from nas.tasks import get_task

    if args.out is not None and args.out.exists():
        raise NasError(f"--out {args.out} exists; pass a folder that does not exist yet")
    params = parse_params(args.params)
    check_params(params)
    shape = StudentShape.from_params(params)
    kind = args.task if args.task in ("qa", "classification") else get_task(args.task).kind
    source = load_source(args.source)
    calibration = None if args.data is None else _calibration(args.data, source, args.source)
    ranking = ranking_description(calibration)
    progress(ranking)
    model = build_student(shape, source, kind, args.num_labels, calibration=calibration)
    if args.out is not None:
        record = {
            "nas_version": nas.__version__,
            "student_source": args.source,
            "task": args.task,
            "params": params,
            "ranking": ranking,
            "calibration_data": None if args.data is None else str(args.data),
            "trained": False,
        }
        _write(args.out, model, args.source, record)
        progress(f"wrote the sliced, untrained student to {args.out}")
    batch = _batch_size(args, params)
    memory = estimate_training_memory(
        shape,
        source.vocab_size,
        source.max_positions,
        kind,
        args.num_labels,
        batch,
        args.seq_len,
        amp=args.bf16,
    )
    if args.json:
        parts = [
            {"name": p.name, "shape": list(p.shape), "params": p.params}
            for p in describe_student(model)
        ]
        report = {
            "params": count_parameters(model),
            "shape": shape.__dict__,
            "parts": parts,
            "batch_size": batch,
            "seq_len": args.seq_len,
            "memory_bytes": memory.as_dict(),
            "ranking": ranking,
            "out": None if args.out is None else str(args.out),
        }
        print(json.dumps(report, indent=2))
        return 0
    print(f"student of {args.source} for {kind}: {shape}")
    print(f"slicing: {ranking}")
    print(student_report(model, memory))
    print(f"(batch {batch} x {args.seq_len} tokens{', bf16' if args.bf16 else ''})")
    return 0
