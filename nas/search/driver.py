"""``nas study run``: prepare once, open the study, resume it, run Ray Tune trials to the total."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage

from nas.config import StudyConfig, folder_name
from nas.errors import NasError
from nas.objectives import directions, objective_names
from nas.progress import duration
from nas.search.preflight import DriverPreflight, driver_preflight
from nas.search.word_order import record_wos
from nas.search_space import SearchSpace
from nas.study import (
    DEFAULT_ARTIFACT_ROOT,
    STORAGE_ENV,
    ArtifactRoot,
    Heartbeat,
    check_root,
    counted_trials,
    finished_count,
    mask_password,
    open_study,
    parse_root,
    recover_orphans,
    redact,
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
    score_test: bool = True  # score the front on the test split when the total is reached
    # called with the open study before any trial runs (the CLI's --warm-start enqueues there)
    on_open: Callable[[optuna.Study], None] | None = None


def run_study(
    config: StudyConfig, options: RunOptions, storage: BaseStorage, printer: Printer
) -> int:
    """Run (or resume) the study to ``options.n_trials`` finished trials in ``storage`` (opened
    by the caller from ``options.storage``, once per command). Returns an exit code."""
    from nas.trial import prepare

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.monotonic()
    prepared = prepare(config, printer)
    config = prepared.config  # thresholds resolved against the selection split
    prepared_s = time.monotonic() - started
    names = objective_names(config, prepared.task.primary_metric)
    _probe_ray(options.ray_address)  # a dead address fails before the study is touched
    root = parse_root(options.artifact_root or config.artifact_root or DEFAULT_ARTIFACT_ROOT)
    check_root(root)  # a missing bucket or credentials fail before the study is touched
    study = open_study(config, storage, names, options.storage, prepared.splits.description)
    for orphan in recover_orphans(study, root=root):
        printer(
            f"trial {orphan.number} was left RUNNING by a dead driver: FAIL orphaned, "
            "its params are queued again"
        )
    if options.on_open is not None:
        options.on_open(study)
    record_wos(study, prepared, printer)  # once per study: which family the data needs
    done = finished_count(study)
    elsewhere = counted_trials(study) - done  # RUNNING in other drivers, which are alive
    remaining = options.n_trials - done - elsewhere
    others = f", {elsewhere} running in other drivers" if elsewhere else ""
    printer(
        f"study '{config.name}' in {mask_password(options.storage)}: {done} finished{others}, "
        f"running {max(remaining, 0)} more (total {options.n_trials})"
    )
    if remaining > 0:
        preflight = driver_preflight(prepared)
        space, total = prepared.space, options.n_trials
        code = _run_ray(config, options, study, space, names, total, printer, root, preflight)
        if code:
            return code
    if options.score_test and finished_count(study) >= options.n_trials:
        from nas.search.holdout import score_front

        score_front(study, prepared, printer, options.artifact_root)
    printer(
        f"study '{config.name}': {finished_count(study)} of {options.n_trials} trials finished; "
        f"this run took {duration(time.monotonic() - started)} (data, teacher and "
        f"calibration {duration(prepared_s)})"
    )
    return 0


def _run_ray(
    config: StudyConfig,
    options: RunOptions,
    study: optuna.Study,
    space: SearchSpace,
    names: list[str],
    n_trials: int,
    printer: Printer,
    artifact_root: ArtifactRoot,
    preflight: DriverPreflight | None,
) -> int:
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")  # Ctrl-C reaches us
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune

    from nas.search.searcher import StudySearcher
    from nas.search.stopping import (
        EXIT_TERMINATED,
        StopWhenLost,
        TrialDeadlines,
        driver_limit_s,
        sigterm_interrupts,
    )
    from nas.search.worker import trainable

    if not options.verbose:  # a worker that died is one line of its trial, not Ray's traceback
        os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")

    before_ray = signal.getsignal(signal.SIGTERM)
    with hidden_from_ray(options.storage):
        _init_ray(options)
    searcher = StudySearcher(
        study,
        space,
        config,
        names,
        n_trials,
        artifact_root,
        printer,
        config.trial_timeout_s,
        preflight,
    )
    timeout = config.trial_timeout_s
    scheduler = TrialDeadlines(searcher, driver_limit_s(timeout) if timeout else float("inf"))
    resources = {"cpu": config.resources.cpu, "gpu": config.resources.gpu}
    worker_config = dataclasses.replace(config, storage=None)  # workers need no database URL
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(trainable, study_config=worker_config), resources
        ),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=-1,
            max_concurrent_trials=options.workers,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"nas-{folder_name(config.name)}",  # a name is a key, never a path
            storage_path=str(Path(config.cache_dir) / "ray"),
            stop=StopWhenLost(searcher),
            verbose=2 if options.verbose else 0,
            log_to_file=True,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    # the first heartbeat lands before the first ask
    with Heartbeat(study, printer), sigterm_interrupts(restore=before_ray) as sigterm:
        try:
            tuner.fit()
        except KeyboardInterrupt:
            how = "stopped (SIGTERM)" if sigterm.received else "interrupted (Ctrl-C)"
            searcher.fail_live("interrupted", f"the driver was {how}")
            printer(
                f"{how.split()[0]}: running trials were marked FAIL interrupted and queued "
                "again; run again to resume"
            )
            return EXIT_TERMINATED if sigterm.received else EXIT_INTERRUPTED
        finally:
            searcher.fail_live("error", "the Ray run ended before the trial reported")
            ray.shutdown()
    if searcher.lost is not None:
        raise searcher.lost
    return 0


@contextlib.contextmanager
def hidden_from_ray(url: str) -> Iterator[None]:
    """While Ray starts and registers this driver, it sees no storage password.

    Ray stores the driver's command line in its job table (readable by every client of the
    cluster), taken from ``/proc/self/cmdline`` by ``ray._private.utils.get_entrypoint_name``:
    that is wrapped to redact the URL, and ``sys.argv`` is redacted too. A local Ray's
    processes (and so its workers) inherit this process's environment: ``NAS_STORAGE`` is
    unset meanwhile (the URL is resolved already) and restored afterwards.
    """
    import ray._private.utils as ray_utils

    entrypoint = ray_utils.get_entrypoint_name
    saved = os.environ.pop(STORAGE_ENV, None)
    argv = sys.argv[:]
    sys.argv[:] = [redact(arg, url) for arg in argv]
    ray_utils.get_entrypoint_name = lambda: redact(entrypoint(), url)
    try:
        yield
    finally:
        ray_utils.get_entrypoint_name = entrypoint
        if saved is not None:
            os.environ[STORAGE_ENV] = saved


def _probe_ray(address: str | None, timeout_s: float = 5.0) -> None:
    """Ray retries a dead address for minutes; a TCP connect says at once whether it answers."""
    if not address or address == "auto":
        return
    if os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_MODE"):
        raise NasError(
            "RAY_AUTH_TOKEN is set but RAY_AUTH_MODE is not, and Ray sends no token to an "
            f"explicit address ({address}) then; set RAY_AUTH_MODE=token"
        )
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


THREAD_TIMEOUT_ENV, THREAD_TIMEOUT_S = "TUNE_FUNCTION_THREAD_TIMEOUT_S", "60"


def _init_ray(options: RunOptions) -> None:
    import ray
    from ray.exceptions import AuthenticationError

    # Without --ray-address (or RAY_ADDRESS) a search starts its own Ray instance: Ray's own
    # default would join the last `ray start` cluster on this machine, whoever started it.
    address = options.ray_address or os.environ.get("RAY_ADDRESS") or None
    level = logging.INFO if options.verbose else logging.ERROR
    # A trial stopped at a rung ends its training thread while Ray waits to reuse its actor, 2 s
    # by default (TUNE_FUNCTION_THREAD_TIMEOUT_S, Ray 2.60 FunctionTrainable.reset_config). On
    # a loaded machine the thread took longer, Tune logged "Could not re-use actor" and the next
    # trial never started (bench/pruning.py, 2026-12-03). Workers of a local Ray inherit this;
    # on a cluster set it in the nodes' environment (docs/cluster.md).
    os.environ.setdefault(THREAD_TIMEOUT_ENV, THREAD_TIMEOUT_S)
    try:
        ray.init(
            address=address or "local",
            include_dashboard=False,
            logging_level=level,
            log_to_driver=options.verbose,
            configure_logging=True,
            ignore_reinit_error=True,
        )
    except (ConnectionError, RuntimeError, ValueError, AuthenticationError) as exc:
        text = exc.message if isinstance(exc, AuthenticationError) else str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        fix = "start it with `ray start --head` or drop --ray-address to run locally"
        if address and isinstance(exc, ConnectionError | AuthenticationError):
            fix = (
                "it answers, so check the token: a cluster with token authentication needs "
                "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN set to its token (`ray get-auth-token` "
                "on the head) in this environment"
            )
        raise NasError(
            f"cannot connect to Ray at {address or 'a local Ray instance'} ({first[:200]}); {fix}"
        ) from None


def confirm_study(
    study: optuna.Study,
    trials: list[optuna.trial.FrozenTrial],
    n_seeds: int,
    url: str,
    args: Any,
    printer: Printer,
) -> int:
    """``nas study confirm``: re-train ``trials`` with ``n_seeds`` new seeds each, as the
    trials of the companion study ``NAME.confirm`` (see :mod:`nas.study.confirm`); resumable."""
    from nas.config import SamplerConfig, from_snapshot
    from nas.study import (
        CONFIRMS,
        SEED,
        config_snapshot,
        confirm_name,
        metric_names,
        missing_runs,
        new_seeds,
        study_storage,
    )

    config = from_snapshot(config_snapshot(study), f"study '{study.study_name}'")
    seeds = new_seeds(config.training.seed, n_seeds)
    name = confirm_name(study.study_name)
    storage = study_storage(study)  # opened for writing by the command (load_named_study)
    wanted = [
        optuna.study.StudyDirection[d.upper()] for d in directions(config, metric_names(study))
    ]
    with contextlib.suppress(optuna.exceptions.DuplicatedStudyError):
        storage.create_new_study(wanted, name)
    companion = optuna.load_study(study_name=name, storage=storage)
    todo = missing_runs(companion, trials, seeds)
    for trial, seed in todo:
        companion.enqueue_trial(
            dict(trial.params), user_attrs={CONFIRMS: trial.number, SEED: seed}
        )
    total = len(companion.get_trials(deepcopy=False))
    printer(
        f"confirming trials {[t.number for t in trials]} with seeds {seeds}: {len(todo)} runs "
        f"queued now, {total} in {name}"
    )
    confirm_config = dataclasses.replace(
        config, name=name, baseline=None, n_trials=total, sampler=SamplerConfig("random", 0)
    )
    options = RunOptions(
        url,
        total,
        getattr(args, "workers", None),
        getattr(args, "ray_address", None),
        False,
        getattr(args, "artifact_root", None),
        score_test=False,
    )
    return run_study(confirm_config, options, storage, printer)
