"""``nas study run --ray-address`` on a real two-node Ray cluster with token authentication.

Both nodes run on this machine (``ray start --head`` and ``ray start --address``), each in its
own session, with its own temp dir, HOME and token, so that stopping them touches no other Ray
instance on the machine (``ray stop`` would kill every Ray process of the machine). Each node
has one CPU and one (declared) GPU: two concurrent trials must land on different nodes, and a
trial's ``gpu: 0.5`` must reach Ray, which then hands it GPU id 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.trial import TrialState
from support.cli_run import assert_usage_error, run_nas

RAY = str(Path(sys.executable).parent / "ray")
NODES_SCRIPT = """
import json, sys, time
import ray
ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False)
deadline = time.time() + 90
while True:
    alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    if len(alive) >= int(sys.argv[2]) or time.time() > deadline:
        break
    time.sleep(0.5)
print(json.dumps(alive))
"""


@dataclass(frozen=True)
class Cluster:
    address: str  # 127.0.0.1:PORT, as a user passes it
    env: dict[str, str]  # RAY_AUTH_MODE=token, RAY_AUTH_TOKEN, HOME without ~/.ray
    node_ids: list[str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``ray start ... --block`` as the leader of a new session: every Ray process it starts
    (GCS, raylet, workers) stays in that session."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [RAY, "start", *args, "--block"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_node(node: subprocess.Popen[bytes]) -> None:
    """SIGTERM to ``ray start --block`` stops its processes; what is left of its session after
    a grace period is killed by pid. Nothing outside the session is touched."""
    if node.poll() is None:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    deadline = time.time() + 10
    while session_pids(node.pid) and time.time() < deadline:
        time.sleep(0.5)
    for pid in session_pids(node.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def session_pids(sid: int) -> list[int]:
    pids = []
    for pid in psutil.pids():
        try:
            if os.getsid(pid) == sid:
                pids.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return pids


def alive_nodes(address: str, env: dict[str, str], count: int) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", NODES_SCRIPT, address, str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # short: Ray's Unix socket paths under the temp dir must fit in 107 bytes
    temp_dir = tempfile.mkdtemp(prefix="nasray-", dir="/tmp")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "1"]
    common += ["--temp-dir", temp_dir]
    nodes = []
    try:
        head_args = ["--head", "--port", str(port), "--include-dashboard", "false", *common]
        nodes.append(start_node(head_args, env, tmp_path / "head.log"))
        address = f"127.0.0.1:{port}"
        alive_nodes(address, env, 1)
        nodes.append(start_node(["--address", address, *common], env, tmp_path / "worker.log"))
        node_ids = alive_nodes(address, env, 2)
        assert len(node_ids) == 2, (tmp_path / "worker.log").read_text()[-3000:]
        yield Cluster(address, env, node_ids)
    finally:
        for node in reversed(nodes):
            stop_node(node)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_trials_spread_over_both_nodes_with_token_auth(
    tiny_study, cluster: Cluster, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study_file = tiny_study(n_trials=4, resources={"cpu": 1, "gpu": 0.5})
    result = run_nas(
        "study",
        "run",
        str(study_file),
        "--storage",
        url,
        "--ray-address",
        cluster.address,
        "--workers",
        "2",
        env=cluster.env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name="tiny", storage=url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    nodes = {t.user_attrs["node"] for t in trials}
    assert nodes == set(cluster.node_ids)  # both nodes ran trials, and only they did
    assert all(t.user_attrs["gpu_ids"] == ["0"] for t in trials)  # gpu: 0.5 reached Ray
    assert all(t.user_attrs["checkpoint_files"] for t in trials)

    # the token is required: the same run without it is a one-line error naming the fix
    no_token: dict[str, str | None] = {**cluster.env, "RAY_AUTH_TOKEN": None}
    again = tiny_study(name="again", n_trials=1)
    result = run_nas(
        "study",
        "run",
        str(again),
        "--storage",
        url,
        "--ray-address",
        cluster.address,
        env=no_token,
    )
    assert_usage_error(result, cluster.address, "RAY_AUTH_TOKEN", "RAY_AUTH_MODE=token")
    no_mode: dict[str, str | None] = {**cluster.env, "RAY_AUTH_MODE": None}
    result = run_nas(
        "study",
        "run",
        str(again),
        "--storage",
        url,
        "--ray-address",
        cluster.address,
        env=no_mode,
    )
    assert_usage_error(result, "RAY_AUTH_TOKEN is set but RAY_AUTH_MODE is not")
