"""Does MO-ASHA pruning reach the same front with less compute? The same study with and without
``pruning:``, side by side.

Two tasks: SST-2 (``../shared/data/sst2``) with the teacher fine-tuned by nas from the
pretrained all-MiniLM-L6-v2 and BiLSTM / CNN / bag-of-words students
(``bench/families_space.yaml``: trials of seconds, not minutes, on a CPU), and the quickstart
(``studies/quickstart.yaml`` as shipped: synthetic QA, its own teacher, sliced students, its
thresholds and baseline). For each task and each of 3 sampler seeds, two ``nas study run``s
through the real CLI, one worker, TPE with that seed: pruning off with N trials, and pruning on
(eta 3, rungs 1/9 and 1/3) with 2N trials. Compute is counted in training samples (a pruned
trial counts the samples up to its rung) and in trial seconds. The budget of a seed is what its
unpruned study spent; the pruned study's trials past it are not counted.

Printed: per seed and arm, the trials, the compute, the hypervolume on the selection split
(nas's ``hypervolume_history``) and of the final front's test scores; the hypervolume against
compute (fractions of the budget, mean over seeds); and the compute each arm needs to reach the
unpruned study's final selection hypervolume. Target: pruning needs at most half of what the
unpruned study needs, averaged over the seeds (the mean of the per-seed ratios), on each task.

    python bench/pruning.py            # about 40 minutes on 2 CPU cores
    python bench/pruning.py --quick    # tiny teachers and data, 2 seeds, 3 / 6 trials
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import numpy as np
import yaml
from _common import log, nas

PRUNING = {"enabled": True, "eta": 3, "rungs": [1 / 9, 1 / 3]}
SPACE = common.REPO / "bench" / "families_space.yaml"
QUICKSTART = common.REPO / "studies" / "quickstart.yaml"
TEACHER = {"epochs": 3, "learning_rate": 2e-4}  # bench/families.py's recipe from MiniLM
N_SST2, QUICK_SST2 = 2000, 200  # SST-2 training examples (nas's seeded subset)
# Fixed hypervolume reference points, the same for both arms and every seed: chance accuracy
# and a size above every student of the space; the quickstart's threshold and twice its
# baseline (feasible trials only add volume, as in nas's report).
REFERENCE = {
    "sst2": {"accuracy": 0.5, "params": 2.0e6},
    "quickstart": {"exact": 50.0, "params": 1.0e6},
}
FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)  # of the budget, for the hypervolume-compute table


@dataclass(frozen=True)
class Point:
    """One trial of a study in trial order: what it cost and the front so far."""

    number: int
    state: str
    samples: float  # training samples, up to the rung for a pruned trial
    seconds: float  # the trial's wall time (start to end, rung evaluations included)
    hypervolume: float  # selection split, of the feasible COMPLETE trials up to this one


@dataclass(frozen=True)
class Arm:
    name: str  # "off" or "on"
    seed: int
    points: list[Point]
    test_hv: float  # the final front's test scores
    wall_s: float  # the whole `nas study run`
    counts: dict[str, int]

    def used(self, budget: float | None = None) -> list[Point]:
        """The trials within ``budget`` training samples (all without one)."""
        out, total = [], 0.0
        for p in self.points:
            total += p.samples
            if budget is not None and total > budget * (1 + 1e-9):
                break
            out.append(p)
        return out

    def hv_at(self, samples: float) -> float:
        """The selection hypervolume once ``samples`` training samples are spent."""
        hv, total = 0.0, 0.0
        for p in self.points:
            total += p.samples
            if total > samples * (1 + 1e-9):
                break
            hv = p.hypervolume
        return hv

    def to_reach(self, hv: float, budget: float | None = None) -> tuple[float, float] | None:
        """(samples, seconds) spent when the selection hypervolume first reaches ``hv``."""
        samples = seconds = 0.0
        for p in self.used(budget):
            samples, seconds = samples + p.samples, seconds + p.seconds
            if p.hypervolume >= hv * (1 - 1e-9) and p.hypervolume > 0:
                return samples, seconds
        return None


# ----------------------------------------------------------------------------- study files


def sst2_study(folder: Path, checkpoint: Path | None, space: Path, quick: bool) -> dict[str, Any]:
    n_train = QUICK_SST2 if quick else N_SST2
    recipe = (
        "tiny" if checkpoint is None else f"e{TEACHER['epochs']}-lr{TEACHER['learning_rate']:g}"
    )
    teacher_dir = folder / "cache" / "teachers" / f"sst2-{n_train}-s64-{recipe}"
    if checkpoint is None:  # quick: a tiny random BERT with a vocabulary from the data
        train: dict[str, Any] = {"arch": common.TINY_ARCH, "vocab_from_data": 2000}
        train.update(epochs=2, learning_rate=1e-3)
        source = str(teacher_dir)
    else:
        train, source = {"init": str(checkpoint), **TEACHER}, str(checkpoint)
    data: dict[str, Any] = {
        "train_file": str(common.data_file("sst2", "train.tsv")),
        "test_file": str(common.data_file("sst2", "dev.tsv")),
        "eval_fraction": 0.013,  # 876 held-out training sentences
        "max_seq_length": 64,
        "max_train_samples": n_train,
    }
    if quick:
        data.update(max_eval_samples=100, max_test_samples=100)
    return {
        "task": "sst2",
        "data": data,
        "teacher": {
            "path": str(teacher_dir),
            "train": {**train, "batch_size": 32, "warmup_ratio": 0.1, "seed": 0},
        },
        "student_source": source,
        "search_space": str(space),
        "objectives": [
            {"name": "accuracy", "direction": "maximize"},
            {"name": "params", "direction": "minimize"},
        ],
        "reference_point": REFERENCE["sst2"],
        "training": {"device": "cpu", "eval_batch_size": 128, "log_every": 200},
        "resources": {"cpu": 1},
    }


def quickstart_study(quick: bool) -> dict[str, Any]:
    """studies/quickstart.yaml as shipped (paths made absolute); --quick: tiny data."""
    study = yaml.safe_load(QUICKSTART.read_text())
    study["search_space"] = str((QUICKSTART.parent / study["search_space"]).resolve())
    study["reference_point"] = REFERENCE["quickstart"]
    if quick:
        study["data"]["synthetic"].update(n_train=300, n_eval=100, n_test=100)
        study["teacher"]["train"]["epochs"] = 3
    return study


def write(folder: Path, base: dict[str, Any], task: str, arm: str, seed: int, n: int) -> Path:
    name = f"pruning-{task}-{arm}-s{seed}-{uuid.uuid4().hex[:6]}"
    pruning = dict(PRUNING) if arm == "on" else {**PRUNING, "enabled": False}
    study = {
        **base,
        "name": name,
        "n_trials": n,
        "sampler": {"name": "tpe", "seed": seed},
        "pruning": pruning,
        "cache_dir": str(folder / "cache"),
        "artifact_root": str(folder / "artifacts"),
    }
    return common.write_study(folder / f"{name}.yaml", study)


# ----------------------------------------------------------------------------- reading back


def epochs_of(params: dict[str, Any]) -> float:
    """The trial's epochs: a family student's own key (``bow.epochs``), else ``epochs``."""
    family = params.get("family")
    return float(params.get(f"{family}.epochs", params.get("epochs", 1)))


def read_arm(name: str, storage: str, arm: str, seed: int, ref: dict[str, float]) -> Arm:
    import optuna

    from nas.results import summarize
    from nas.results.summary import hypervolume_history
    from nas.study import SAMPLES_PER_S, TRAIN_TIME, state_counts, trial_rungs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=storage)
    summary = summarize(study)
    hv = dict(hypervolume_history(summary, ref))
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    # training samples of one epoch: a finished trial trained epochs x that many
    per_epoch = [
        t.user_attrs[SAMPLES_PER_S] * t.user_attrs[TRAIN_TIME] / epochs_of(t.params)
        for t in trials
        if t.state.name == "COMPLETE" and SAMPLES_PER_S in t.user_attrs
    ]
    if not per_epoch:
        raise common.BenchError(f"study {name}: no COMPLETE trial to count samples from")
    epoch = statistics.median(per_epoch)
    points, volume = [], 0.0
    for t in trials:
        if t.state.name == "COMPLETE":
            fraction = 1.0
            volume = hv.get(t.number, volume)
        elif t.state.name == "PRUNED":
            rungs = trial_rungs(t)
            fraction = float(rungs[max(rungs)]["epoch_fraction"]) if rungs else 0.0
        else:  # failed: its samples are not known; its seconds still count
            fraction = 0.0
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else 0.0
        )
        samples = fraction * epochs_of(t.params) * epoch
        points.append(Point(t.number, t.state.name, samples, seconds, volume))
    return Arm(arm, seed, points, test_hypervolume(summary, ref), 0.0, state_counts(study))


def test_hypervolume(summary: Any, ref: dict[str, float]) -> float:
    """Hypervolume of the final selection front, each point at its test score."""
    from optuna._hypervolume import compute_hypervolume  # what nas's report uses

    metric = summary.metric
    ref_min = np.array([-ref[metric], ref["params"] * 1e-6])
    points = [
        np.array([-summary.test[p.trial][metric], p.params * 1e-6])
        for p in summary.front
        if metric in summary.test.get(p.trial, {})
    ]
    kept = [v for v in points if (v < ref_min).all()]
    return float(compute_hypervolume(np.stack(kept), ref_min)) if kept else 0.0


# ----------------------------------------------------------------------------- report


def fmt_samples(n: float) -> str:
    return f"{n / 1e3:.1f}K" if n < 1e6 else f"{n / 1e6:.2f}M"


def report(task: str, arms: list[tuple[Arm, Arm]], targets: list[dict[str, Any]]) -> None:
    rows, ratios, seconds_ratios = [], [], []
    for off, on in arms:
        budget = sum(p.samples for p in off.points)
        final = off.points[-1].hypervolume if off.points else 0.0
        for arm in (off, on):
            used = arm.used(budget)
            reach = arm.to_reach(final, budget)
            pruned = sum(p.state == "PRUNED" for p in used)
            rows.append(
                [
                    f"seed {arm.seed} pruning {arm.name}",
                    f"{len(used)}/{len(arm.points)}",
                    str(pruned),
                    fmt_samples(sum(p.samples for p in used)),
                    f"{sum(p.seconds for p in used):.0f}",
                    f"{(used[-1].hypervolume if used else 0.0):.4f}",
                    f"{arm.test_hv:.4f}",
                    "not reached" if reach is None else fmt_samples(reach[0]),
                    "" if reach is None else f"{reach[1]:.0f}",
                    f"{arm.wall_s:.0f}",
                ]
            )
        need_off, need_on = off.to_reach(final), on.to_reach(final, budget)
        if need_off is not None:
            ratios.append(math.inf if need_on is None else need_on[0] / need_off[0])
            seconds_ratios.append(math.inf if need_on is None else need_on[1] / need_off[1])
    head = [
        "study",
        "trials used",
        "pruned",
        "samples",
        "trial s",
        "HV sel",
        "HV test",
        "to reach: samples",
        "s",
        "run s",
    ]
    print(
        f"{task}: each seed's budget is its unpruned study's training samples; 'trials used' "
        "are the trials within it (of those run); HV test: the final front's test scores "
        "(the whole run, not cut at the budget); 'to reach': the compute spent when the "
        "selection HV first reached the unpruned study's final one"
    )
    print(common.table(rows, head))
    print(f"\n{task}: selection hypervolume against compute (fractions of each seed's budget):")
    curve = []
    for label, index in (("pruning off", 0), ("pruning on", 1)):
        cells = []
        for f in FRACTIONS:
            values = [
                pair[index].hv_at(f * sum(p.samples for p in pair[0].points)) for pair in arms
            ]
            cells.append(f"{statistics.fmean(values):.4f}")
        curve.append([label, *cells])
    print(common.table(curve, ["mean over seeds", *(f"{f:.0%}" for f in FRACTIONS)]))
    finite = [r for r in ratios if math.isfinite(r)]
    mean = statistics.fmean(ratios) if ratios and len(finite) == len(ratios) else math.inf
    shown = ", ".join("not reached" if not math.isfinite(r) else f"{r:.2f}" for r in ratios)
    seconds = ", ".join(
        "not reached" if not math.isfinite(r) else f"{r:.2f}" for r in seconds_ratios
    )
    empty = len(arms) - len(ratios)  # seeds whose unpruned study found no volume at all
    print(
        f"{task}: compute pruning needs over what the unpruned study needs, to reach the "
        f"unpruned final selection HV: samples {shown or '-'}; seconds {seconds or '-'}"
        + (f"; {empty} seed(s) without a feasible front to reach" if empty else "")
        + "\n"
    )
    if not ratios:
        measured = f"no seed's unpruned study has a positive hypervolume ({empty} seeds)"
    elif math.isfinite(mean):
        measured = f"mean samples ratio {mean:.2f} (seeds: {shown}; seconds: {seconds})"
    else:
        measured = (
            f"not reached in {len(ratios) - len(finite)} of {len(ratios)} seeds "
            f"(seeds: {shown}; seconds: {seconds})"
        )
    targets.append(
        common.target(
            f"{task}_pruning_half_compute",
            "pruning reaches the unpruned study's final selection hypervolume with at most "
            "half its training samples, averaged over the seeds",
            measured,
            math.isfinite(mean) and mean <= 0.5,
        )
    )


# ----------------------------------------------------------------------------- main


def run_task(
    task: str, base: dict[str, Any], folder: Path, seeds: list[int], n: int
) -> list[tuple[Arm, Arm]]:
    storage = f"sqlite:///{folder / 'pruning.db'}"
    arms = []
    for seed in seeds:
        pair = []
        for arm, trials in (("off", n), ("on", 2 * n)):
            study = write(folder, base, task, arm, seed, trials)
            name = yaml.safe_load(study.read_text())["name"]
            log(f"{task}: seed {seed}, pruning {arm}: study {name}, {trials} trials")
            start = time.perf_counter()
            nas("study", "run", str(study), "--storage", storage, "--workers", "1", echo=True)
            wall = time.perf_counter() - start
            read = read_arm(name, storage, arm, seed, REFERENCE[task])
            pair.append(Arm(read.name, read.seed, read.points, read.test_hv, wall, read.counts))
            log(f"{task}: seed {seed}, pruning {arm}: {wall:.0f} s, {read.counts}")
        arms.append((pair[0], pair[1]))
    return arms


def main() -> int:
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--n-trials", type=int, help="trials of the unpruned study (default 8; 3 --quick)"
    )
    parser.add_argument(
        "--tasks", nargs="+", choices=["sst2", "quickstart"], default=["sst2", "quickstart"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="sampler seeds (default 0 1 2)")
    args = parser.parse_args()
    common.set_threads(args.threads)
    checkpoint = None if args.quick else common.minilm_checkpoint("bench/pruning.py")
    n = args.n_trials or (3 if args.quick else 8)
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    with tempfile.TemporaryDirectory() as tmp:
        folder = common.work_dir(args, "pruning", Path(tmp) if args.quick else None)
        with common.recorded("pruning", args.quick) as targets:
            space = SPACE
            if args.quick:
                import families

                space = families.quick_space(folder)
            common.header(
                "bench/pruning.py",
                args.quick,
                [
                    f"work dir {folder}; sampler seeds {seeds}; TPE, --workers 1 "
                    "(resources.cpu 1)",
                    f"pruning off: {n} trials; pruning on: {2 * n} trials, eta "
                    f"{PRUNING['eta']}, rungs 1/9 and 1/3 of each trial's optimizer steps",
                    "sst2: "
                    + common.teacher_line(checkpoint).split(";")[0]
                    + f"; students over {space.name} (bilstm, cnn, bow)"
                    + f"; {QUICK_SST2 if args.quick else N_SST2} training examples; "
                    "selection: 876 held-out training sentences, test: the 872 dev sentences"
                    + (" (100 each --quick)" if args.quick else ""),
                    "quickstart: studies/quickstart.yaml as shipped"
                    + (" (300 training questions, teacher 3 epochs --quick)" if args.quick else "")
                    + "; its teacher trained once and cached",
                    f"hypervolume reference points: {REFERENCE}",
                ],
            )
            bases = {
                "sst2": sst2_study(folder, checkpoint, space, args.quick),
                "quickstart": quickstart_study(args.quick),
            }
            for task in args.tasks:
                report(task, run_task(task, bases[task], folder, seeds, n), targets)
            common.footer()
    return 0


if __name__ == "__main__":
    common.run(main)
