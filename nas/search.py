"""``nas study run``: prepare once, open the study, resume it, run Ray Tune trials to the total."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import optuna

from nas.config import StudyConfig
from nas.errors import NasError
from nas.search_space import SearchSpace
from nas.study import (
    enqueue_baseline,
    finished_count,
    mask_password,
    open_storage,
    open_study,
    recover_orphans,
)

Printer = Callable[[str], None]
EXIT_INTERRUPTED = 130


@dataclasses.dataclass(frozen=True)
class RunOptions:
    storage: str
    n_trials: int
    workers: int | None = None  # None: as many as the Ray resources fit
    ray_address: str | None = None
    verbose: bool = False
    artifact_root: str | None = None  # None: the config's, then .nas/artifacts


def run_study(config: StudyConfig, options: RunOptions, printer: Printer) -> int:
    """Run (or resume) the study to ``options.n_trials`` finished trials. Returns an exit code."""
    from nas.objective import objective_names, prepare

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prepared = prepare(config, printer)  # bad input fails here, before the study is touched
    if config.baseline:
        prepared.space.validate(config.baseline, where=f"{config.source_file}: baseline")
    names = objective_names(config, prepared.task)
    storage = open_storage(options.storage)
    _probe_ray(options.ray_address)  # a dead address fails before the study is touched
    study = open_study(config, storage, names, options.storage, prepared.splits.description)
    for orphan in recover_orphans(study):
        printer(
            f"trial {orphan.number} was left RUNNING by a dead driver: FAIL orphaned, "
            "its params are queued again"
        )
    done = finished_count(study)
    remaining = options.n_trials - done
    printer(
        f"study '{config.name}' in {mask_password(options.storage)}: {done} finished, "
        f"running {max(remaining, 0)} more (total {options.n_trials})"
    )
    if remaining <= 0:
        return 0
    enqueue_baseline(study, config.baseline)
    return _run_ray(config, options, study, prepared.space, names, remaining, printer)


def _run_ray(
    config: StudyConfig,
    options: RunOptions,
    study: optuna.Study,
    space: SearchSpace,
    names: list[str],
    budget: int,
    printer: Printer,
) -> int:
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C reaches us
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune

    from nas.runner import StudySearcher, trainable

    root = options.artifact_root or config.artifact_root or ".nas/artifacts"
    artifact_root = Path(root).resolve()
    artifact_root.mkdir(parents=True, exist_ok=True)
    _init_ray(options)
    searcher = StudySearcher(
        study,
        space,
        config,
        names,
        budget,
        artifact_root,
        printer,
        config.trial_timeout_s,
    )
    resources = {"cpu": config.resources.cpu, "gpu": config.resources.gpu}
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, study_config=config), resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=-1,
            max_concurrent_trials=options.workers,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"nas-{config.name}",
            storage_path=str(Path(config.cache_dir) / "ray"),
            verbose=2 if options.verbose else 0,
            log_to_file=True,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    try:
        tuner.fit()
    except KeyboardInterrupt:
        searcher.fail_live("interrupted", "the driver was interrupted (Ctrl-C)")
        printer("interrupted: running trials were marked FAIL interrupted; run again to resume")
        return EXIT_INTERRUPTED
    finally:
        searcher.fail_live("error", "the Ray run ended before the trial reported")
        ray.shutdown()
    return 0


def _probe_ray(address: str | None, timeout_s: float = 5.0) -> None:
    """Ray retries a dead address for minutes; a TCP connect says at once whether it answers."""
    if not address or address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise NasError(
            f"--ray-address {address!r} must be HOST:PORT (e.g. 10.0.0.5:6379), "
            "ray://HOST:PORT or auto"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise NasError(
            f"Ray at {address} does not answer ({exc.strerror or exc}); start the "
            "head with `ray start --head` or drop --ray-address to run locally"
        ) from None


def _init_ray(options: RunOptions) -> None:
    import ray

    level = logging.INFO if options.verbose else logging.ERROR
    try:
        ray.init(
            address=options.ray_address,
            include_dashboard=False,
            logging_level=level,
            log_to_driver=options.verbose,
            configure_logging=True,
            ignore_reinit_error=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = options.ray_address or "a local Ray instance"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NasError(
            f"cannot connect to Ray at {where} ({first[:200]}); start it with "
            "`ray start --head` or drop --ray-address to run locally"
        ) from None
