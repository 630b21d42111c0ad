"""The trainable each Ray worker runs: prepare the study once per process, run one trial, write
its checkpoint into the artifact store, report one JSON outcome (``nas_outcome``).

Workers never open the study database: the driver (:mod:`nas.search.searcher`) tells it.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nas.config import StudyConfig
from nas.errors import InvalidConfig, TrialError
from nas.study import (
    BUDGET,
    ESTIMATE,
    PEAK,
    ArtifactRoot,
    StoredFile,
    open_store,
    parse_root,
    write_files,
)

_PREPARED: dict[str, Any] = {}  # per worker process: the study's data, loaded once
RUNG_RESULT = "nas_rung"  # a rung's evaluation (JSON of nas.trial.RungResult), with pruning on


# Testing aid: a worker that hangs after preparing, before its training loop (whose deadline
# check it never reaches), so that only the driver's deadline (nas.search.stopping) can end the
# trial.
FAULT_HANG_ENV = "NAS_FAULT_HANG"


class StoppedAtRung(Exception):
    """The driver stopped the trial at a rung (MO-ASHA): Ray ends the ``tune.report`` call
    with ``SystemExit``, turned into this so the trial unwinds (its temporary checkpoint folder
    removed, its memory released); :func:`trainable` then exits the thread with ``SystemExit(0)``
    and reports nothing more; the driver tells the study PRUNED."""


def report_rung(result: Any) -> None:
    """Hand a rung's evaluation (a ``nas.trial.RungResult``) to the driver, which decides; Ray
    blocks here until it does, and raises ``SystemExit`` when the decision is stop."""
    from ray import tune

    # Tune requires the searcher's metric in every result: the outcome, should this be the
    # last result of a trial that was not stopped (it never is: an outcome always follows)
    unfinished = {"status": "fail", "reason": "error", "message": "no outcome after a rung"}
    try:
        tune.report(
            {RUNG_RESULT: json.dumps(result.as_dict()), "nas_outcome": json.dumps(unfinished)}
        )
    except SystemExit:
        raise StoppedAtRung(f"stopped at rung {result.rung}") from None


class ArtifactWriteError(TrialError):
    """The worker could not write the checkpoint into the artifact store: the driver stops the
    run and queues the trial again (``ArtifactRootFailed``), since every later trial would
    fail the same way and use up the budget (the baseline first)."""

    reason = "artifact_write"


def trainable(ray_config: dict[str, Any], study_config: StudyConfig) -> None:
    """One trial on a Ray worker: run it and report a JSON outcome (never raises)."""
    from ray import tune

    from nas.trial import peak_memory_bytes, release_memory, resolve_device

    memory: dict[str, Any] = {}  # estimate, budget and peak, as they become known
    outcome: dict[str, Any]
    try:
        outcome = _train_and_store(ray_config, study_config, memory)
    except StoppedAtRung:
        outcome = {"status": "stopped"}
    except (TrialError, InvalidConfig) as exc:
        reason = exc.reason if isinstance(exc, TrialError) else "invalid_config"
        outcome = {"status": "fail", "reason": reason, "message": str(exc)}
        if reason == "oom":  # how much was allocated when it ran out
            memory[PEAK] = peak_memory_bytes(resolve_device(study_config.training.device))[0]
    except Exception as exc:  # noqa: BLE001 - any other crash is a failed trial, not a dead study
        tail = "".join(traceback.format_exception(exc)[-3:])
        outcome = {"status": "fail", "reason": "error", "message": f"{exc!r}\n{tail}"}
    if outcome["status"] != "ok":  # the handler has ended: the failed trial's frames are gone
        release_memory()  # so the next trial on this worker (or GPU) gets the memory back
    if outcome["status"] == "stopped":
        # pruned (the driver tells the study): end the thread as Ray's own stop does. A return
        # would make Ray's wrapper report a last result, which nobody reads after a stop: the
        # thread would block, and the actor could not be reused for the next trial
        raise SystemExit(0)
    outcome.update(memory, **_placement())
    tune.report({"nas_outcome": json.dumps(outcome, default=str)})


def _train_and_store(
    ray_config: dict[str, Any], config: StudyConfig, memory: dict[str, Any]
) -> dict[str, Any]:
    """Pre-flight, train, evaluate, then write the checkpoint into the artifact store."""
    from nas.search.preflight import check_fits, trial_estimate, worker_budget
    from nas.trial import prepare, resolve_device, run_trial, use_bf16

    number = int(ray_config["number"])
    key = config.source_file + config.name
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = prepare(config)
    prepared = _PREPARED[key]
    params = prepared.space.trial_params(ray_config["params"])  # Ray carries the plain dict
    device = resolve_device(config.training.device)
    estimate = trial_estimate(prepared, params, device.type, use_bf16(config.training, device))
    memory[ESTIMATE] = estimate.total
    budget = worker_budget(config.resources, device)
    if budget is not None:
        memory[BUDGET] = budget.bytes
        check_fits(estimate, budget)  # before the student is built
    root = parse_root(ray_config["artifact_root"])
    deadline = ray_config.get("deadline_s")
    if os.environ.get(FAULT_HANG_ENV) == "1":
        threading.Event().wait()  # forever: a blocked call, a deadlock
    with tempfile.TemporaryDirectory(prefix=f"nas-trial-{number}-") as tmp:
        folder = Path(tmp) / "checkpoint"
        metrics = run_trial(
            prepared,
            params,
            folder,
            provenance={"trial": number},
            deadline=None if deadline is None else time.time() + deadline,
            seed=ray_config.get("seed"),
            score_test=bool(ray_config.get("score_test")),
            on_rung=report_rung if config.pruning.enabled else None,
        )
        memory[PEAK] = metrics.peak_memory_bytes
        files = _write_checkpoint(root, folder)
    return {
        "status": "ok",
        "metrics": metrics.as_dict(),
        "artifact_root": root.url,
        "artifacts": [asdict(stored) for stored in files],
    }


def _write_checkpoint(root: ArtifactRoot, folder: Path) -> list[StoredFile]:
    try:
        return write_files(open_store(root), folder)
    except Exception as exc:  # noqa: BLE001 - OSError, botocore errors...: one message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactWriteError(
            f"cannot write the checkpoint to the artifact root {root} ({first[:300]}); "
            "nothing was recorded. Every node needs write access to the root (a shared "
            "folder, or S3 credentials in its environment)"
        ) from exc


def _placement() -> dict[str, Any]:
    """Where the trial ran: the Ray node id, and the GPU ids Ray gave it (fractions share)."""
    try:
        import ray

        context = ray.get_runtime_context()
        gpus = context.get_accelerator_ids().get("GPU", [])
        return {"node": str(context.get_node_id()), "gpu_ids": [str(g) for g in gpus]}
    except Exception:  # noqa: BLE001 - outside Ray (tests) there is no node
        return {"node": "local", "gpu_ids": []}
