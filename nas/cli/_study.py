"""``nas study run | status | front | report | list``: the search service."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import optuna

from nas.cli._common import (
    command,
    group,
    load_named_study,
    log_args,
    positive_int,
    progress,
    storage_arg,
)
from nas.config import load_study
from nas.errors import NasError


def register(commands: Any) -> None:
    sub = group(
        commands,
        "study",
        "run and inspect searches",
        "study_command",
        ["nas study run studies/quickstart.yaml", "nas study front quickstart"],
    )
    run = command(
        sub,
        "run",
        help="search: Ray Tune trials recorded in an Optuna study",
        description="Run the study to its total of finished trials; running it again resumes "
        "where it stopped. It ends with a verdict: the trial counts, the feasibility rule, the "
        "teacher's and baseline's scores, the front and its picks (as nas study front), and "
        "what the front offers against the baseline.",
        examples=[
            "nas study run studies/quickstart.yaml",
            "nas study run studies/quickstart.yaml --n-trials 24 --quiet",
            "nas study run studies/squad_v2.yaml --storage postgresql+psycopg://nas@db/nas "
            "--ray-address auto",
        ],
    )
    run.add_argument("study", metavar="S.yaml", help="study config, e.g. studies/quickstart.yaml")
    storage_arg(run, from_config=True)
    run.add_argument(
        "--n-trials",
        type=positive_int,
        metavar="N",
        help="total finished trials (default: the config's)",
    )
    run.add_argument(
        "--workers",
        type=positive_int,
        metavar="K",
        help="trials at once (default: as many as the Ray resources fit, resources.cpu/gpu each)",
    )
    run.add_argument(
        "--ray-address", metavar="ADDR", help="join a running Ray cluster (HOST:PORT or auto)"
    )
    run.add_argument(
        "--artifact-root",
        metavar="ROOT",
        help="where checkpoints are stored (default: the config's artifact_root, "
        "then .nas/artifacts)",
    )
    run.add_argument("--verbose", action="store_true", help="Ray's own progress tables and logs")
    run.add_argument(
        "--accept-config-change",
        action="store_true",
        help="run an existing study although the study file changes what its results mean "
        "(objectives, thresholds, task, data, teacher, student source, search space, training "
        "recipe); the change is recorded in the study's config_changes attribute",
    )
    run.add_argument(
        "--warm-start",
        metavar="OTHER_STUDY",
        help="first enqueue the feasible front of another study (same objectives), its params "
        "mapped onto this search space; each enqueued trial names its source in warm_start",
    )
    run.add_argument(
        "--warm-storage",
        metavar="URL",
        help="the storage of --warm-start's study (default: this study's storage)",
    )
    run.add_argument(
        "--warm-top",
        type=positive_int,
        metavar="N",
        help="with --warm-start: also the N best feasible trials by the first objective",
    )
    log_args(run, "no progress or trial lines: only warnings, errors and the final verdict")
    run.set_defaults(run=run_command)

    status = command(
        sub,
        "status",
        help="counts by state, failure reasons, the front",
        description="The study's trials counted by state, the failure reasons, measured memory "
        "against the estimates, and the front table with its picks.",
        examples=["nas study status quickstart", "nas study status quickstart --json"],
    )
    status.add_argument("name", metavar="NAME", help="study name")
    storage_arg(status)
    status.add_argument(
        "--json", action="store_true", help="machine-readable: counts, failures and the front"
    )
    status.set_defaults(run=status_command)

    front = command(
        sub,
        "front",
        help="the feasible front by size, against the baseline, with three picks",
        description="The feasible Pareto front, smallest first, with each student's score on "
        "the selection split and (once scored) the test split, the teacher's row, the "
        "difference from the baseline, and three picks.",
        examples=["nas study front quickstart", "nas study front quickstart --test --json"],
    )
    front.add_argument("name", metavar="NAME", help="study name")
    storage_arg(front)
    front.add_argument("--json", action="store_true", help="machine-readable output")
    front.add_argument(
        "--test",
        action="store_true",
        help="first score the front's students and the teacher on the test split (those not "
        "scored yet; nas study run does it when the study finishes)",
    )
    front.add_argument(
        "--artifact-root",
        metavar="ROOT",
        help="where the checkpoints are (default: what each trial recorded)",
    )
    front.set_defaults(run=front_command)

    confirm = command(
        sub,
        "confirm",
        help="re-train the front's students with new seeds: mean and spread of their scores",
        description="Re-train the chosen students (the front by default) with --seeds new seeds "
        "through the same Ray workers and storage; the runs form the study NAME.confirm, so "
        "running it again resumes.",
        examples=[
            "nas study confirm quickstart --seeds 3",
            "nas study confirm quickstart --trials 3,7 --workers 2",
        ],
    )
    confirm.add_argument("name", metavar="NAME", help="study name")
    storage_arg(confirm)
    confirm.add_argument(
        "--seeds", type=positive_int, default=3, metavar="N", help="new seeds per student (3)"
    )
    confirm.add_argument(
        "--trials",
        default="front",
        metavar="LIST",
        help="'front' (default) or trial numbers, e.g. 3,7",
    )
    confirm.add_argument(
        "--workers", type=positive_int, metavar="K", help="runs at once (default: as fit)"
    )
    confirm.add_argument(
        "--ray-address", metavar="ADDR", help="join a running Ray cluster (HOST:PORT or auto)"
    )
    confirm.add_argument("--artifact-root", metavar="ROOT", help="where checkpoints are stored")
    confirm.set_defaults(run=confirm_command)

    report = command(
        sub,
        "report",
        help="one self-contained HTML file: front, hypervolume, importances, trials",
        description="Write one HTML file that opens offline: the front, the hypervolume "
        "history, parameter importances per objective and every trial.",
        examples=["nas study report quickstart --out report.html"],
    )
    report.add_argument("name", metavar="NAME", help="study name")
    storage_arg(report)
    report.add_argument(
        "--out", required=True, metavar="FILE", help="HTML file to write, e.g. report.html"
    )
    report.set_defaults(run=report_command)

    listing = command(
        sub,
        "list",
        help="studies in the storage",
        description="The studies in the storage: name, trial count, directions.",
        examples=["nas study list", "nas study list --storage sqlite:///runs/nas.db --json"],
    )
    storage_arg(listing)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=list_command)


def run_command(args: argparse.Namespace) -> int:
    from nas.cli._drift import check_config_drift, remember_space
    from nas.search_space import study_space
    from nas.study import check_distributions_fit, open_storage, resolve_storage

    config = load_study(args.study)
    n_trials = config.n_trials if args.n_trials is None else args.n_trials
    url = resolve_storage(args.storage, config)
    # Bad input fails before anything is written (open_storage creates a SQLite file).
    space = study_space(config)
    check_distributions_fit(url, space.distributions, space.source_file)
    # the other study's params, mapped and checked before data, teacher or any write
    warm = warm_start(args, config, space, url)
    # the command's one open: an unreachable or read-only storage fails before any work
    storage = open_storage(url)
    # A re-run whose study file changes what past results mean: refused before data or teacher.
    check_config_drift(config, space, storage, url, args.accept_config_change, progress)
    from nas.results import summarize, verdict_text
    from nas.search import RunOptions, run_study  # heavy imports only when needed

    options = RunOptions(
        url,
        n_trials,
        args.workers,
        args.ray_address,
        args.verbose,
        args.artifact_root,
        on_open=warm,
    )
    code = run_study(config, options, storage, progress)
    study = optuna.load_study(study_name=config.name, storage=storage)
    remember_space(study, space)  # what the next run's study file is compared with
    print(verdict_text(summarize(study)))
    from nas.results import publish

    publish(study)  # nas's feasible front, for optuna-dashboard's study page
    if not args.quiet:
        same = " (with the same --storage)" if args.storage else ""
        print(
            f"browse the study: nas dashboard {config.name}{same}; share it: nas study report "
            f"{config.name} --out report.html{same}"
        )
    return code


def warm_start(
    args: argparse.Namespace, config: Any, space: Any, url: str
) -> Callable[[optuna.Study], None] | None:
    """``--warm-start``: read and map the other study now (a missing study, or one with other
    objectives, is one line and exit 2 before anything is written); the returned function
    enqueues the mapped params once the study is open (``RunOptions.on_open``)."""
    if args.warm_start is None:
        if args.warm_storage or args.warm_top:
            raise NasError("--warm-storage and --warm-top need --warm-start OTHER_STUDY")
        return None
    from nas.objectives import directions, objective_names
    from nas.study import (
        check_warm_objectives,
        location,
        mask_password,
        open_existing,
        plan_warm_start,
        warm_source_trials,
    )
    from nas.tasks import get_task

    source_url = args.warm_storage or url
    storage = open_existing(source_url)
    names = sorted(s.study_name for s in storage.get_all_studies())
    if args.warm_start not in names:
        raise NasError(
            f"--warm-start: no study {args.warm_start!r} in {location(source_url)}; studies "
            f"there: {', '.join(names) or 'none'} (pass --warm-storage for another database)"
        )
    source = optuna.load_study(study_name=args.warm_start, storage=storage)
    label = f"{args.warm_start}@{mask_password(source_url)}"
    ours = objective_names(config, get_task(config.task).primary_metric)
    check_warm_objectives(source, ours, directions(config, ours), label)
    chosen = warm_source_trials(source, args.warm_top or 0)
    mapped = plan_warm_start(chosen, label, space.distributions, config.baseline, space.validate)
    for line in mapped.lines:
        progress(line)
    progress(
        f"warm start: {len(mapped.trials)} of {len(chosen)} trials of {label} "
        "to enqueue (front" + (f" and top {args.warm_top})" if args.warm_top else ")")
    )

    def enqueue_warm(study: optuna.Study) -> None:
        from nas.study import enqueue_warm_start

        for line in enqueue_warm_start(study, mapped):
            progress(line)

    return enqueue_warm


def status_command(args: argparse.Namespace) -> int:
    from nas.results import front_text, memory_report, rung_counts, rung_lines, summarize
    from nas.study import failure_reasons, state_counts

    study = load_named_study(args)
    if args.json:
        import json

        from nas.results import front_record

        record = {
            "study": study.study_name,
            "objectives": study.metric_names,
            "directions": [d.name.lower() for d in study.directions],
            "states": state_counts(study),
            "failures": failure_reasons(study),
            "rungs": {
                str(k): {"reached": r, "pruned": p} for k, (r, p) in rung_counts(study).items()
            },
            **front_record(summarize(study)),
        }
        print(json.dumps(record, indent=2))
        return 0
    print(
        f"study {study.study_name}: objectives {study.metric_names} "
        f"({', '.join(d.name.lower() for d in study.directions)})"
    )
    for state, count in sorted(state_counts(study).items()):
        print(f"  {state:<22} {count}")
    reasons = failure_reasons(study)
    if reasons:
        print("failures: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
    rungs = rung_lines(study)
    if rungs:
        print("pruning (MO-ASHA):")
        print("\n".join(rungs))
    for line in memory_report(study):
        print(line)
    print(front_text(summarize(study)))
    return 0


def list_command(args: argparse.Namespace) -> int:
    from nas.study import location, open_existing, resolve_storage

    url = resolve_storage(args.storage)
    summaries = optuna.get_all_study_summaries(open_existing(url))
    if args.json:
        import json

        rows = [
            {
                "name": s.study_name,
                "trials": s.n_trials,
                "directions": [d.name.lower() for d in s.directions],
            }
            for s in summaries
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not summaries:
        print(f"no studies in {location(url)}")
    for s in summaries:
        print(
            f"{s.study_name}  trials={s.n_trials}  "
            f"directions={[d.name.lower() for d in s.directions]}"
        )
    return 0


def front_command(args: argparse.Namespace) -> int:
    from nas.results import front_record, front_text, summarize

    study = load_named_study(args, writes=args.test)  # --test stores the scores in the study
    if args.test:
        score_on_test(study, args.storage, args.artifact_root)
    summary = summarize(study)
    if args.json:
        import json

        print(json.dumps(front_record(summary), indent=2))
        return 0
    print(front_text(summary))
    if not summary.test and summary.front:
        print(f"(no test scores yet: nas study front {study.study_name} --test scores the front)")
    return 0


def confirm_command(args: argparse.Namespace) -> int:
    from nas.results import select_trials
    from nas.search import confirm_study

    study = load_named_study(args, writes=True)  # the runs form NAME.confirm in its storage
    numbers = None
    if args.trials != "front":
        try:
            numbers = [int(n) for n in args.trials.split(",") if n.strip()]
        except ValueError:
            raise NasError(
                f"--trials {args.trials!r}: write 'front' or trial numbers such as 3,7"
            ) from None
    trials = select_trials(study, numbers)  # an empty front or a bad number: one line, exit 2
    from nas.study import resolve_storage

    url = resolve_storage(args.storage)
    code = confirm_study(study, trials, args.seeds, url, args, progress)
    from nas.results import front_text, summarize

    print(front_text(summarize(study)))
    return code


def score_on_test(study: optuna.Study, storage: str | None, artifact_root: str | None) -> None:
    """Score the front's students (and the teacher) on the test split, if not done yet."""
    from nas.config import from_snapshot
    from nas.search import score_front
    from nas.study import config_snapshot
    from nas.trial import prepare

    config = from_snapshot(config_snapshot(study), f"study '{study.study_name}'")
    prepared = prepare(config, progress)
    score_front(study, prepared, progress, artifact_root)


def report_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nas.results import write_report
    from nas.study import resolve_storage

    study = load_named_study(args)
    out = Path(args.out)
    summary = write_report(study, out, resolve_storage(args.storage))
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, opens offline): "
        f"{len(summary.rows)} trials, {len(summary.front)} on the feasible front"
    )
    return 0
