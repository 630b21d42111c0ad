"""``nas study run | status | front | report | list``: the search service."""

from __future__ import annotations

import argparse
from typing import Any

import optuna

from nas.cli._common import positive_int, progress
from nas.config import load_study, shown
from nas.errors import NasError


def register(commands: Any) -> None:
    study = commands.add_parser("study", help="run and inspect searches")
    sub = study.add_subparsers(dest="study_command", metavar="ACTION", required=True)
    run = sub.add_parser(
        "run",
        help="search: Ray Tune trials recorded in an Optuna study",
        description="Run the study to its total of finished trials; "
        "running it again resumes where it stopped.",
    )
    run.add_argument("study", help="study config, e.g. studies/quickstart.yaml")
    _storage_arg(run)
    run.add_argument(
        "--n-trials", type=positive_int, help="total finished trials (default: the config's)"
    )
    run.add_argument(
        "--workers",
        type=positive_int,
        help="trials at once (default: as many as the Ray resources fit, resources.cpu/gpu each)",
    )
    run.add_argument("--ray-address", help="join a running Ray cluster (HOST:PORT or auto)")
    run.add_argument(
        "--artifact-root",
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
    run.set_defaults(run=run_command)

    status = sub.add_parser("status", help="counts by state, failure reasons, the front")
    status.add_argument("name", help="study name")
    _storage_arg(status)
    status.set_defaults(run=status_command)

    front = sub.add_parser(
        "front",
        help="the feasible front by size, against the baseline, with three picks",
    )
    front.add_argument("name", help="study name")
    _storage_arg(front)
    front.add_argument("--json", action="store_true", help="machine-readable output")
    front.add_argument(
        "--test",
        action="store_true",
        help="first score the front's students and the teacher on the test split (those not "
        "scored yet; nas study run does it when the study finishes)",
    )
    front.add_argument(
        "--artifact-root", help="where the checkpoints are (default: what each trial recorded)"
    )
    front.set_defaults(run=front_command)

    confirm = sub.add_parser(
        "confirm",
        help="re-train the front's students with new seeds: mean and spread of their scores",
        description="Re-train the chosen students (the front by default) with --seeds new seeds "
        "through the same Ray workers and storage; the runs form the study NAME.confirm, so "
        "running it again resumes. Example: nas study confirm quickstart --seeds 3",
    )
    confirm.add_argument("name", help="study name")
    _storage_arg(confirm)
    confirm.add_argument("--seeds", type=positive_int, default=3, help="new seeds per student (3)")
    confirm.add_argument(
        "--trials", default="front", help="'front' (default) or trial numbers, e.g. 3,7"
    )
    confirm.add_argument("--workers", type=positive_int, help="runs at once (default: as fit)")
    confirm.add_argument("--ray-address", help="join a running Ray cluster (HOST:PORT or auto)")
    confirm.add_argument("--artifact-root", help="where checkpoints are stored")
    confirm.set_defaults(run=confirm_command)

    report = sub.add_parser(
        "report",
        help="one self-contained HTML file: front, hypervolume, importances, trials",
    )
    report.add_argument("name", help="study name")
    _storage_arg(report)
    report.add_argument("--out", required=True, help="HTML file to write, e.g. report.html")
    report.set_defaults(run=report_command)

    listing = sub.add_parser("list", help="studies in the storage")
    _storage_arg(listing)
    listing.set_defaults(run=list_command)


def _storage_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage",
        help="SQLAlchemy URL or journal:FILE (default: the "
        "config's, then $NAS_STORAGE, then sqlite:///nas.db)",
    )


def run_command(args: argparse.Namespace) -> int:
    from nas.cli._drift import check_config_drift, remember_space
    from nas.search_space import study_space
    from nas.storage import check_distributions_fit, open_storage, resolve_storage

    config = load_study(args.study)
    n_trials = config.n_trials if args.n_trials is None else args.n_trials
    url = resolve_storage(args.storage, config)
    # Bad input fails before anything is written (open_storage creates a SQLite file).
    space = study_space(config)
    check_distributions_fit(url, space.distributions, space.source_file)
    storage = open_storage(url)  # an unreachable or read-only storage fails before any work
    # A re-run whose study file changes what past results mean: refused before data or teacher.
    check_config_drift(config, space, storage, url, args.accept_config_change, progress)
    from nas.search import RunOptions, run_study  # heavy imports only when needed
    from nas.summary import front_text, summarize

    options = RunOptions(
        url, n_trials, args.workers, args.ray_address, args.verbose, args.artifact_root
    )
    code = run_study(config, options, progress)
    study = optuna.load_study(study_name=config.name, storage=open_storage(url))
    remember_space(study, space)  # what the next run's study file is compared with
    print(front_text(summarize(study)))
    from nas.dashboard import publish

    publish(study)  # nas's feasible front, for optuna-dashboard's study page
    same = " (with the same --storage)" if args.storage else ""
    print(
        f"browse the study: nas dashboard {config.name}{same}; share it: nas study report "
        f"{config.name} --out report.html{same}"
    )
    return code


def _load(args: argparse.Namespace, writes: bool = False, fix: str = "") -> optuna.Study:
    """The study ``args.name`` in ``--storage``, creating nothing; a missing study names the
    storage's absolute path and the studies it holds. ``writes``: the command will write into
    the study, so a read-only SQLite file fails now, in one line (``fix``: more advice)."""
    from nas.storage import check_writable, location, open_existing, resolve_storage

    url = resolve_storage(args.storage)
    storage = open_existing(url)
    names = sorted(s.study_name for s in storage.get_all_studies())
    if args.name not in names:
        raise NasError(
            f"no study {shown(args.name)} in {location(url)}; studies there: "
            f"{_names(names)} (pass --storage for another database)"
        )
    if writes:
        check_writable(url, fix)
    return optuna.load_study(study_name=args.name, storage=storage)


def _names(names: list[str], limit: int = 10) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown(n) for n in names[:limit]) + more


def status_command(args: argparse.Namespace) -> int:
    from nas.preflight import memory_report
    from nas.study import failure_reasons, state_counts
    from nas.summary import front_text, summarize

    study = _load(args)
    print(
        f"study {study.study_name}: objectives {study.metric_names} "
        f"({', '.join(d.name.lower() for d in study.directions)})"
    )
    for state, count in sorted(state_counts(study).items()):
        print(f"  {state:<22} {count}")
    reasons = failure_reasons(study)
    if reasons:
        print("failures: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
    for line in memory_report(study):
        print(line)
    print(front_text(summarize(study)))
    return 0


def list_command(args: argparse.Namespace) -> int:
    from nas.storage import location, open_existing, resolve_storage

    url = resolve_storage(args.storage)
    summaries = optuna.get_all_study_summaries(open_existing(url))
    if not summaries:
        print(f"no studies in {location(url)}")
    for s in summaries:
        print(
            f"{s.study_name}  trials={s.n_trials}  "
            f"directions={[d.name.lower() for d in s.directions]}"
        )
    return 0


def front_command(args: argparse.Namespace) -> int:
    from nas.front import deltas
    from nas.summary import front_text, summarize

    study = _load(args, writes=args.test)  # --test stores the scores in the study
    if args.test:
        score_on_test(study, args.storage, args.artifact_root)
    summary = summarize(study)
    metric, baseline, picks = summary.metric, summary.baseline, summary.picks
    if args.json:
        import json

        def confirmed(trial: int) -> dict[str, object] | None:
            c = summary.confirmed.get(trial)
            if c is None:
                return None
            return {"seeds": list(c.seeds), "selection": c.selection, "test": c.test}

        rows = [(p, *deltas(p, baseline)) for p in summary.front]
        print(
            json.dumps(
                {
                    "metric": metric,
                    "baseline": baseline
                    and {
                        **baseline.__dict__,
                        "test": summary.test.get(baseline.trial),
                        "confirmed": confirmed(baseline.trial),
                    },
                    "teacher": summary.teacher,
                    "front": [
                        {
                            **p.__dict__,
                            "delta_metric": dm,
                            "delta_params_pct": dp,
                            "test": summary.test.get(p.trial),
                            "confirmed": confirmed(p.trial),
                        }
                        for p, dm, dp in rows
                    ],
                    "picks": {k: v and v.__dict__ for k, v in picks.__dict__.items()},
                },
                indent=2,
            )
        )
        return 0
    print(front_text(summary))
    if not summary.test and summary.front:
        print(f"(no test scores yet: nas study front {study.study_name} --test scores the front)")
    return 0


def confirm_command(args: argparse.Namespace) -> int:
    from nas.export import select_trials
    from nas.search import confirm_study

    study = _load(args)
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
    from nas.summary import front_text, summarize

    print(front_text(summarize(study)))
    return code


def score_on_test(study: optuna.Study, storage: str | None, artifact_root: str | None) -> None:
    """Score the front's students (and the teacher) on the test split, if not done yet."""
    from nas.config import from_snapshot
    from nas.holdout import score_front
    from nas.objective import prepare

    config = from_snapshot(study.user_attrs.get("config"), f"study '{study.study_name}'")
    prepared = prepare(config, progress)
    score_front(study, prepared, progress, artifact_root)


def report_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nas.report import write_report
    from nas.study import resolve_storage

    study = _load(args)
    out = Path(args.out)
    summary = write_report(study, out, resolve_storage(args.storage))
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, opens offline): "
        f"{len(summary.rows)} trials, {len(summary.front)} on the feasible front"
    )
    return 0
