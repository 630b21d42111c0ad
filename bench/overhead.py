"""What the search machinery costs: per-trial overhead of ``nas study run`` and the sampler's
ask + tell time as a study grows.

1. **Per-trial overhead.** ``nas study run`` (the real CLI: local Ray, one worker, an Optuna
   study in SQL, checkpoints uploaded as artifacts) runs a study of near-trivial trials: a tiny
   student, one optimizer step, sixteen evaluation questions. A plain loop then runs the very
   same trials (same params, ``nas.trial.run.run_trial`` with the checkpoint saved) without Ray,
   Optuna or a database. The difference per trial is what the machinery adds.
2. **Sampler cost.** A study on ``search_spaces/distilbert_base.yaml`` is filled with 100, then
   1,000 finished trials (random params, synthetic values, the user attributes a real trial
   carries, NSGA-II's generation tag); then TPE, NSGA-II and GP, as
   ``nas.study.lifecycle.make_sampler`` configures them, each ask (and sample every parameter
   through ``nas.search_space``) and tell (``nas.study.lifecycle.tell_complete``) a few trials on
   SQLite and on PostgreSQL.

    python bench/overhead.py            # about 10 minutes on 2 CPU cores
    python bench/overhead.py --quick    # small counts
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common as common
import numpy as np
import optuna
from _common import log

from nas.config import SamplerConfig, StudyConfig, load_study
from nas.params import StudentShape
from nas.search_space import SearchSpace, load_search_space
from nas.students.cost import parameter_count
from nas.study.lifecycle import make_sampler, open_study, tell_complete
from nas.study.storage import open_storage
from nas.trial.run import prepare, run_trial

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SAMPLERS = ("tpe", "nsga2", "gp")
TRIAL_LINE = re.compile(r"^\[nas\] \[\d+/\d+\] trial \d+")
NSGA2_GENERATION = "NSGAIISampler:generation"  # the system attribute NSGA-II tags trials with
NSGA2_POPULATION = 50  # NSGAIISampler's default population_size


# ----------------------------------------------------------------------------- 1. per trial


def tiny_study(folder: Path, storage: str, name: str, n_trials: int) -> Path:
    """A synthetic_qa study whose trials do almost nothing: the machinery is what is timed."""
    return common.write_study(
        folder / f"{name}.yaml",
        {
            "name": name,
            "task": "synthetic_qa",
            "data": {
                "max_seq_length": 64,
                "doc_stride": 32,
                "max_query_length": 16,
                "synthetic": {"n_train": 64, "n_eval": 16, "n_test": 16, "seed": 0},
            },
            "teacher": {
                "path": str(folder / "cache" / "teachers" / "tiny"),
                "train": {"arch": common.TINY_ARCH, "epochs": 1, "learning_rate": 1e-3},
            },
            "student_source": str(folder / "cache" / "teachers" / "tiny"),
            "search_space": str(common.REPO / "search_spaces" / "quickstart.yaml"),
            "training": {"max_steps": 1, "device": "cpu", "eval_batch_size": 64},
            "cache_dir": str(folder / "cache"),
            "artifact_root": str(folder / "artifacts"),
            "storage": storage,
            "n_trials": n_trials,
            "sampler": {"name": "tpe", "seed": 0},
            "resources": {"cpu": 1},
        },
    )


def timed_study_run(study_file: Path, n_trials: int) -> tuple[float, list[float]]:
    """Run ``nas study run`` with one worker; total seconds and when each trial finished."""
    command = [sys.executable, "-m", "nas", "study", "run", str(study_file), "--workers", "1"]
    command += ["--n-trials", str(n_trials)]
    start = time.perf_counter()
    finished: list[float] = []
    tail: list[str] = []
    with subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=common.REPO
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail = (tail + [line.rstrip()])[-20:]
            if TRIAL_LINE.match(line):
                finished.append(time.perf_counter())
    if proc.returncode != 0 or len(finished) != n_trials:
        details = "\n".join(tail)
        raise common.BenchError(
            f"nas study run {study_file} exited {proc.returncode} after {len(finished)} of "
            f"{n_trials} trials:\n{details}"
        )
    return time.perf_counter() - start, [t - start for t in finished]


def plain_loop(config: StudyConfig, params: list[dict[str, Any]], out: Path) -> list[float]:
    """The same trials in a for loop: no Ray, no Optuna, no database. Seconds per trial."""
    prepared = prepare(config)  # once, like every worker process does
    times = []
    for i, p in enumerate(params):
        start = time.perf_counter()
        run_trial(prepared, prepared.space.trial_params(p), out / f"trial-{i}")
        times.append(time.perf_counter() - start)
    return times


def per_trial_overhead(folder: Path, storages: dict[str, str], n_trials: int) -> list[list[Any]]:
    rows = []
    for label, url in storages.items():
        name = f"overhead-{uuid.uuid4().hex[:8]}"
        study_file = tiny_study(folder, url, name, n_trials)
        try:
            log(f"per-trial: nas study run, {n_trials} trials on {label}")
            total, finished = timed_study_run(study_file, n_trials)
            steady = (finished[-1] - finished[0]) / (n_trials - 1)
            study = optuna.load_study(study_name=name, storage=open_storage(url))
            params = [t.params for t in sorted(study.get_trials(), key=lambda t: t.number)]
            log(f"per-trial: the same {n_trials} trials in a plain loop")
            loop = plain_loop(load_study(study_file), params, folder / "loop" / name)
        finally:
            _delete_study(url, name)
        loop_mean = statistics.fmean(loop)
        rows.append(
            [
                label,
                n_trials,
                f"{total:.1f}",
                f"{finished[0]:.1f}",
                f"{steady * 1000:.0f}",
                f"{loop_mean * 1000:.0f}",
                f"{(steady - loop_mean) * 1000:.0f}",
            ]
        )
        print(f"per-trial overhead on {label}: {steady - loop_mean:.3f} s", flush=True)
    return rows


def _delete_study(url: str, name: str) -> None:
    with contextlib.suppress(Exception):  # never created, or already gone
        optuna.delete_study(study_name=name, storage=open_storage(url))


# ----------------------------------------------------------------------------- 2. samplers


def synthetic_result(params: dict[str, Any], rng: np.random.Generator) -> tuple[list[float], dict]:
    """Objective values and user attributes shaped like a real SST-2 trial's."""
    shape = StudentShape.from_params(params)
    size = parameter_count(shape, 30522, 512, "classification", 2)
    accuracy = min(0.95, 0.80 + 0.02 * shape.n_layers + 0.05 * shape.hidden_size / 768)
    accuracy += float(rng.normal(0.0, 0.01))
    attrs: dict[str, Any] = {
        "metric:accuracy": accuracy,
        "metric:macro_f1": accuracy - 0.01,
        "metric:mcc": 2 * accuracy - 1,
        "params": size,
        "train_time_s": float(rng.uniform(60, 600)),
        "samples_per_s": float(rng.uniform(100, 900)),
        "peak_memory_mb": float(rng.uniform(800, 9000)),
        "memory_kind": "cuda_max_allocated",
        "steps": int(rng.integers(2000, 20000)),
        "device": "cuda:0",
        "latency_ms": None,
        "node": "0123456789abcdef" * 3,
        "checkpoint_files": {
            f: uuid.uuid4().hex
            for f in ("config.json", "model.safetensors", "nas.json", "tokenizer.json")
        },
    }
    return [accuracy, float(size)], attrs


def fill(study: optuna.Study, space: SearchSpace, target: int, rng: np.random.Generator) -> None:
    """Add finished trials with random params until the study holds ``target`` of them."""
    have = len(study.get_trials(deepcopy=False))
    trials = []
    for number in range(have, target):
        params = _random_params(space, rng)
        values, attrs = synthetic_result(params, rng)
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions=space.distributions,
                values=values,
                user_attrs={**attrs, "driver": "bench:0"},
                system_attrs={NSGA2_GENERATION: number // NSGA2_POPULATION},
            )
        )
    study.add_trials(trials)


def _random_params(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, dist in space.distributions.items():
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            params[name] = dist.choices[int(rng.integers(len(dist.choices)))]
        elif isinstance(dist, optuna.distributions.IntDistribution):
            steps = (dist.high - dist.low) // dist.step
            params[name] = dist.low + dist.step * int(rng.integers(steps + 1))
        elif dist.log:
            params[name] = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
        else:
            params[name] = float(rng.uniform(dist.low, dist.high))
    return params


def time_asks(
    config: StudyConfig,
    url: str,
    name: str,
    space: SearchSpace,
    count: int,
    rng: np.random.Generator,
) -> tuple[list[float], list[float]]:
    """Ask + sample, then tell, ``count`` times with the config's sampler; seconds each."""
    storage = open_storage(url)
    study = optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(config))
    asks, tells = [], []
    for _ in range(count):
        start = time.perf_counter()
        trial = study.ask()
        params = space.suggest(trial)
        asked = time.perf_counter()
        values, attrs = synthetic_result(params, rng)
        tell_complete(study, trial, values, {}, attrs)
        asks.append(asked - start)
        tells.append(time.perf_counter() - asked)
    return asks, tells


def sampler_costs(
    folder: Path, storages: dict[str, str], sizes: tuple[int, ...], counts: dict[str, int]
) -> list[list[Any]]:
    space_file = common.REPO / "search_spaces" / "distilbert_base.yaml"
    space = load_search_space(space_file)
    rows = []
    for label, url in storages.items():
        name = f"sampler-{uuid.uuid4().hex[:8]}"
        config = load_study(
            common.write_study(
                folder / f"{name}.yaml",
                {
                    "name": name,
                    "task": "sst2",
                    "teacher": {"path": "unused"},
                    "search_space": str(space_file),
                },
            )
        )
        rng = np.random.default_rng(0)
        try:
            study = open_study(config, open_storage(url), ["accuracy", "params"], url)
            for size in sizes:
                start = time.perf_counter()
                fill(study, space, size, rng)
                took = time.perf_counter() - start
                log(f"samplers: {label} filled to {size} trials in {took:.1f} s")
                for sampler in SAMPLERS:
                    sampled = dataclasses.replace(config, sampler=SamplerConfig(sampler, 0))
                    asks, tells = time_asks(sampled, url, name, space, counts[sampler], rng)
                    log(f"samplers: {label} {size} {sampler}: ask {statistics.median(asks):.3f} s")
                    rows.append(_sampler_row(label, size, sampler, asks, tells))
        finally:
            _delete_study(url, name)
    return rows


def _sampler_row(
    label: str, size: int, sampler: str, asks: list[float], tells: list[float]
) -> list[Any]:
    ask_ms = [a * 1000 for a in asks]
    tell_ms = [t * 1000 for t in tells]
    return [
        label,
        size,
        sampler,
        len(asks),
        f"{statistics.median(ask_ms):.1f}",
        f"{max(ask_ms):.1f}",
        f"{statistics.median(tell_ms):.1f}",
        f"{statistics.median(a + t for a, t in zip(ask_ms, tell_ms, strict=True)):.1f}",
    ]


# ----------------------------------------------------------------------------- main


def reachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        optuna.storages.RDBStorage(url)
    except Exception as exc:  # noqa: BLE001 - any failure means "not there"
        return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else repr(exc)
    return None


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """No experimental-feature warnings or per-trial log lines between the tables."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def overhead_targets(
    per_trial: list[list[Any]], samplers: list[list[Any]], largest: int
) -> list[dict[str, Any]]:
    """The targets BENCHMARKS.md states: under 0.5 s of overhead per trial on each storage, and
    a TPE or NSGA-II ask under 100 ms (median) at the largest study size."""
    targets = []
    for label, *_, overhead_ms in per_trial:
        seconds = float(overhead_ms) / 1000
        goal = "nas study run adds < 0.5 s per trial over a plain loop"
        targets.append(
            common.target(f"per_trial_overhead_{label}", goal, f"{seconds:.3f} s", seconds < 0.5)
        )
    for label, size, sampler, _, median_ms, *_ in samplers:
        if size == largest and sampler in ("tpe", "nsga2"):
            goal = f"median ask < 100 ms at {largest} finished trials"
            met = float(median_ms) < 100
            name = f"ask_{sampler}_{label}"
            targets.append(common.target(name, goal, f"{median_ms} ms", met))
    return targets


def main() -> int:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    common.set_threads(args.threads)
    n_trials = 3 if args.quick else 40
    sizes = (5, 10) if args.quick else (100, 1000)
    counts = {"tpe": 1, "nsga2": 1, "gp": 1} if args.quick else {"tpe": 10, "nsga2": 10, "gp": 3}
    with tempfile.TemporaryDirectory() as tmp:
        folder = common.work_dir(args, "overhead", Path(tmp) if args.quick else None)
        storages = {"sqlite": f"sqlite:///{folder / 'bench.db'}"}
        why = reachable(POSTGRES)
        if why is None:
            storages["postgresql"] = POSTGRES
        with common.recorded("overhead", args.quick) as targets:
            common.header(
                "bench/overhead.py",
                args.quick,
                [
                    f"per-trial: {n_trials} trials of a synthetic_qa study (tiny students, 1 "
                    "optimizer step, 16 eval questions), --workers 1, sampler TPE",
                    f"samplers: {counts} asks per sampler at each of {list(sizes)} finished "
                    "trials; space search_spaces/distilbert_base.yaml (11 params), 2 objectives",
                    f"storages: {', '.join(f'{k} ({v})' for k, v in storages.items())}"
                    + ("" if why is None else f"; postgresql NOT reachable ({why}), skipped"),
                ],
            )
            with quiet_optuna():
                # --quick: one storage for the Ray part (a Ray start costs seconds)
                trial_storages = {"sqlite": storages["sqlite"]} if args.quick else storages
                per_trial = per_trial_overhead(folder, trial_storages, n_trials)
                print(
                    common.table(
                        per_trial,
                        [
                            "storage",
                            "trials",
                            "total s",
                            "first trial at s",
                            "ms/trial nas",
                            "ms/trial loop",
                            "overhead ms",
                        ],
                    )
                )
                print(flush=True)
                rows = sampler_costs(folder, storages, sizes, counts)
            print(
                common.table(
                    rows,
                    [
                        "storage",
                        "trials",
                        "sampler",
                        "asks",
                        "ask ms (median)",
                        "ask ms (max)",
                        "tell ms",
                        "ask+tell ms",
                    ],
                )
            )
            targets.extend(overhead_targets(per_trial, rows, max(sizes)))
            common.footer()
    return 0


if __name__ == "__main__":
    common.run(main)
