"""The Ray side of a search: a Searcher that bridges the Optuna study, and the trial trainable.

Ask/tell lives in the Ray Tune driver (DESIGN decision 2): :class:`StudySearcher` asks the study
for a trial, samples it through the search space, hands the params to a Ray worker, and tells
the study the outcome — values and constraints, or FAIL with a reason. Workers need no database.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher

from nas.artifacts import (
    ARTIFACT_ROOT,
    CHECKPOINT_FILES,
    ArtifactRoot,
    StoredFile,
    open_store,
    parse_root,
    record_files,
    remove_files,
    write_files,
)
from nas.config import StudyConfig
from nas.confirm import CONFIRMS, SEED, TEST_METRICS
from nas.drivers import ask_within, finished_count, requeue
from nas.errors import InvalidConfig, TrialError
from nas.preflight import BUDGET, ESTIMATE, PEAK, DriverPreflight, memory_summary
from nas.search_space import SearchSpace
from nas.study import (
    BASELINE_TAG,
    REASON,
    RERUN_REASONS,
    constraint_values,
    tell_complete,
    tell_failure,
)

Printer = Callable[[str], None]
_PREPARED: dict[str, Any] = {}  # per worker process: the study's data, loaded once


class ArtifactWriteError(TrialError):
    """The worker could not write the checkpoint into the artifact store."""


def trainable(ray_config: dict[str, Any], study_config: StudyConfig) -> None:
    """One trial on a Ray worker: run it and report a JSON outcome (never raises)."""
    from ray import tune

    from nas.train import peak_memory_bytes, release_memory, resolve_device

    memory: dict[str, Any] = {}  # estimate, budget and peak, as they become known
    outcome: dict[str, Any]
    try:
        outcome = _train_and_store(ray_config, study_config, memory)
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
    outcome.update(memory, **_placement())
    tune.report({"nas_outcome": json.dumps(outcome, default=str)})


def _train_and_store(
    ray_config: dict[str, Any], config: StudyConfig, memory: dict[str, Any]
) -> dict[str, Any]:
    """Pre-flight, train, evaluate, then write the checkpoint into the artifact store."""
    from nas.objective import prepare, run_trial
    from nas.preflight import check_fits, trial_estimate, worker_budget
    from nas.train import resolve_device, use_bf16

    number, params = int(ray_config["number"]), ray_config["params"]
    key = config.source_file + config.name
    if key not in _PREPARED:
        _PREPARED.clear()
        _PREPARED[key] = prepare(config)
    prepared = _PREPARED[key]
    device = resolve_device(config.training.device)
    estimate = trial_estimate(prepared, params, device.type, use_bf16(config.training, device))
    memory[ESTIMATE] = estimate.total
    budget = worker_budget(config.resources, device)
    if budget is not None:
        memory[BUDGET] = budget.bytes
        check_fits(estimate, budget)  # before the student is built
    root = parse_root(ray_config["artifact_root"])
    deadline = ray_config.get("deadline_s")
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


class StudySearcher(Searcher):
    """Bridges an Optuna study and Ray Tune; stops asking once the study holds ``n_trials``
    (finished and running, of every driver: ``drivers.counted_trials``)."""

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        config: StudyConfig,
        objective_names: list[str],
        n_trials: int,
        artifact_root: ArtifactRoot | str | Path,
        printer: Printer,
        deadline_s: float | None = None,
        preflight: DriverPreflight | None = None,
    ) -> None:
        super().__init__(metric="nas_outcome", mode="max")
        self.study, self.space, self.config = study, space, config
        self.objective_names = objective_names
        self.n_trials = n_trials
        root = artifact_root
        self.root = root if isinstance(root, ArtifactRoot) else parse_root(root)
        self.printer = printer
        self.deadline_s = deadline_s
        self.preflight = preflight
        self.live: dict[str, optuna.Trial] = {}

    def __getstate__(self) -> dict[str, Any]:
        """What Ray pickles into its experiment folder (tuner.pkl): no study, no trials, no
        storage URL, so no database password; nas resumes from the database, never from Ray."""
        state = self.__dict__.copy()
        state.update(study=None, live={}, config=dataclasses.replace(self.config, storage=None))
        return state

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        while (trial := ask_within(self.study, self.n_trials)) is not None:
            self.live[trial_id] = trial  # from here on Ctrl-C (fail_live) ends it as interrupted
            try:
                params = self.space.suggest(trial)
            except InvalidConfig as exc:
                del self.live[trial_id]
                frozen = tell_failure(self.study, trial, "invalid_config", str(exc))
                self._print(frozen)
                continue
            if self.preflight is not None:
                attrs, refusal = self.preflight.check(params)
                if refusal is not None:  # never launched; its params are not queued again
                    del self.live[trial_id]
                    frozen = tell_failure(self.study, trial, "oom_predicted", refusal, attrs)
                    self._print(frozen)
                    continue
                for key, value in attrs.items():
                    trial.set_user_attr(key, value)
            return {
                "params": params,
                "number": trial.number,
                "artifact_root": self.root.url,
                "deadline_s": self.deadline_s,
                # a confirmation run (nas study confirm): its own seed, scored on test too
                "seed": trial.user_attrs.get(SEED),
                "score_test": CONFIRMS in trial.user_attrs,
            }
        return Searcher.FINISHED  # type: ignore[return-value]  # Ray's documented sentinel

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = self.live.pop(trial_id, None)
        if trial is None:
            return
        outcome = _outcome(result, error)
        attrs = {"node": outcome.get("node", "?")}
        attrs.update({k: outcome[k] for k in (ESTIMATE, PEAK, BUDGET, "gpu_ids") if k in outcome})
        try:
            if outcome["status"] == "ok":
                frozen = self._complete(trial, outcome, attrs)
            else:
                frozen = tell_failure(
                    self.study, trial, outcome["reason"], outcome["message"], attrs
                )
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            self._taken(trial)
            self._discard(outcome, [StoredFile(**f) for f in outcome.get("artifacts", [])])
            return
        self._print(frozen)

    def fail_live(self, reason: str, message: str) -> None:
        """End every trial still running (Ctrl-C, driver shutdown) as FAIL with ``reason``."""
        for trial_id in list(self.live):
            trial = self.live.pop(trial_id)
            try:
                frozen = tell_failure(self.study, trial, reason, message)
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
                self._taken(trial)
                continue
            if reason in RERUN_REASONS:
                requeue(self.study, frozen)
            self._print(frozen)

    def _taken(self, trial: optuna.Trial) -> None:
        """Another driver ended the trial first (it judged this driver dead): drop the result.
        Any other error telling the trial is raised again."""
        stored = self.study._storage.get_trial(trial._trial_id)
        if not stored.state.is_finished():
            raise
        self.printer(
            f"trial {trial.number} was ended by another driver ({stored.state.name} "
            f"{stored.user_attrs.get(REASON, '')}) before its result came; the result is dropped"
        )

    def _complete(
        self, trial: optuna.Trial, outcome: dict[str, Any], attrs: dict[str, Any]
    ) -> optuna.trial.FrozenTrial:
        """Tell the values and record the checkpoint; a trial that fails here instead has its
        stored files removed, so no FAIL trial holds (or leaks) a checkpoint."""
        from nas.objective import Metrics

        files = [StoredFile(**f) for f in outcome.get("artifacts", [])]
        metrics = Metrics(**outcome["metrics"])
        try:
            values = [metrics.value(n) for n in self.objective_names]
        except KeyError as exc:
            self._discard(outcome, files)
            return tell_failure(self.study, trial, "error", f"missing metric {exc}", attrs)
        if not all(math.isfinite(v) for v in values):
            self._discard(outcome, files)
            return tell_failure(
                self.study, trial, "nan_loss", f"non-finite objective values {values}", attrs
            )
        attrs.update({f"metric:{k}": v for k, v in metrics.task.items()})
        if "test" in metrics.extra:
            attrs[TEST_METRICS] = metrics.extra["test"]
        attrs.update(
            params=metrics.params,
            train_time_s=metrics.train_time_s,
            samples_per_s=metrics.samples_per_s,
            peak_memory_mb=metrics.peak_memory_mb,
            memory_kind=metrics.memory_kind,
            steps=metrics.steps,
            device=metrics.device,
            latency_ms=metrics.latency_ms,
        )
        attrs[CHECKPOINT_FILES] = record_files(trial, files)
        attrs[ARTIFACT_ROOT] = outcome["artifact_root"]
        attrs["checkpoint_bytes"] = sum(f.size for f in files)
        constraints = constraint_values(self.config, metrics.task)
        return tell_complete(self.study, trial, values, constraints, attrs)

    def _discard(self, outcome: dict[str, Any], files: list[StoredFile]) -> None:
        if files:
            remove_files(open_store(parse_root(outcome["artifact_root"])), files)

    def _print(self, trial: optuna.trial.FrozenTrial) -> None:
        count = f"{finished_count(self.study)}/{self.n_trials}"
        self.printer(trial_line(trial, self.objective_names, count))


def _outcome(result: dict[str, Any] | None, error: bool) -> dict[str, Any]:
    if error or not result or "nas_outcome" not in result:
        return {
            "status": "fail",
            "reason": "error",
            "message": "the Ray worker died or raised before reporting (see --verbose)",
        }
    outcome: dict[str, Any] = json.loads(result["nas_outcome"])
    return outcome


def trial_line(trial: optuna.trial.FrozenTrial, objective_names: list[str], count: str) -> str:
    """One readable line per finished trial."""
    p = trial.params
    shape = (
        f"L{p.get('n_layers', '?')} H{p.get('n_heads', '?')} d{p.get('hidden_size', '?')} "
        f"ffn{p.get('ffn_dim', '?')}"
    )
    tag = " baseline" if trial.user_attrs.get(BASELINE_TAG) else ""
    memory = memory_summary(trial.user_attrs)
    memory = f" [{memory}]" if memory else ""
    if trial.state == optuna.trial.TrialState.COMPLETE and trial.values:
        vals = " ".join(
            f"{n}={_fmt(v)}" for n, v in zip(objective_names, trial.values, strict=False)
        )
        feasible = all(v <= 0 for v in trial.constraints.values())
        state = "COMPLETE" if feasible else "COMPLETE infeasible"
        return f"[{count}] trial {trial.number}{tag}: {shape} {vals} {state}{memory}"
    reason = trial.user_attrs.get("fail_reason", "?")
    message = str(trial.user_attrs.get("fail_message", "")).splitlines()[0][:100]
    return f"[{count}] trial {trial.number}{tag}: {shape} FAIL {reason}: {message}{memory}"


def _fmt(value: float) -> str:
    if abs(value) >= 1e4:
        return f"{value / 1e6:.2f}M"
    return f"{value:.2f}"
