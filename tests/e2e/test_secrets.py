"""A storage password never leaves its URL: not in output, study attributes, exports or Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
from support.cli_run import REPO, assert_usage_error
from support.cli_run import run_nas as nas

from nas.config import load_study
from nas.study.record import config_snapshot
from nas.study.storage import mask_password

# PostgreSQL trusts 127.0.0.1 here, so it accepts any password: a real run with a secret in it
SECRET = "s3cretPW"
URL = f"postgresql+psycopg://postgres:{SECRET}%40x%3Ay@127.0.0.1:5432/test"  # s3cretPW@x:y
QUERY_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?password={SECRET}%3Aq"
# Starts a local Ray the way `nas study run` does, with the URL on its command line and in
# NAS_STORAGE, then prints what Ray holds: every field of its job table, a worker's environment
RAY_SCRIPT = """
import json, os, sys
import ray
from ray.core.generated import gcs_pb2
from nas.search.driver import RunOptions, _init_ray, hidden_from_ray

url = sys.argv[sys.argv.index("--storage") + 1]
with hidden_from_ray(url):
    _init_ray(RunOptions(url, 1))
accessor = ray._private.state.state._connect_and_get_accessor()
jobs = [str(gcs_pb2.JobTableData.FromString(raw)) for raw in accessor.get_job_table(
    skip_submission_job_info_field=False, skip_is_running_tasks_field=True)]
worker_env = ray.get(ray.remote(lambda: dict(os.environ)).remote())
entrypoints = [j["Entrypoint"] for j in ray._private.state.jobs()]
print(json.dumps({"jobs": jobs, "entrypoints": entrypoints, "worker_env": worker_env,
                  "driver_env": os.environ.get("NAS_STORAGE")}))
ray.shutdown()
"""


def files_text(folder: Path) -> str:
    return "".join(
        p.read_bytes().decode("latin-1") for p in sorted(folder.rglob("*")) if p.is_file()
    )


def test_a_search_keeps_the_password_to_itself(
    tiny_study: Callable[..., Path], name: str, tmp_path: Path
) -> None:
    study_file = tiny_study(name=name, n_trials=2, storage=URL)  # in the config: the snapshot
    run = nas("study", "run", str(study_file), "--workers", "1", "--storage", URL)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = [run.stdout, run.stderr]
    for args in (
        ("study", "status", name, "--storage", URL),
        ("study", "front", name, "--storage", URL),
        ("study", "list", "--storage", URL),
        ("study", "status", name, "--storage", QUERY_URL),
        ("storage", "check", URL),
        ("storage", "check", QUERY_URL),
        ("export", name, "--front", "--out", str(tmp_path / "front"), "--storage", URL),
    ):
        result = nas(*args)
        assert result.returncode == 0, (args, result.stderr[-2000:])
        seen += [result.stdout, result.stderr]
    missing = nas("study", "status", "nosuch", "--storage", URL)
    assert_usage_error(missing, "no study 'nosuch' in postgresql+psycopg://postgres:***@")
    seen.append(missing.stderr)

    study = optuna.load_study(study_name=name, storage=URL)
    assert config_snapshot(study)["storage"] == mask_password(URL)  # type: ignore[index]
    system = study._storage.get_study_system_attrs(study._study_id)
    seen.append(json.dumps([study.user_attrs, system], default=str))
    for trial in study.trials:
        seen.append(json.dumps([trial.user_attrs, trial.system_attrs], default=str))
    exported = files_text(tmp_path / "front")
    assert "nas.json" in {p.name for p in (tmp_path / "front").rglob("*")}
    seen.append(exported)
    ray_folder = Path(load_study(study_file).cache_dir) / "ray" / f"nas-{name}"
    assert ray_folder.is_dir()
    seen.append(files_text(ray_folder))  # Ray's record of the run: trial configs, state
    for text in seen:
        assert SECRET not in text
    assert "postgres:***@127.0.0.1" in run.stderr  # the progress line names the masked URL


def test_ray_never_sees_the_password() -> None:
    """Ray's job table (the driver's command line: any client of the cluster reads it) and a
    local Ray worker's environment (inherited from the driver) hold no password."""
    result = subprocess.run(
        [sys.executable, "-c", RAY_SCRIPT, "study", "run", "x.yaml", "--storage", URL],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "NAS_STORAGE": URL},
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    (entrypoint,) = seen["entrypoints"]
    assert f"--storage {mask_password(URL)}" in entrypoint  # the command line, redacted
    assert "NAS_STORAGE" not in seen["worker_env"]
    assert seen["driver_env"] == URL  # the driver still has it after Ray started
    for text in (json.dumps(seen["jobs"]), json.dumps(seen["worker_env"]), result.stderr):
        assert SECRET not in text
