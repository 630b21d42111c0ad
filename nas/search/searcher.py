"""The Ray side of a search: the Searcher that bridges the Optuna study and Ray Tune.

Ask/tell lives in the Ray Tune driver (DESIGN decision 2): :class:`StudySearcher` asks the study
for a trial, samples it through the search space, hands the params to a Ray worker, and tells
the study the outcome — values and constraints, or FAIL with a reason. Workers need no database.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher

from nas.config import StudyConfig
from nas.errors import ArtifactRootFailed, InvalidConfig, NasError, StorageUnreachable
from nas.objectives import LATENCY_MS, PARAMS
from nas.params import shape_label
from nas.results import memory_summary
from nas.search.preflight import DriverPreflight
from nas.search.worker import ArtifactWriteError
from nas.search_space import SearchSpace
from nas.study import (
    ARTIFACT_ROOT,
    BUDGET,
    CHECKPOINT_BYTES,
    CHECKPOINT_FILES,
    CONFIRMS,
    DEVICE,
    ESTIMATE,
    GPU_IDS,
    LATENCY,
    MEMORY_KIND,
    METRIC_PREFIX,
    N_PARAMS,
    NODE,
    PEAK,
    PEAK_MB,
    REASON,
    RERUN_REASONS,
    SAMPLES_PER_S,
    SEED,
    STEPS,
    TEST_METRICS,
    TRAIN_TIME,
    ArtifactRoot,
    RungEntry,
    StoredFile,
    ask_within,
    constraint_values,
    decide_at,
    drop_artifacts,
    failure_message,
    finished_count,
    is_baseline,
    is_feasible,
    open_store,
    parse_root,
    prune_reason,
    pruned_at,
    record_files,
    record_rung,
    remove_files,
    requeue,
    rung_records,
    storage_label,
    storage_outage,
    stored_trial,
    tell_complete,
    tell_failure,
    tell_pruned,
    violation,
    with_storage_retries,
    write_user_attrs,
)

Printer = Callable[[str], None]


class StudySearcher(Searcher):
    """Bridges an Optuna study and Ray Tune; stops asking once the study holds ``n_trials``
    (finished and running, of every driver: ``drivers.counted_trials``).

    A trial leaves ``live`` only once its outcome is committed. A storage outage while telling
    is retried (``study.with_storage_retries``); if the storage stays unreachable, ``lost`` holds
    the error, every trial stays RUNNING (the next driver's orphan step re-queues them) and
    ``nas.search.stopping`` ends the run.
    """

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
        self.overdue: dict[str, str] = {}  # Ray trial id -> why the driver stopped its worker
        self.lost: NasError | None = None  # set when an outcome cannot be recorded
        self.pruned: dict[str, Pruned] = {}  # Ray trial id -> the rung it was stopped at

    def __getstate__(self) -> dict[str, Any]:
        """What Ray pickles into its experiment folder (tuner.pkl): no study, no trials, no
        storage URL, so no database password, and no prepared data (the pre-flight's); nas
        resumes from the database, never from Ray."""
        state = self.__dict__.copy()
        state.update(
            study=None,
            live={},
            pruned={},
            preflight=None,
            config=dataclasses.replace(self.config, storage=None),
        )
        return state

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.lost is not None:
            return Searcher.FINISHED  # type: ignore[return-value]  # Ray's documented sentinel
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

    def on_rung(self, trial_id: str, payload: str) -> bool:
        """A rung's evaluation arrived (JSON of ``nas.trial.RungResult``): record it on the
        trial, then rank it against every trial that reached the rung (MO-ASHA,
        ``nas.study.decide_at``). Returns whether the trial continues; on False the scheduler
        stops it and :meth:`on_trial_complete` tells the study PRUNED. Nobody waits for the
        rung to fill. A rung that cannot be recorded or decided lets the trial continue."""
        trial = self.live.get(trial_id)
        if trial is None or self.lost is not None or trial_id in self.overdue:
            return True
        report = json.loads(payload)
        rung, fraction = int(report["rung"]), report["step"] / report["total_steps"]
        what = f"trial {trial.number} at rung {rung}"
        try:
            values = rung_values(self.objective_names, report)
            constraints = constraint_values(self.config, report["task"])

            def record() -> list[RungEntry]:
                record_rung(self.study, trial, rung, fraction, values, constraints)
                return rung_records(self.study, rung)

            entries = with_storage_retries(record, self.study, what, self.printer)
            candidate = RungEntry(
                trial.number,
                tuple(values[n] for n in self.objective_names),
                violation(constraints),
            )
            directions = [d.name.lower() for d in self.study.directions]
            decision = decide_at(self.config.pruning, rung, entries, candidate, directions)
        except StorageUnreachable as exc:
            self.lost = exc  # the run stops (StopWhenLost); the trial stays RUNNING
            return True
        except Exception as exc:  # noqa: BLE001 - a rung is advice: the trial trains on
            self.printer(f"{what}: not ranked ({type(exc).__name__}: {str(exc)[:200]})")
            return True
        if decision.proceed:
            return True
        self.pruned[trial_id] = Pruned(rung, fraction, values, constraints, decision.reason)
        return False

    def stop_overdue(self, trial_id: str, message: str) -> None:
        """The driver is stopping the trial's worker (past its deadline): it fails as timeout."""
        self.overdue[trial_id] = message

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = self.live.get(trial_id)
        if trial is None or self.lost is not None:
            return  # not ours, or the storage is gone: the trial stays RUNNING
        if trial_id in self.pruned:
            self._tell_pruned(trial_id, trial)
            return
        outcome = _outcome(result, error)
        if trial_id in self.overdue and outcome["status"] != "ok":
            outcome = {"status": "fail", "reason": "timeout", "message": self.overdue[trial_id]}
        frozen = self._record(trial, outcome)
        if self.lost is not None:
            return
        if frozen is not None and frozen.user_attrs.get(REASON) == ArtifactWriteError.reason:
            requeue(self.study, frozen)
            self.lost = ArtifactRootFailed(
                f"trial {trial.number}: {outcome['message']}; the run stops and trial "
                f"{trial.number}'s params are queued again: fix the artifact root, then run again"
            )
        del self.live[trial_id]
        self.overdue.pop(trial_id, None)
        if frozen is not None:
            self._print(frozen)

    def _record(
        self, trial: optuna.Trial, outcome: dict[str, Any]
    ) -> optuna.trial.FrozenTrial | None:
        """Tell ``outcome``, retried through storage outages. An error that is not an outage
        (bad data, a bug) fails the trial as ``error`` saying so; when even that, or the
        storage, cannot be written, ``lost`` is set and the trial stays RUNNING."""
        what = f"trial {trial.number}"
        try:
            try:
                return with_storage_retries(
                    lambda: self._tell(trial, outcome), self.study, what, self.printer
                )
            except StorageUnreachable:
                raise
            except Exception as exc:  # noqa: BLE001 - not an outage: record why, not the result
                self._discard(outcome)
                failed = {
                    "status": "fail",
                    "reason": "error",
                    "message": f"the driver could not record the outcome: {exc!r}",
                }
                frozen = with_storage_retries(
                    lambda: self._tell(trial, failed), self.study, what, self.printer
                )
                if frozen is not None:  # records written before the error name removed files
                    drop_artifacts(self.study, frozen)
                return frozen
        except Exception as exc:  # noqa: BLE001 - nothing can be written: stop the run
            self.lost = (
                exc
                if isinstance(exc, StorageUnreachable)
                else StorageUnreachable(
                    f"cannot record {what} in {storage_label(self.study)} "
                    f"({type(exc).__name__}: {str(exc)[:200]}); it stays RUNNING and the next "
                    "`nas study run` re-runs it"
                )
            )
            return None

    def _tell(
        self, trial: optuna.Trial, outcome: dict[str, Any]
    ) -> optuna.trial.FrozenTrial | None:
        """Tell ``outcome`` once, whole; the trial as stored, or None when another driver had
        ended it first."""
        attrs = {NODE: outcome.get(NODE, "?")}
        attrs.update({k: outcome[k] for k in (ESTIMATE, PEAK, BUDGET, GPU_IDS) if k in outcome})
        try:
            if outcome["status"] == "ok":
                return self._complete(trial, outcome, attrs)
            return tell_failure(self.study, trial, outcome["reason"], outcome["message"], attrs)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
            return self._settled(trial, outcome, exc)

    def _tell_pruned(self, trial_id: str, trial: optuna.Trial) -> None:
        """End a trial the scheduler stopped at a rung as PRUNED (retried through outages;
        without the storage it stays RUNNING, and the next driver re-runs it)."""
        stop = self.pruned[trial_id]

        def tell() -> optuna.trial.FrozenTrial:
            return tell_pruned(
                self.study,
                trial,
                stop.rung,
                stop.values,
                stop.reason,
                epoch_fraction=stop.epoch_fraction,
                constraints=stop.constraints,
            )

        frozen: optuna.trial.FrozenTrial | None
        try:
            frozen = with_storage_retries(tell, self.study, f"trial {trial.number}", self.printer)
        except StorageUnreachable as exc:
            self.lost = exc
            return
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
            frozen = self._settled(trial, {"status": "pruned"}, exc)  # another driver ended it
        del self.live[trial_id]
        del self.pruned[trial_id]
        if frozen is not None:
            self._print(frozen)

    def fail_live(self, reason: str, message: str) -> None:
        """End every trial still running (Ctrl-C, SIGTERM, driver shutdown) as FAIL ``reason``.
        Without the storage they stay RUNNING, and the next driver re-queues them."""
        if self.lost is not None:
            return
        failed = {"status": "fail", "reason": reason, "message": message}
        for trial_id in list(self.pruned):  # stopped at a rung: PRUNED, not re-run
            if trial_id in self.live:
                self._tell_pruned(trial_id, self.live[trial_id])
        for trial_id in list(self.live):
            trial = self.live.pop(trial_id)
            try:
                frozen = self._tell(trial, failed)
                if frozen is not None and reason in RERUN_REASONS:
                    requeue(self.study, frozen)
            except Exception as exc:
                if not storage_outage(exc):
                    raise
                self.printer(
                    f"trial {trial.number} stays RUNNING ({storage_label(self.study)} did not "
                    f"answer: {type(exc).__name__}); the next `nas study run` re-queues it"
                )
                continue
            if frozen is not None:
                self._print(frozen)

    def _settled(
        self, trial: optuna.Trial, outcome: dict[str, Any], exc: Exception
    ) -> optuna.trial.FrozenTrial | None:
        """The trial was finished when told. By this driver (a commit that succeeded although
        its answer was lost, then retried): the stored trial. By another driver (it judged this
        one dead: only ever FAIL orphaned): the result is dropped and its files removed. A
        trial still RUNNING means another error: ``exc`` is raised again."""
        stored = stored_trial(self.study, trial)
        if not stored.state.is_finished():
            raise exc
        if stored.state == optuna.trial.TrialState.COMPLETE or (
            stored.user_attrs.get(REASON) != "orphaned"
        ):
            return stored
        self.printer(
            f"trial {trial.number} was ended by another driver ({stored.state.name} "
            f"{stored.user_attrs.get(REASON, '')}) before its result came; the result is dropped"
        )
        self._discard(outcome)
        return None

    def _complete(
        self, trial: optuna.Trial, outcome: dict[str, Any], attrs: dict[str, Any]
    ) -> optuna.trial.FrozenTrial:
        """Tell the values and record the checkpoint; a trial that fails here instead has its
        stored files removed, so no FAIL trial holds (or leaks) a checkpoint."""
        from nas.trial import Metrics

        files = _files(outcome)
        metrics = Metrics(**outcome["metrics"])
        try:
            values = [metrics.value(n) for n in self.objective_names]
        except KeyError as exc:
            self._discard(outcome)
            return tell_failure(self.study, trial, "error", f"missing metric {exc}", attrs)
        if not all(math.isfinite(v) for v in values):
            self._discard(outcome)
            return tell_failure(
                self.study, trial, "nan_loss", f"non-finite objective values {values}", attrs
            )
        # First where the files are: a tell cut off after this leaves a RUNNING trial whose
        # files the orphan step (drivers.recover_orphans) can find and remove.
        write_user_attrs(
            self.study,
            trial,
            {
                ARTIFACT_ROOT: outcome["artifact_root"],
                CHECKPOINT_FILES: {f.filename: f.artifact_id for f in files},
            },
        )
        record_files(trial, files)
        attrs.update({f"{METRIC_PREFIX}{k}": v for k, v in metrics.task.items()})
        if "test" in metrics.extra:
            attrs[TEST_METRICS] = metrics.extra["test"]
        attrs.update(
            {
                N_PARAMS: metrics.params,
                TRAIN_TIME: metrics.train_time_s,
                SAMPLES_PER_S: metrics.samples_per_s,
                PEAK_MB: metrics.peak_memory_mb,
                MEMORY_KIND: metrics.memory_kind,
                STEPS: metrics.steps,
                DEVICE: metrics.device,
                LATENCY: metrics.latency_ms,
                CHECKPOINT_BYTES: sum(f.size for f in files),
            }
        )
        constraints = constraint_values(self.config, metrics.task)
        return tell_complete(self.study, trial, values, constraints, attrs)

    def _discard(self, outcome: dict[str, Any]) -> None:
        files = _files(outcome)
        if files:
            remove_files(open_store(parse_root(outcome["artifact_root"])), files)

    def _print(self, trial: optuna.trial.FrozenTrial) -> None:
        try:
            count = f"{finished_count(self.study)}/{self.n_trials}"
        except Exception:  # noqa: BLE001 - the outcome is recorded; the count is only shown
            count = f"?/{self.n_trials}"
        from nas.progress import duration

        line = trial_line(trial, self.objective_names, count)
        start, end = trial.datetime_start, trial.datetime_complete
        if start is not None and end is not None:  # the trial's wall time, start to tell
            line += f" in {duration((end - start).total_seconds())}"
        self.printer(line)


@dataclasses.dataclass(frozen=True)
class Pruned:
    """Where and why the driver stopped a trial, until the study is told."""

    rung: int
    epoch_fraction: float
    values: dict[str, float]  # the objective values at the rung, by name
    constraints: dict[str, float]
    reason: str


def rung_values(objective_names: list[str], report: dict[str, Any]) -> dict[str, float]:
    """The objective values of a rung's report (``nas.trial.RungResult.as_dict()``) by name:
    the task's metrics, the parameter count, the latency.

    Raises:
        KeyError: an objective the report does not hold; ValueError: a non-finite value.
    """
    values = {}
    for name in objective_names:
        if name == PARAMS:
            value = float(report["params"])
        elif name == LATENCY_MS:
            if report.get("latency_ms") is None:
                raise KeyError("latency_ms was not measured at the rung")
            value = float(report["latency_ms"])
        else:
            value = float(report["task"][name])
        if not math.isfinite(value):
            raise ValueError(f"{name} = {value} at the rung")
        values[name] = value
    return values


def _files(outcome: dict[str, Any]) -> list[StoredFile]:
    return [StoredFile(**f) for f in outcome.get("artifacts", [])]


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
    shape = shape_label(trial.params)
    tag = " baseline" if is_baseline(trial) else ""
    memory = memory_summary(trial.user_attrs)
    memory = f" [{memory}]" if memory else ""
    if trial.state == optuna.trial.TrialState.COMPLETE and trial.values:
        vals = " ".join(
            f"{n}={_fmt(v)}" for n, v in zip(objective_names, trial.values, strict=False)
        )
        state = "COMPLETE" if is_feasible(trial) else "COMPLETE infeasible"
        return f"[{count}] trial {trial.number}{tag}: {shape} {vals} {state}{memory}"
    rung = pruned_at(trial)
    if trial.state == optuna.trial.TrialState.PRUNED:
        where = f" at rung {rung}" if rung is not None else ""
        return f"[{count}] trial {trial.number}{tag}: {shape} PRUNED{where}: {prune_reason(trial)}"
    reason = trial.user_attrs.get(REASON, "?")
    message = failure_message(trial, limit=100)
    return f"[{count}] trial {trial.number}{tag}: {shape} FAIL {reason}: {message}{memory}"


def _fmt(value: float) -> str:
    if abs(value) >= 1e4:
        return f"{value / 1e6:.2f}M"
    return f"{value:.2f}"
