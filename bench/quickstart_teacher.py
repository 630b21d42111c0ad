"""The quickstart teacher's spread over seeds: its selection score after every epoch.

    python bench/quickstart_teacher.py [--seeds 0 1 2] [--set epochs=10 ...]

Trains the teacher of ``studies/quickstart.yaml`` once per seed with ``keep_best`` on (which
scores the selection split after every epoch; the kept weights do not change what is printed)
and prints, per seed, the last and the best epoch's EM and the kept teacher's test EM.
``--set KEY=VALUE`` overrides a ``teacher.train`` field (``epochs``, ``learning_rate``, ...) or
``n_train`` (the synthetic train examples).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _common as common
from _common import REPO, set_threads

from nas.config import DataConfig, StudyConfig, TeacherTrainConfig, load_study
from nas.trial.data import encoded, load_splits
from nas.trial.loop import predict, resolve_device
from nas.trial.teacher import load_teacher, load_tokenizer, train_teacher


def held_out_exact(config: StudyConfig, path: str, loaded: tuple) -> float:
    """The saved teacher's EM on the test split (which nothing here selects on)."""
    task, splits, data = loaded
    tokenizer = load_tokenizer(path, "teacher")
    features = encoded(task, splits.test, tokenizer, data, Path(config.cache_dir))
    model = load_teacher(path, task.kind, task.num_labels(splits))
    device = resolve_device(config.training.device)
    logits = predict(model, features, task.kind, tokenizer.pad_token_id or 0, 128, device)
    return float(task.evaluate(splits.test, features, logits, data)["exact"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    set_threads(args.threads)
    base = load_study(str(REPO / "studies" / "quickstart.yaml"))
    spec = dataclasses.replace(base.teacher.train, keep_best=True)
    data = base.data
    for item in args.set:
        key, value = item.split("=", 1)
        if key == "n_train":
            synthetic = dataclasses.replace(data.synthetic, n_train=int(value))
            data = dataclasses.replace(data, synthetic=synthetic)
        else:
            spec = dataclasses.replace(spec, **{key: type(getattr(spec, key))(json.loads(value))})
    with common.recorded("quickstart_teacher", quick=False) as targets:
        settings = [f"seeds: {args.seeds}; torch threads: {args.threads}; --set {args.set}"]
        common.header("bench/quickstart_teacher.py", False, settings)
        rows = measure(base, spec, data, args.seeds)
        spread = max(r[1] for r in rows) - min(r[1] for r in rows)
        # robust: every seed's last-epoch selection EM within 10 EM of the others (the
        # quickstart's feasibility margin is 10 EM above the no-answer score)
        targets.append(
            common.target(
                "seed_spread_within_10_em",
                "last-epoch selection EM of every seed within 10 EM",
                f"{spread:.1f} EM",
                spread <= 10.0,
            )
        )
        common.footer()
    return 0


def measure(
    base: StudyConfig, spec: TeacherTrainConfig, data: DataConfig, seeds: list[int]
) -> list[tuple]:
    """Train one teacher per seed; print and return (seed, last, best, epoch, test, seconds)."""
    rows = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            teacher = dataclasses.replace(base.teacher, train=dataclasses.replace(spec, seed=seed))
            config = dataclasses.replace(base, teacher=teacher, data=data, cache_dir=tmp)
            loaded = load_splits(config)
            start = time.perf_counter()
            train_teacher(config, Path(tmp) / "teacher", lambda m: print(m, flush=True), loaded)
            seconds = time.perf_counter() - start
            record = json.loads((Path(tmp) / "teacher" / "teacher.json").read_text())
            test = held_out_exact(config, str(Path(tmp) / "teacher"), loaded)
        scores = record["best_epoch"]["scores"]
        rows.append((seed, scores[-1], max(scores), record["best_epoch"]["epoch"], test, seconds))
        print(
            f"seed {seed}: epochs {' '.join(f'{s:.1f}' for s in scores)}; "
            f"last {scores[-1]:.1f}, best {max(scores):.1f} (epoch {rows[-1][3]}), "
            f"kept teacher's test EM {test:.1f}, {seconds:.0f} s",
            flush=True,
        )
    for name, col in (("last", 1), ("best", 2), ("test (kept)", 4)):
        values = [r[col] for r in rows]
        print(
            f"{name}: mean {statistics.mean(values):.1f}, range {min(values):.1f}-"
            f"{max(values):.1f}"
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
