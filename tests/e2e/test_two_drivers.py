"""Two ``nas study run`` processes on one study (PostgreSQL, and one SQLite file): nothing lost,
nothing run twice, the total kept within its documented bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support.cli_run import REPO
from support.servers import POSTGRES

from nas.study.drivers import finished_count, heartbeats
from nas.study.record import REASON

N_TRIALS = 6
DRIVERS = 2


def start(study_file: Path, url: str, log: Path) -> subprocess.Popen[str]:
    """One driver, one local Ray, one worker; its own process group, stderr to ``log``."""
    command = [sys.executable, "-m", "nas", "study", "run", str(study_file)]
    with open(log, "w") as out:
        return subprocess.Popen(
            [*command, "--storage", url, "--workers", "1"],
            cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=out,
            text=True,
        )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_two_drivers_on_one_study(
    tiny_study: Callable[..., Path], name: str, tmp_path: Path, backend: str
) -> None:
    url = POSTGRES if backend == "postgresql" else f"sqlite:///{tmp_path / 'nas.db'}"
    study_file = tiny_study(name=name, n_trials=N_TRIALS)
    logs = [tmp_path / f"driver-{i}.log" for i in range(DRIVERS)]
    drivers = [start(study_file, url, log) for log in logs]
    try:
        codes = [d.wait(timeout=600) for d in drivers]
    finally:
        for d in drivers:
            if d.poll() is None:
                os.killpg(d.pid, signal.SIGKILL)
    stderr = "\n".join(log.read_text()[-3000:] for log in logs)
    assert codes == [0] * DRIVERS, stderr

    study = optuna.load_study(study_name=name, storage=url)
    trials = study.trials
    for t in trials:  # nothing left behind, every failure has its reason
        assert t.state == TrialState.COMPLETE or (
            t.state == TrialState.FAIL and t.user_attrs.get(REASON)
        ), (t.number, t.state, t.user_attrs)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert len([t for t in trials if t.user_attrs.get("baseline")]) == 1
    assert not [t for t in trials if t.user_attrs.get(REASON) == "orphaned"]
    shapes = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(shapes)) == len(shapes), "a params set ran twice"
    # each driver stops asking once finished + running (anyone's) reaches the total; reading
    # and asking are two steps, so the other driver may add one: at most N + DRIVERS - 1
    assert N_TRIALS <= finished_count(study) <= N_TRIALS + DRIVERS - 1, stderr
    owners = {t.user_attrs["driver"] for t in trials}
    assert len(owners) == DRIVERS, f"one driver did all the work: {owners}\n{stderr}"
    assert owners <= set(heartbeats(study))
