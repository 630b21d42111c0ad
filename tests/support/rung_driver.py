"""A driver process that prunes trials at a rung, for the resume and SIGKILL tests.

Run as a script (``PYTHONPATH=tests python tests/support/rung_driver.py STUDY_FILE URL ROOT
MARKER STOP``). It is the driver side of ``nas study run`` without Ray: the real
:class:`~nas.search.searcher.StudySearcher` and :class:`~nas.search.stopping.TrialDeadlines` on
the study ``nas.study.open_study`` opens, with a heartbeat, fed what workers report (rungs
and outcomes made by hand: :func:`rung_result`, ``support.fake_outcomes.fake_result``).

It runs trial 0 (the baseline) through rung 0 to COMPLETE and prunes trials 1 and 2 at rung 0
(:data:`FIRST_RUNGS`), then asks trial 3 and reports its rung 0. ``STOP`` says what happens
then; every mode but ``exit`` writes ``MARKER`` once it is there:

- ``wait``: trial 3 ranks first and continues; the driver blocks until a line on stdin, then
  completes trial 3 and exits 0 (a second driver works meanwhile).
- ``in_record``: blocks inside the SQL transaction that writes trial 3's ``rung:0``, after
  the INSERT, before the commit.
- ``before_decision``: the record is committed; blocks where MO-ASHA decides.
- ``in_tell``: trial 3 is dominated and stopped; blocks in ``tell_pruned`` with ``pruned_rung``
  and ``prune_reason`` written, before the trial's state becomes PRUNED.

The test SIGKILLs the blocked ones.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ray.tune.experiment import Trial
from sqlalchemy import event

from nas.config import load_study
from nas.search.searcher import StudySearcher
from nas.search.stopping import TrialDeadlines
from nas.search.worker import RUNG_RESULT
from nas.search_space import load_search_space
from nas.study import Heartbeat, open_study
from nas.study.storage import open_storage
from support.fake_outcomes import fake_result

NAMES = ["exact", "params"]
# (exact, params) at rung 0 of trials 0, 1, 2; trial 0 dominates the others (eta 2)
FIRST_RUNGS = [(70.0, 1000), (60.0, 2000), (55.0, 3000)]
TRIAL_0_EXACT = 72.0  # trial 0's final exact match
BEST = (90.0, 500)  # trial 3's rung 0 in ``wait`` mode: dominates every other
DOMINATED = (52.0, 4000)  # trial 3's rung 0 in the kill modes
STEP, TOTAL_STEPS = 2, 18  # where rung 0 is


def rung_result(rung: int, exact: float, params: int) -> dict[str, Any]:
    """What a worker reports at a rung (``nas.search.worker.report_rung``)."""
    report = {"rung": rung, "step": STEP, "total_steps": TOTAL_STEPS, "task": {"exact": exact}}
    report.update(params=params, latency_ms=None)
    return {RUNG_RESULT: json.dumps(report), "nas_outcome": "{}"}


def ray_trial(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status=Trial.RUNNING, temporary_state=None)


def searcher_for(study_file: Path, url: str, root: Path) -> StudySearcher:
    """The searcher a ``nas study run`` of ``study_file`` on ``url`` would make."""
    config = load_study(study_file)
    study = open_study(config, open_storage(url), NAMES, url)
    space = load_search_space(config.search_space)
    return StudySearcher(study, space, config, NAMES, config.n_trials, root, print)


def block(marker: Path) -> None:
    marker.write_text("there")
    while True:
        time.sleep(60)


def arm(stop: str, searcher: StudySearcher, marker: Path) -> None:
    """Make the driver block (and write ``marker``) at the point ``stop`` names."""
    study = searcher.study
    if stop == "in_record":
        engine = getattr(study._storage, "_backend", study._storage).engine

        def after(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
            if statement.startswith("INSERT INTO trial_user_attributes") and "rung:0" in str(
                params
            ):
                block(marker)

        event.listen(engine, "after_cursor_execute", after)
    elif stop == "before_decision":
        import nas.search.searcher

        nas.search.searcher.decide_at = lambda *args, **kwargs: block(marker)  # type: ignore[assignment]
    elif stop == "in_tell":
        study.tell = lambda *args, **kwargs: block(marker)  # type: ignore[method-assign]


def main(study_file: str, url: str, root: str, marker: str, stop: str) -> int:
    searcher = searcher_for(Path(study_file), url, Path(root))
    scheduler = TrialDeadlines(searcher, float("inf"))
    with Heartbeat(searcher.study, print):
        for i, (exact, params) in enumerate(FIRST_RUNGS):
            trial_id = f"t{i}"
            assert searcher.suggest(trial_id) is not None
            result = rung_result(0, exact, params)
            decision = scheduler.on_trial_result(None, ray_trial(trial_id), result)
            if i == 0:
                assert decision == "CONTINUE", decision
                result = fake_result(Path(root), exact=TRIAL_0_EXACT)
            searcher.on_trial_complete(trial_id, result)
        assert searcher.suggest("t3") is not None
        arm(stop, searcher, Path(marker))
        exact, params = BEST if stop == "wait" else DOMINATED
        result = rung_result(0, exact, params)
        decision = scheduler.on_trial_result(None, ray_trial("t3"), result)
        if stop != "wait":
            searcher.on_trial_complete("t3", result)  # in_tell blocks here
            return 1  # the other modes never get here
        assert decision == "CONTINUE", decision
        Path(marker).write_text("there")
        sys.stdin.readline()
        searcher.on_trial_complete("t3", fake_result(Path(root), exact=91.0))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
