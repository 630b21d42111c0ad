"""``nas student``: what a student of given params would be, before training it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nas.cli._common import parse_params


def register(commands: Any) -> None:
    student = commands.add_parser(
        "student",
        help="show a student's parameter count, parts and estimated training memory",
        description="Build the student that --params describe from --source (sliced by weight "
        "importance) and print the shape and parameter count of each part, the total, and the "
        "estimated memory of one AdamW training step.",
    )
    student.add_argument(
        "--source", required=True, help="DistilBERT or BERT checkpoint: folder or hub name"
    )
    student.add_argument(
        "--task",
        required=True,
        help="a task name (squad_v2, sst2, ...) or just qa / classification: picks the head",
    )
    student.add_argument("--num-labels", type=int, default=2, help="classifier labels")
    student.add_argument(
        "--params",
        required=True,
        help='JSON: {"n_layers": 3, "n_heads": 12, "hidden_size": 768, ...}',
    )
    student.add_argument("--batch-size", type=int, help="default: params' batch_size or 32")
    student.add_argument("--seq-len", type=int, default=384, help="tokens per feature (384)")
    student.add_argument("--bf16", action="store_true", help="estimate with bf16 autocast")
    student.add_argument("--json", action="store_true", help="machine-readable output")
    student.set_defaults(run=student_command)


def student_command(args: argparse.Namespace) -> int:
    from nas.cost import describe_student, estimate_training_memory, student_report
    from nas.search_space import check_params
    from nas.students import StudentShape, build_student, count_parameters, load_source
    from nas.tasks import get_task

    params = parse_params(args.params)
    check_params(params)
    shape = StudentShape.from_params(params)
    kind = args.task if args.task in ("qa", "classification") else get_task(args.task).kind
    source = load_source(args.source)
    model = build_student(shape, source, kind, args.num_labels)
    batch = args.batch_size or int(params.get("batch_size", 32))
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
        print(
            json.dumps(
                {
                    "params": count_parameters(model),
                    "shape": shape.__dict__,
                    "parts": parts,
                    "batch_size": batch,
                    "seq_len": args.seq_len,
                    "memory_bytes": memory.as_dict(),
                },
                indent=2,
            )
        )
        return 0
    print(f"student of {args.source} for {kind}: {shape}")
    print(student_report(model, memory))
    print(f"(batch {batch} x {args.seq_len} tokens{', bf16' if args.bf16 else ''})")
    return 0
