"""The reference experiment's table from a real nas study: the baseline against the front's picks.

A 24-trial ``nas study run`` on SST-2 on CPU: the teacher fine-tuned by nas from the pretrained
all-MiniLM-L6-v2 (``teacher.train.init``), students sliced from the same checkpoint
(``bench/minilm_space.yaml``), the baseline (MiniLM's own shape) enqueued first. Then
``nas study front --json`` (``nas/results/picks.py``'s picks) fills the table SigOpt's 2020
experiment reported: keep the baseline's size and maximize the metric; the knee; the smallest
student that keeps the baseline's metric.

    python bench/frontier.py            # about 20 minutes on 2 CPU cores (subsets below)
    python bench/frontier.py --quick    # a tiny random teacher, 3 trials
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import _common as common
from _common import nas

# The teacher's fine-tuning from MiniLM: long enough to beat the students it teaches.
TEACHER = {"epochs": 3, "learning_rate": 2e-4}
BASELINE = {
    "n_layers": 6,
    "n_heads": 12,
    "hidden_size": 384,
    "ffn_dim": 1536,
    "temperature": 2.0,
    "alpha": 0.5,
    "learning_rate": 2e-4,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "batch_size": 32,
    "epochs": 2,
}
QUICK_BASELINE = {
    **BASELINE,
    "n_layers": 2,
    "n_heads": 4,
    "hidden_size": 64,
    "ffn_dim": 128,
    "learning_rate": 1e-3,
    "epochs": 1,
}
PICKS = {  # nas.results.picks.Picks field -> the reference experiment's column
    "same_size": "keep size, max metric",
    "balanced": "knee (balanced)",
    "smallest": "min size, keep metric",
}


def write_config(
    folder: Path, name: str, checkpoint: Path | None, n_train: int, n_trials: int
) -> Path:
    recipe = (
        "tiny" if checkpoint is None else f"e{TEACHER['epochs']}-lr{TEACHER['learning_rate']:g}"
    )
    teacher_dir = folder / "cache" / "teachers" / f"sst2-{n_train}-{recipe}"
    if checkpoint is None:  # quick: a tiny random BERT with a vocabulary from the data
        train: dict[str, Any] = {"arch": common.TINY_ARCH, "vocab_from_data": 2000}
        train.update(epochs=2, learning_rate=1e-3)
        source, baseline = str(teacher_dir), QUICK_BASELINE
        space = "search_spaces/quickstart.yaml"
    else:
        train = {"init": str(checkpoint), **TEACHER}
        source, baseline, space = str(checkpoint), BASELINE, "bench/minilm_space.yaml"
    data: dict[str, Any] = {
        "train_file": str(common.data_file("sst2", "train.tsv")),
        # trials are scored on 876 training sentences held out (seeded) for selection; the
        # front is reported on the 872 dev sentences, which no trial sees
        "test_file": str(common.data_file("sst2", "dev.tsv")),
        "eval_fraction": 0.013,
        "max_train_samples": n_train,
        "max_seq_length": 66,
    }
    if checkpoint is None:
        data["max_eval_samples"] = 100
        data["max_test_samples"] = 100
    return common.write_study(
        folder / f"{name}.yaml",
        {
            "name": name,
            "task": "sst2",
            "data": data,
            "teacher": {
                "path": str(teacher_dir),
                "train": {**train, "batch_size": 32, "warmup_ratio": 0.1, "seed": 0},
            },
            "student_source": source,
            "search_space": str(common.REPO / space),
            "objectives": [
                {"name": "accuracy", "direction": "maximize"},
                {"name": "params", "direction": "minimize"},
            ],
            "baseline": baseline,
            "n_trials": n_trials,
            "sampler": {"name": "tpe", "seed": 0},
            "training": {"device": "cpu", "eval_batch_size": 128, "log_every": 100},
            "resources": {"cpu": 1},
            "cache_dir": str(folder / "cache"),
            "artifact_root": str(folder / "artifacts"),
        },
    )


def column(point: dict[str, Any] | None, baseline: dict[str, Any]) -> list[str]:
    """One column of the table: trial, size, metric and the differences from the baseline."""
    if point is None:
        return ["none", "", "", "", ""]
    d_metric = 100 * (point["metric"] - baseline["metric"])
    d_size = 100 * (point["params"] - baseline["params"]) / baseline["params"]
    return [
        str(point["trial"]),
        f"{point['params'] / 1e6:.2f}M",
        f"{point['metric']:.4f}",
        f"{d_metric:+.2f}",
        f"{d_size:+.1f}%",
    ]


def report(front: dict[str, Any], targets: list[dict[str, Any]]) -> None:
    baseline = front["baseline"]
    if baseline is None:
        raise common.BenchError("the baseline trial did not complete; see the study's failures")
    picks = front["picks"]
    columns = [column(baseline, baseline), *(column(picks[k], baseline) for k in PICKS)]
    labels = ["trial", "params", front["metric"], "d metric (points)", "d params"]
    rows = [[label, *(c[i] for c in columns)] for i, label in enumerate(labels)]
    rows[3][1] = rows[4][1] = ""  # the baseline against itself
    print(common.table(rows, ["", "baseline", *PICKS.values()]))
    print(f"front ({len(front['front'])} feasible trials), smallest first:")
    metric = front["metric"]
    for p in front["front"]:
        tag = " (baseline)" if p["baseline"] else ""
        test = (p.get("test") or {}).get(metric)
        print(
            f"  trial {p['trial']}{tag}: {p['params'] / 1e6:.2f}M params, {metric} "
            f"{p['metric']:.4f} selection, " + ("-" if test is None else f"{test:.4f}") + " test"
        )
    for key, label in PICKS.items():
        chosen = picks[key]
        print(f"frontier {key} ({label}): " + (f"trial {chosen['trial']}" if chosen else "none"))
    teacher = front.get("teacher") or {}
    if teacher:
        print(
            f"teacher: {metric} {teacher['selection'][metric]:.4f} selection, "
            f"{teacher['test'][metric]:.4f} test"
        )
    # the target is read on the test split: selection is not report
    base_test = (baseline.get("test") or {}).get(metric)
    small = [
        (p, (p.get("test") or {}).get(metric))
        for p in front["front"]
        if p["params"] <= 0.5 * baseline["params"]
    ]
    best = max((t for _, t in small if t is not None), default=None)
    gap = None if best is None or base_test is None else 100 * (best - base_test)
    targets.append(
        common.target(
            "half_size_within_2_points_test",
            "a front student at <= 50% of the baseline's parameters within 2 points of the "
            "baseline's test accuracy",
            "no such student" if gap is None else f"{gap:+.2f} points",
            gap is not None and gap >= -2.0,
        )
    )


def main() -> int:
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, help="trials (default 24; 3 with --quick)")
    args = parser.parse_args()
    common.set_threads(args.threads)
    checkpoint = None if args.quick else common.minilm_checkpoint("bench/frontier.py")
    n_trials = args.n_trials or (3 if args.quick else 24)
    n_train = 200 if args.quick else 1500
    with tempfile.TemporaryDirectory() as tmp:
        folder = common.work_dir(args, "frontier", Path(tmp) if args.quick else None)
        name = f"frontier-sst2-{uuid.uuid4().hex[:6]}"
        storage = f"sqlite:///{folder / 'frontier.db'}"
        study = write_config(folder, name, checkpoint, n_train, n_trials)
        with common.recorded("frontier", args.quick) as targets:
            run_bench(args, folder, name, storage, study, checkpoint, n_train, n_trials, targets)
    return 0


def run_bench(
    args: Any,
    folder: Path,
    name: str,
    storage: str,
    study: Path,
    checkpoint: Path | None,
    n_train: int,
    n_trials: int,
    targets: list[dict[str, Any]],
) -> None:
    common.header(
        "bench/frontier.py",
        args.quick,
        [
            f"study {name} in {storage}: {n_trials} trials, TPE, --workers 1 (resources.cpu 1)",
            f"data: {n_train} SST-2 train sentences (nas's seeded subset); trials scored on "
            + ("100" if args.quick else "876")
            + " held-out training sentences (selection); the front reported on "
            + ("100 dev sentences" if args.quick else "the 872 dev sentences")
            + " (test), which no trial sees",
            common.teacher_line(checkpoint),
        ],
    )
    start = time.perf_counter()
    nas("study", "run", str(study), "--storage", storage, "--workers", "1", echo=True)
    print(f"study run: {time.perf_counter() - start:.0f} s for {n_trials} trials")
    print(nas("study", "status", name, "--storage", storage).rstrip())
    print()
    report(json.loads(nas("study", "front", name, "--storage", storage, "--json")), targets)
    common.footer()


if __name__ == "__main__":
    common.run(main)
