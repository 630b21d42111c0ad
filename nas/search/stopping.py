"""Ending trials and runs from the driver: SIGTERM as an interrupt, trials past their deadline,
and a run whose storage is gone.

- SIGTERM (Slurm, Kubernetes, ``docker stop``) raises :class:`Terminated`, a
  ``KeyboardInterrupt``, so it takes Ctrl-C's path: running trials end as ``interrupted`` and
  are queued again, and the driver exits 143 (Ray's own handler would exit mid-shutdown).
- :class:`TrialDeadlines` is a Ray Tune scheduler that stops the worker of a trial running past
  ``trial_timeout_s`` plus a grace. The worker checks the deadline only inside its training
  loop; a worker hung anywhere else never reaches that check.
- :class:`TrialDeadlines` also stops a trial MO-ASHA prunes at a rung (pruning on): the
  searcher records the rung and decides, the scheduler returns STOP.
- :class:`StopWhenLost` ends the run once the searcher cannot record outcomes any more.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import ray
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.stopper import Stopper

from nas.search.searcher import StudySearcher
from nas.search.worker import RUNG_RESULT

EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, what a shell reports for a SIGTERM'd process
DEADLINE_GRACE_MIN_S = 10.0  # the driver's limit is the timeout plus max(this, half of it)


class Terminated(KeyboardInterrupt):
    """The driver received SIGTERM; handled as Ctrl-C is."""


class SigtermFlag:
    """Whether SIGTERM arrived: Ray turns an interrupt raised inside its blocking calls into a
    plain ``KeyboardInterrupt``, so the exception's type cannot say which signal it was."""

    received = False


@contextlib.contextmanager
def sigterm_interrupts(restore: Any) -> Iterator[SigtermFlag]:
    """While inside, the first SIGTERM raises :class:`Terminated` in the main thread; later ones
    are ignored, so the interrupt's clean-up (telling trials, stopping Ray) is not cut short.
    Enter it after ``ray.init``, which installs its own handler (``sys.exit``); ``restore``
    (the handler from before ``ray.init``) is put back on leaving."""
    flag = SigtermFlag()

    def handler(signum: int, frame: FrameType | None) -> None:
        if not flag.received:
            flag.received = True
            raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if restore is None else restore)


def driver_limit_s(trial_timeout_s: float) -> float:
    """How long the driver lets a trial run (since its worker started it, preparation
    included) before stopping the worker: the timeout, plus a grace for what follows the
    training loop (evaluation, writing the checkpoint) of half the timeout, at least 10 s."""
    return trial_timeout_s + max(DEADLINE_GRACE_MIN_S, trial_timeout_s / 2)


class TrialDeadlines(FIFOScheduler):
    """FIFO scheduling, plus: a trial RUNNING longer than ``limit_s`` on the driver's clock has
    its worker actor killed, and the searcher fails it as ``timeout``.

    Ray Tune has no per-trial wall-clock limit for a trial that reports once (a ``Stopper``
    sees only results), and a graceful stop queues behind the hung call. The scheduler is asked
    ``choose_trial_to_run`` at every step of the Tune loop, with the live trials in reach; a
    killed actor is a failed trial to Ray, which calls ``on_trial_complete(error=True)``.
    """

    def __init__(self, searcher: StudySearcher, limit_s: float) -> None:
        super().__init__()
        self.searcher, self.limit_s = searcher, limit_s
        self.started: dict[str, float] = {}  # Ray trial id -> monotonic time first seen RUNNING

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        self.enforce(tune_controller.get_live_trials(), time.monotonic())
        trial: Trial | None = super().choose_trial_to_run(tune_controller)
        return trial

    def enforce(self, trials: Any, now: float) -> list[str]:
        """Kill the workers of trials past the limit; returns their Ray trial ids."""
        stopped = []
        for trial in list(trials):
            if trial.status != Trial.RUNNING:
                continue
            ran = now - self.started.setdefault(trial.trial_id, now)
            actor = trial.temporary_state.ray_actor
            if ran <= self.limit_s or trial.trial_id in self.searcher.overdue or actor is None:
                continue
            self.searcher.stop_overdue(
                trial.trial_id,
                f"the driver stopped its worker after {ran:.0f} s without a result (limit: "
                f"trial_timeout_s plus grace, {self.limit_s:.0f} s); it never reached the "
                "training loop's deadline check",
            )
            ray.kill(actor)
            stopped.append(trial.trial_id)
        return stopped

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        """A rung's evaluation (pruning on) goes to the searcher first, which records it and
        decides (MO-ASHA); stop means STOP here. Tune asks the scheduler before the searcher
        (``TuneController._process_trial_result``) and, on STOP, calls the searcher's
        ``on_trial_complete`` with this result, not its ``on_trial_result``."""
        payload = result.get(RUNG_RESULT)
        if payload is not None and not self.searcher.on_rung(trial.trial_id, payload):
            return str(TrialScheduler.STOP)
        decision: str = super().on_trial_result(tune_controller, trial, result)
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self.started.pop(trial.trial_id, None)
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.started.pop(trial.trial_id, None)
        super().on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self.started.pop(trial.trial_id, None)
        super().on_trial_remove(tune_controller, trial)


class StopWhenLost(Stopper):
    """Stops the whole run once the searcher could not record an outcome (``lost``)."""

    def __init__(self, searcher: StudySearcher) -> None:
        self.searcher = searcher

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.searcher.lost is not None

    def stop_all(self) -> bool:
        return self.searcher.lost is not None
