"""The search service end to end: real CLI, real local Ray, real SQLite/PostgreSQL/MariaDB."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from support.cli_run import REPO, assert_usage_error
from support.cli_run import run_nas as nas

from nas.study.record import REASON, config_snapshot, named_constraints

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def server_up(url: str) -> bool:
    try:
        optuna.storages.RDBStorage(url)
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.fixture
def unique_name() -> Iterator[str]:
    """A study name no other run uses; deleted from the shared servers afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    for url in (POSTGRES, MARIADB):
        with contextlib.suppress(Exception):  # not created there, or server absent
            optuna.delete_study(study_name=name, storage=url)


def test_sqlite_study_records_everything(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    result = nas("study", "run", str(tiny_study(n_trials=4)), "--storage", url, "--workers", "2")
    assert result.returncode == 0, result.stderr
    study = load(url, "tiny")
    assert study.metric_names == ["exact", "params"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    baseline = [t for t in trials if t.user_attrs.get("baseline")]
    assert len(baseline) == 1 and baseline[0].number == 0
    for t in trials:
        assert set(named_constraints(t)) == {"exact>=50"}
        assert t.constraints["exact>=50"] == pytest.approx(50.0 - t.user_attrs["metric:exact"])
        # the list optuna-dashboard 0.21 reads (it ignores Optuna 5's named keys)
        assert t.system_attrs["constraints"] == [t.constraints["exact>=50"]]
        assert t.values[1] == t.user_attrs["params"]
        for key in (
            "metric:f1",
            "metric:HasAns_exact",
            "metric:NoAns_exact",
            "train_time_s",
            "samples_per_s",
            "peak_memory_mb",
            "node",
        ):
            assert key in t.user_attrs, key
        files = t.user_attrs["checkpoint_files"]
        assert {"model.safetensors", "config.json", "nas.json"} <= set(files)
        assert (tmp_path / "artifacts" / files["model.safetensors"]).is_file()
    assert study.user_attrs["task"] == "synthetic_qa" and config_snapshot(study) is not None
    # one line per finished trial, then the front
    assert result.stderr.count("] trial ") == 4
    # each ends with its wall time; the run ends with its total
    assert len(re.findall(r"\] trial \d.* in \d+:\d\d\n", result.stderr)) == 4
    assert "tiny': 4 of 4 trials finished; this run took " in result.stderr
    assert "Pareto front" in result.stdout
    # status and list read the same storage
    status = nas("study", "status", "tiny", "--storage", url)
    assert status.returncode == 0 and "COMPLETE" in status.stdout
    assert "tiny" in nas("study", "list", "--storage", url).stdout
    # resume: the total is reached already, nothing more runs
    again = nas("study", "run", str(tiny_study(n_trials=4)), "--storage", url)
    assert again.returncode == 0 and "running 0 more" in again.stderr
    assert len(load(url, "tiny").trials) == 4


def test_mariadb_storage(tiny_study, unique_name: str) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL runs whole searches in test_two_drivers and test_secrets; MariaDB here."""
    url = MARIADB
    if not server_up(url):
        pytest.fail(f"database server expected at {url} (see README: Development)")
    result = nas("study", "run", str(tiny_study(name=unique_name, n_trials=2)), "--storage", url)
    assert result.returncode == 0, result.stderr
    study = load(url, unique_name)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert study.trials[0].user_attrs["baseline"] is True


def test_sigkill_then_resume_loses_and_duplicates_nothing(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study_file = tiny_study(
        n_trials=4,
        data={
            "max_seq_length": 64,
            "doc_stride": 32,
            "max_query_length": 16,
            "synthetic": {"n_train": 200, "n_eval": 60, "n_test": 60, "seed": 0},
        },
    )
    driver = start_driver(study_file, url)
    try:
        complete_before = _wait_for_complete_and_running(url, "tiny", timeout=300)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started
        driver.wait()
    running = [t.number for t in load(url, "tiny").get_trials(states=(TrialState.RUNNING,))]
    assert running, "the kill should leave a trial RUNNING"
    result = nas("study", "run", str(study_file), "--storage", url)
    assert result.returncode == 0, result.stderr
    assert "left RUNNING by a dead driver" in result.stderr
    trials = load(url, "tiny").trials
    orphans = [t for t in trials if t.user_attrs.get(REASON) == "orphaned"]
    assert sorted(t.number for t in orphans) == running
    requeued = [t for t in trials if "requeued_from" in t.user_attrs]
    assert sorted(t.user_attrs["requeued_from"] for t in requeued) == running
    for orphan in orphans:
        twin = next(t for t in requeued if t.user_attrs["requeued_from"] == orphan.number)
        # the kill can land while the orphan's params are still being sampled: the re-run
        # keeps every param the orphan had and samples the rest
        assert orphan.params.items() <= twin.params.items()
    after = {t.number: t.values for t in trials if t.state == TrialState.COMPLETE}
    for number, values in complete_before.items():
        assert after[number] == values  # nothing completed was lost or changed
    finished = [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.FAIL)
        and t.user_attrs.get(REASON) != "orphaned"
    ]
    assert len(finished) == 4
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def start_driver(study_file: Path, url: str) -> subprocess.Popen[str]:
    """`nas study run` in its own process group, so a test can signal or kill all of it.

    Its stderr goes to ``driver.log`` beside the study file (a pipe nobody reads could fill).
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    log = open(study_file.parent / "driver.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "nas", "study", "run", str(study_file), "--storage", url],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )


def _wait_for_complete_and_running(url: str, name: str, timeout: float) -> dict[int, list[float]]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            trials = load(url, name).trials
        except Exception:  # noqa: BLE001 - study not created yet
            trials = []
        complete = {t.number: t.values for t in trials if t.state == TrialState.COMPLETE}
        if complete and any(t.state == TrialState.RUNNING for t in trials):
            return complete
        time.sleep(0.2)
    raise AssertionError("no COMPLETE trial with another RUNNING within the timeout")


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_write_nothing(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "nas.db"
    url = f"sqlite:///{db}"
    bad_yaml = tiny_study(name="typo")
    bad_yaml.write_text(bad_yaml.read_text() + "n_trails: 3\n")
    assert_usage_error(
        nas("study", "run", str(bad_yaml), "--storage", url), "unknown key 'n_trails'"
    )
    assert_usage_error(
        nas(
            "study",
            "run",
            str(tiny_study()),
            "--storage",
            "postgresql://nobody:secret@127.0.0.1:1/none",
        ),
        "cannot be opened",
    )
    assert (
        "secret"
        not in nas(
            "study",
            "run",
            str(tiny_study()),
            "--storage",
            "postgresql://nobody:secret@127.0.0.1:1/none",
        ).stderr
    )
    assert_usage_error(
        nas("study", "run", str(tiny_study()), "--storage", url, "--ray-address", "127.0.0.1:1"),
        "does not answer",
    )
    space = tmp_path / "space.yaml"
    space.write_text(
        (REPO / "search_spaces" / "quickstart.yaml")
        .read_text()
        .replace("choices: [2, 4]", "choices: [3, 4]")
    )
    assert_usage_error(
        nas("study", "run", str(tiny_study(search_space=str(space))), "--storage", url),
        "does not divide",
    )
    if db.exists():  # nothing above may have created a study
        assert optuna.get_all_study_summaries(url) == []
    optuna.create_study(study_name="tiny", storage=url, directions=["maximize", "maximize"])
    assert_usage_error(nas("study", "run", str(tiny_study()), "--storage", url), "exists in")
    assert len(load(url, "tiny").trials) == 0


def test_without_an_address_a_search_starts_its_own_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's default (address None) joins the last `ray start` cluster on the machine, another
    user's included; nas asks for a local instance unless an address is given."""
    import ray

    from nas.search.driver import RunOptions, _init_ray

    seen: list[object] = []
    monkeypatch.setattr(ray, "init", lambda **kwargs: seen.append(kwargs["address"]))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    _init_ray(RunOptions("sqlite://", 1))
    _init_ray(RunOptions("sqlite://", 1, ray_address="10.0.0.5:6379"))
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    _init_ray(RunOptions("sqlite://", 1))
    assert seen == ["local", "10.0.0.5:6379", "auto"]
