"""Does MO-ASHA pruning reach the same front with less compute? The same study with and without
``pruning:``, side by side, under one compute budget counted in training samples.

Two tasks: SST-2 (``../shared/data/sst2``) with the teacher fine-tuned by nas from the
pretrained all-MiniLM-L6-v2 and BiLSTM / CNN / bag-of-words students
(``bench/families_space.yaml``: trials of seconds, not minutes, on a CPU), and the quickstart
(``studies/quickstart.yaml`` as shipped: synthetic QA, its own teacher, sliced students, its
thresholds and baseline). For each task and each of 3 sampler seeds, ``nas study run``s through
the real CLI, one worker, TPE with that seed, one study per arm:

- ``off``: pruning off, N trials (8). What it spends in training samples is the seed's budget.
- ``on``: the issue's setting, ``eta`` 3, rungs 1/9 and 1/3 (``min_rung`` 0, ``grace_trials``
  1), run until it has spent the budget.
- ``var``: a gentler variant, the same ``eta`` and rungs with ``min_rung`` 1 (rung 1/9 is
  recorded but stops nothing) and ``grace_trials`` 3 (a rung stops nothing before 3 trials
  reached it); ``--no-variant`` leaves it out.

Compute is counted in training samples (a pruned trial counts the samples up to its rung) and
in trial seconds. nas has no budget stop, so a pruned study runs in rounds: a first
``--n-trials`` from ASHA's expected share of a full training (``--pruned-trials`` overrides
it), then resumed with more trials (estimated from what its trials cost so far) until its
trials have spent more than the budget or it holds ``--pruned-max-trials``. Only the trials
within the budget count: the first trial that passes it and every later one are left out of
every figure, selection and test hypervolume included.

Printed: per seed and arm, the trials, the compute, the hypervolume on the selection split
(nas's ``hypervolume_history``) and of the budget's front at its test scores; the hypervolume
against compute (fractions of the budget, mean over seeds); and the compute each arm needs to
reach the unpruned study's final selection hypervolume. Target: pruning needs at most half of
what the unpruned study needs, averaged over the seeds (the mean of the per-seed ratios), on
each task; the variant's is recorded beside the issue's setting. A full run also writes the
hypervolume-against-compute plot, ``bench/results/pruning_hv.html`` (plotly, as nas's report).

    nice python bench/pruning.py       # about 45 minutes on 2 CPU cores
    python bench/pruning.py --quick    # tiny teachers and data, 2 seeds, 3 unpruned trials
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import _common as common
import numpy as np
import yaml
from _common import log, nas

PRUNING = {"enabled": True, "eta": 3, "rungs": [1 / 9, 1 / 3], "min_rung": 0, "grace_trials": 1}
VARIANT = {"min_rung": 1, "grace_trials": 3}  # the gentler arm's changes to PRUNING
SPACE = common.REPO / "bench" / "families_space.yaml"
QUICKSTART = common.REPO / "studies" / "quickstart.yaml"
TEACHER = {"epochs": 3, "learning_rate": 2e-4}  # bench/families.py's recipe from MiniLM
N_SST2, QUICK_SST2 = 2000, 200  # SST-2 training examples (nas's seeded subset)
# Fixed hypervolume reference points, the same for every arm and seed: chance accuracy and a
# size above every student of the space; the quickstart's threshold and twice its baseline
# (feasible trials only add volume, as in nas's report).
REFERENCE = {
    "sst2": {"accuracy": 0.5, "params": 2.0e6},
    "quickstart": {"exact": 50.0, "params": 1.0e6},
}
FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)  # of the budget, for the hypervolume-compute table
STARTUP = 10  # TPE's random startup trials: a first round holds more (a resume reseeds TPE)
PLOT = common.REPO / "bench" / "results" / "pruning_hv.html"


@dataclass(frozen=True)
class Point:
    """One trial of a study in trial order: what it cost and the front so far."""

    number: int
    state: str
    samples: float  # training samples, up to the rung for a pruned trial
    seconds: float  # the trial's wall time (start to end, rung evaluations included)
    hypervolume: float  # selection split, of the feasible COMPLETE trials up to this one
    rung: int = -1  # the rung a PRUNED trial stopped at


@dataclass(frozen=True)
class Arm:
    name: str  # "off", "on" or "var"
    seed: int
    points: list[Point]
    # feasible COMPLETE trials: (number, task metric on the selection split, params)
    feasible: list[tuple[int, float, float]]
    test: dict[int, float]  # trial number -> task metric on the test split (front trials)
    params: dict[int, dict[str, Any]]  # trial number -> its params
    wall_s: float = 0.0  # the `nas study run`s, all rounds
    rounds: int = 1

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
        used = self.used(samples)
        return used[-1].hypervolume if used else 0.0

    def to_reach(self, hv: float, budget: float | None = None) -> tuple[float, float] | None:
        """(samples, seconds) spent when the selection hypervolume first reaches ``hv``."""
        samples = seconds = 0.0
        for p in self.used(budget):
            samples, seconds = samples + p.samples, seconds + p.seconds
            if p.hypervolume >= hv * (1 - 1e-9) and p.hypervolume > 0:
                return samples, seconds
        return None

    def front(self, budget: float | None = None) -> list[int]:
        """The feasible Pareto front (selection split) of the trials within ``budget``."""
        used = self.used(budget)
        last = used[-1].number if used else -1
        mine = [(-m, p, n) for n, m, p in self.feasible if n <= last]  # both minimised
        return [a[2] for a in mine if not any(dominates(b[:2], a[:2]) for b in mine)]

    def test_hv(self, ref: dict[str, float], budget: float | None = None) -> tuple[float, int]:
        """Hypervolume of :meth:`front` at its test scores, and how many of its trials have
        no test score (left out)."""
        from optuna._hypervolume import compute_hypervolume  # what nas's report uses

        front = self.front(budget)
        size = {n: p for n, _, p in self.feasible}
        metric = next(k for k in ref if k != "params")
        ref_min = np.array([-ref[metric], ref["params"] * 1e-6])
        scored = [np.array([-self.test[n], size[n] * 1e-6]) for n in front if n in self.test]
        kept = [v for v in scored if (v < ref_min).all()]
        volume = float(compute_hypervolume(np.stack(kept), ref_min)) if kept else 0.0
        return volume, len(front) - len(scored)


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """``a`` dominates ``b``, both minimised."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def expected_share(pruning: dict[str, Any]) -> float:
    """ASHA's expected share of a full training a trial takes (1 - 1/eta of those reaching a
    stopping rung stop there; grace ignored): the first round's guess of how many trials
    spend the budget."""
    if not pruning.get("enabled"):
        return 1.0
    reach, share, eta = 1.0, 0.0, pruning["eta"]
    for k, rung in enumerate(pruning["rungs"]):
        if k >= pruning.get("min_rung", 0):
            share += reach * (1 - 1 / eta) * rung
            reach /= eta
    return share + reach


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


def write(
    folder: Path, base: dict[str, Any], task: str, arm: str, seed: int, pruning: dict[str, Any]
) -> Path:
    name = f"pruning-{task}-{arm}-s{seed}-{uuid.uuid4().hex[:6]}"
    study = {
        **base,
        "name": name,
        "n_trials": 1,  # each `nas study run` gives --n-trials
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
    from nas.study import SAMPLES_PER_S, TRAIN_TIME, trial_rungs

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
        rung = -1
        if t.state.name == "COMPLETE":
            fraction = 1.0
            volume = hv.get(t.number, volume)
        elif t.state.name == "PRUNED":
            rungs = trial_rungs(t)
            rung = max(rungs) if rungs else -1
            fraction = float(rungs[rung]["epoch_fraction"]) if rungs else 0.0
        else:  # failed: its samples are not known; its seconds still count
            fraction = 0.0
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else 0.0
        )
        samples = fraction * epochs_of(t.params) * epoch
        points.append(Point(t.number, t.state.name, samples, seconds, volume, rung))
    metric = summary.metric
    feasible = [
        (r.number, r.values[metric], r.values["params"])
        for r in summary.rows
        if r.state == "COMPLETE" and r.standing != "infeasible"
    ]
    test = {n: v[metric] for n, v in summary.test.items() if metric in v}
    return Arm(arm, seed, points, feasible, test, {t.number: t.params for t in trials})


# ----------------------------------------------------------------------------- report

LABEL = {"off": "pruning off", "on": "pruning on", "var": "variant"}


def fmt_samples(n: float) -> str:
    return f"{n / 1e3:.1f}K" if n < 1e6 else f"{n / 1e6:.2f}M"


def ratios_text(ratios: list[float]) -> str:
    return ", ".join("not reached" if not math.isfinite(r) else f"{r:.2f}" for r in ratios)


def budget_of(off: Arm) -> float:
    return sum(p.samples for p in off.points)


def arm_row(arm: Arm, budget: float, final: float, ref: dict[str, float]) -> list[str]:
    used = arm.used(budget)
    reach = arm.to_reach(final, budget)
    spent = sum(p.samples for p in used)
    at = [sum(p.state == "PRUNED" and p.rung == k for p in used) for k in (0, 1)]
    test, unscored = arm.test_hv(ref, budget)
    return [
        f"seed {arm.seed} {LABEL[arm.name]}",
        f"{len(used)}/{len(arm.points)}",
        f"{at[0]} + {at[1]}",
        fmt_samples(spent),
        f"{spent / budget:.0%}" if budget else "-",
        f"{sum(p.seconds for p in used):.0f}",
        f"{(used[-1].hypervolume if used else 0.0):.4f}",
        f"{test:.4f}" + (f" ({unscored} unscored)" if unscored else ""),
        "not reached" if reach is None else fmt_samples(reach[0]),
        "" if reach is None else f"{reach[1]:.0f}",
        str(arm.rounds),
        f"{arm.wall_s:.0f}",
    ]


def front_losses(off: Arm, other: Arm) -> tuple[int, int]:
    """Of the unpruned final front's trials among the first STARTUP (TPE's random trials, the
    same params in every arm of a seed), how many the other arm pruned: (pruned, compared)."""
    front = off.front()
    states = {p.number: p.state for p in other.points}
    same = [
        n
        for n in front
        if n < STARTUP and n in states and other.params.get(n) == off.params.get(n)
    ]
    return sum(states[n] == "PRUNED" for n in same), len(same)


def report(task: str, seeds: list[list[Arm]], targets: list[dict[str, Any]]) -> None:
    ref = REFERENCE[task]
    names = [a.name for a in seeds[0]]
    rows = []
    for arms in seeds:
        budget, final = budget_of(arms[0]), arms[0].points[-1].hypervolume
        rows += [arm_row(arm, budget, final, ref) for arm in arms]
    head = ["study", "trials used", "pruned 1/9 + 1/3", "samples", "of budget", "trial s"]
    head += ["HV sel", "HV test", "to reach: samples", "s", "rounds", "run s"]
    print(
        f"{task}: each seed's budget is its unpruned study's training samples; 'trials used' "
        "are the trials within it (of those run), and every column counts only those; HV "
        "test: the front of the trials used, at its test scores; 'to reach': the compute "
        "spent when the selection HV first reached the unpruned study's final one; rounds: "
        "`nas study run`s of the study"
    )
    print(common.table(rows, head))
    for name in names[1:]:
        lost = [front_losses(arms[0], arms[names.index(name)]) for arms in seeds]
        print(
            f"{task}: trials on the unpruned final front (of the first {STARTUP}, the same "
            f"params in both arms) that {LABEL[name]} pruned, per seed: "
            + ", ".join(f"{p} of {n}" for p, n in lost)
        )
    print(f"\n{task}: selection hypervolume against compute (fractions of each seed's budget):")
    curve = []
    for i, name in enumerate(names):
        cells = [
            f"{statistics.fmean(a[i].hv_at(f * budget_of(a[0])) for a in seeds):.4f}"
            for f in FRACTIONS
        ]
        curve.append([LABEL[name], *cells])
    print(common.table(curve, ["mean over seeds", *(f"{f:.0%}" for f in FRACTIONS)]))
    for i, name in enumerate(names[1:], start=1):
        half_target(task, name, [(a[0], a[i]) for a in seeds], targets)


def half_target(
    task: str, name: str, pairs: list[tuple[Arm, Arm]], targets: list[dict[str, Any]]
) -> None:
    ratios, seconds = [], []
    for off, on in pairs:
        budget, final = budget_of(off), off.points[-1].hypervolume
        need_off, need_on = off.to_reach(final), on.to_reach(final, budget)
        if need_off is not None:
            ratios.append(math.inf if need_on is None else need_on[0] / need_off[0])
            seconds.append(math.inf if need_on is None else need_on[1] / need_off[1])
    finite = [r for r in ratios if math.isfinite(r)]
    mean = statistics.fmean(ratios) if ratios and len(finite) == len(ratios) else math.inf
    shown, secs = ratios_text(ratios), ratios_text(seconds)
    empty = len(pairs) - len(ratios)  # seeds whose unpruned study found no volume at all
    print(
        f"{task}, {LABEL[name]}: compute it needs over what the unpruned study needs, to reach "
        f"the unpruned final selection HV: samples {shown or '-'}; seconds {secs or '-'}"
        + (f"; {empty} seed(s) without a feasible front to reach" if empty else "")
    )
    if not ratios:
        measured = f"no seed's unpruned study has a positive hypervolume ({empty} seeds)"
    elif math.isfinite(mean):
        measured = f"mean samples ratio {mean:.2f} (seeds: {shown}; seconds: {secs})"
    else:
        measured = (
            f"not reached in {len(ratios) - len(finite)} of {len(ratios)} seeds "
            f"(seeds: {shown}; seconds: {secs})"
        )
    setting = (
        "eta 3, rungs 1/9 and 1/3"
        if name == "on"
        else f"variant, not the issue's setting: eta 3, rungs 1/9 and 1/3, min_rung "
        f"{VARIANT['min_rung']}, grace_trials {VARIANT['grace_trials']}"
    )
    targets.append(
        common.target(
            f"{task}_pruning_half_compute" + ("" if name == "on" else "_variant"),
            f"pruning ({setting}) reaches the unpruned study's final selection hypervolume "
            "within the unpruned study's budget and with at most half the training samples "
            "the unpruned study needs for it, averaged over the seeds",
            measured,
            math.isfinite(mean) and mean <= 0.5,
        )
    )
    print()


def plot(results: dict[str, list[list[Arm]]], path: Path) -> None:
    """Selection hypervolume against training samples (fractions of the budget), a line per
    seed and arm, one figure per task, as plotly HTML like nas's report (plotly.js from its
    CDN, to keep the file small)."""
    import plotly.graph_objects as go
    import plotly.io as pio

    colors = {"off": "#1f77b4", "on": "#d62728", "var": "#2ca02c"}
    dashes = ["solid", "dash", "dot", "dashdot"]
    parts: list[str] = []
    for task, seeds in results.items():
        fig = go.Figure()
        for s, arms in enumerate(seeds):
            budget = budget_of(arms[0])
            for arm in arms:
                x, y, total = [0.0], [0.0], 0.0
                for p in arm.used(budget):
                    total += p.samples
                    x.append(total / budget)
                    y.append(p.hypervolume)
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=y,
                        mode="lines",
                        line={"shape": "hv", "color": colors[arm.name], "dash": dashes[s % 4]},
                        name=f"{LABEL[arm.name]}, seed {arm.seed}",
                    )
                )
        fig.update_layout(
            title=f"{task}: hypervolume of the feasible front (selection split) against "
            f"compute; reference {REFERENCE[task]}",
            xaxis_title="training samples, as a fraction of the unpruned study's",
            yaxis_title="hypervolume (metric x M params)",
            template="plotly_white",
            height=440,
        )
        parts.append(
            pio.to_html(fig, include_plotlyjs="cdn" if not parts else False, full_html=False)
        )
    path.write_text(
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>bench/pruning.py: hypervolume against compute</title></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
    print(f"plot: {path.relative_to(common.REPO) if path.is_relative_to(common.REPO) else path}")


# ----------------------------------------------------------------------------- main


@dataclass(frozen=True)
class Plan:
    """How many trials the pruned studies run."""

    n: int  # trials of the unpruned study
    first: int | None  # a pruned study's first round (None: from ASHA's expected share)
    cap: int  # a pruned study's most trials


def run_study(study: Path, storage: str, trials: int) -> float:
    start = time.perf_counter()
    nas(
        "study", "run", str(study), "--storage", storage, "--workers", "1",
        "--n-trials", str(trials), echo=True,
    )  # fmt: skip
    return time.perf_counter() - start


def run_arm(
    task: str,
    base: dict[str, Any],
    folder: Path,
    seed: int,
    arm: tuple[str, dict[str, Any]],
    plan: Plan,
    budget: float | None,
) -> Arm:
    """One study; a pruned one (``budget`` given) is resumed with more trials until its
    trials have spent more than ``budget`` training samples or it holds ``plan.cap``."""
    name, pruning = arm
    storage = f"sqlite:///{folder / 'pruning.db'}"
    study = write(folder, base, task, name, seed, pruning)
    study_name = yaml.safe_load(study.read_text())["name"]
    trials = plan.n
    if budget is not None:
        guess = math.ceil(plan.n / expected_share(pruning))
        trials = min(plan.cap, max(2 * plan.n, STARTUP + 1, plan.first or guess))
    wall, rounds = 0.0, 0
    while True:
        log(f"{task}: seed {seed}, {LABEL[name]}: study {study_name}, --n-trials {trials}")
        wall += run_study(study, storage, trials)
        rounds += 1
        read = read_arm(study_name, storage, name, seed, REFERENCE[task])
        spent = sum(p.samples for p in read.points)
        if budget is None or spent > budget or len(read.points) >= plan.cap:
            break
        per_trial = spent / max(1, len(read.points))
        more = math.ceil(1.2 * (budget - spent) / max(per_trial, 1.0)) + 1
        trials = min(plan.cap, len(read.points) + max(2, more))
        log(
            f"{task}: seed {seed}, {LABEL[name]}: {fmt_samples(spent)} of the "
            f"{fmt_samples(budget)} budget spent in {len(read.points)} trials; resuming"
        )
    if budget is not None:  # the last round scored the whole run's front, not the budget's
        todo = [n for n in read.front(budget) if n not in read.test]
        if todo:
            score_on_test(study_name, storage, todo)
            read = read_arm(study_name, storage, name, seed, REFERENCE[task])
    log(f"{task}: seed {seed}, {LABEL[name]}: {wall:.0f} s, {rounds} round(s)")
    return replace(read, wall_s=wall, rounds=rounds)


def score_on_test(name: str, storage: str, numbers: list[int]) -> None:
    """Score these trials' students on the test split, as `nas study run` scores its front
    (``nas.search.score_front``, the study's own config snapshot)."""
    import optuna

    from nas.config import from_snapshot
    from nas.search import score_front
    from nas.study import config_snapshot
    from nas.trial import prepare

    log(f"study {name}: scoring trials {numbers} (the budget's front) on the test split")
    study = optuna.load_study(study_name=name, storage=storage)
    config = from_snapshot(config_snapshot(study), f"study '{name}'")
    wanted = set(numbers)
    trials = [t for t in study.get_trials(deepcopy=False) if t.number in wanted]
    score_front(study, prepare(config, log), log, None, trials)


def run_task(
    task: str,
    base: dict[str, Any],
    folder: Path,
    seeds: list[int],
    arms: list[tuple[str, dict[str, Any]]],
    plan: Plan,
) -> list[list[Arm]]:
    out = []
    for seed in seeds:
        off = run_arm(task, base, folder, seed, ("off", {**PRUNING, "enabled": False}), plan, None)
        budget = budget_of(off)
        out.append([off, *(run_arm(task, base, folder, seed, a, plan, budget) for a in arms)])
    return out


def main() -> int:
    parser = common.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--n-trials", type=int, help="trials of the unpruned study (default 8; 3 --quick)"
    )
    parser.add_argument(
        "--pruned-trials",
        type=int,
        help="a pruned study's first round of trials (default: the unpruned study's trials "
        "over ASHA's expected share of a full training, at least twice them)",
    )
    parser.add_argument(
        "--pruned-max-trials",
        type=int,
        help="a pruned study's most trials, whether or not it has spent the budget (default "
        "6 times the unpruned study's; 3 times --quick)",
    )
    parser.add_argument(
        "--no-variant",
        action="store_true",
        help=f"leave out the variant arm ({VARIANT})",
    )
    parser.add_argument(
        "--tasks", nargs="+", choices=["sst2", "quickstart"], default=["sst2", "quickstart"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="sampler seeds (default 0 1 2)")
    args = parser.parse_args()
    common.set_threads(args.threads)
    # the 60 s thread wait of a stopped trial's actor: nas's driver sets it too (see _init_ray)
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "60")
    checkpoint = None if args.quick else common.minilm_checkpoint("bench/pruning.py")
    n = args.n_trials or (3 if args.quick else 8)
    cap = args.pruned_max_trials or (3 if args.quick else 6) * n
    plan = Plan(n, args.pruned_trials, cap)
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    arms = [("on", dict(PRUNING))]
    if not args.no_variant:
        arms.append(("var", {**PRUNING, **VARIANT}))
    with tempfile.TemporaryDirectory() as tmp:
        folder = common.work_dir(args, "pruning", Path(tmp) if args.quick else None)
        with common.recorded("pruning", args.quick) as targets:
            space = SPACE
            if args.quick:
                import families

                space = families.quick_space(folder)
            settings = [f"{LABEL[a]}: {p}" for a, p in arms]
            common.header(
                "bench/pruning.py",
                args.quick,
                [
                    f"work dir {folder}; sampler seeds {seeds}; TPE, --workers 1 "
                    "(resources.cpu 1)",
                    f"pruning off: {n} trials; its training samples are the seed's budget",
                    *settings,
                    "pruned studies: run (and resumed) until their trials pass the budget; "
                    f"first round {plan.first or 'from ASHA' + chr(39) + 's expected share'}"
                    f", at most {cap} trials; rungs are fractions of each trial's optimizer "
                    "steps",
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
            results = {}
            for task in args.tasks:
                results[task] = run_task(task, bases[task], folder, seeds, arms, plan)
                report(task, results[task], targets)
            plot(results, PLOT if not args.quick else folder / "pruning_hv.html")
            common.footer()
    return 0


if __name__ == "__main__":
    common.run(main)
