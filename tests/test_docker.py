"""Static checks of docker/: the compose file, the Dockerfile, the `ray up` YAML, and the two
shell scripts of the image run with stand-ins for nvidia-smi and ray.

No Docker engine or compose plugin runs here, so nothing is built or started: these tests read
the files and check the properties the cluster depends on (docs/cluster.md, "Testing notes").
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
import shlex
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
NAS_SERVICES = ("dashboard", "ray-head", "ray-worker")
RAY_SERVICES = ("ray-head", "ray-worker")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL", re.I)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
HEX_SECRET = re.compile(r"\b[0-9a-f]{32,}\b")  # what `openssl rand -hex 32` writes


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return _instructions((DOCKER / "Dockerfile").read_text())


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return compose["services"][name]


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of each short-syntax volume."""
    out = []
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), f"use the short volume syntax: {entry!r}"
        source, target, *mode = entry.split(":")
        out.append((source, target, mode[0] if mode else "rw"))
    return out


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {k: str(v) for k, v in env.items()}


# ----------------------------------------------------------------------------- compose


def test_compose_has_the_services_and_volumes(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "dashboard", "ray-head", "ray-worker"}
    assert {"pgdata", "artifacts", "cache"} <= set(compose["volumes"])


def test_postgres_is_pinned_healthchecked_and_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any],
) -> None:
    pg = _service(compose, "postgres")
    image, _, tag = pg["image"].partition(":")
    assert image == "postgres" and re.match(r"^\d+\.\d+", tag), pg["image"]
    test = " ".join(pg["healthcheck"]["test"])
    assert "pg_isready" in test and "--username=nas" in test
    data = [s for s, t, _ in _mounts(pg) if t == "/var/lib/postgresql/data"]
    assert data == ["pgdata"] and "pgdata" in compose["volumes"]
    assert "ports" not in pg, "the database is reached on the compose network only"


def test_dashboard_listens_on_loopback_only_after_postgres_is_healthy(
    compose: dict[str, Any],
) -> None:
    dash = _service(compose, "dashboard")
    assert dash["ports"] and all(p.startswith("127.0.0.1:") for p in dash["ports"])
    assert dash["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert dash["command"][0] == "optuna-dashboard"
    assert "--artifact-dir=/artifacts" in dash["command"]
    assert ("artifacts", "/artifacts", "ro") in _mounts(dash)


def test_workers_reserve_nvidia_gpus_and_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = _service(compose, "ray-worker")
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    # --scale N needs containers without a fixed name or published host ports
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"][0] == "nas-ray-worker"
    assert _env(worker)["RAY_HEAD_ADDRESS"] == "ray-head:6379"
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert "healthcheck" in _service(compose, "ray-head")


def test_artifacts_and_cache_are_shared_at_the_same_paths(compose: dict[str, Any]) -> None:
    head, worker = (_mounts(_service(compose, n)) for n in RAY_SERVICES)
    # trials get the driver's absolute paths: every Ray node must see the same tree
    assert head == worker
    assert ("artifacts", "/artifacts", "rw") in head
    assert ("cache", "/workspace/.nas/cache", "rw") in head
    dash_sources = {s for s, _, _ in _mounts(_service(compose, "dashboard"))}
    assert "artifacts" in dash_sources


def test_the_head_runs_the_study_on_its_own_cluster(compose: dict[str, Any]) -> None:
    head = _service(compose, "ray-head")
    script = head["command"][-1]
    assert head["command"][:2] == ["bash", "-c"]
    assert "ray start --head --port=6379" in script
    assert "nas study run" in script
    assert "--ray-address=ray-head:6379" in script and "--artifact-root=/artifacts" in script
    assert script.index("ray start") < script.index("nas study run")
    assert head["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert head["stop_signal"] == "SIGINT"  # interrupted trials are re-run on resume
    assert head["hostname"] == "ray-head"


def test_secrets_come_from_ignored_files(compose: dict[str, Any]) -> None:
    secrets = compose["secrets"]
    assert set(secrets) == {"postgres_password", "ray_auth_token"}
    for spec in secrets.values():
        assert set(spec) == {"file"} and spec["file"].startswith("./secrets/")
        path = (DOCKER / spec["file"]).relative_to(ROOT)
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False
        ).returncode
        assert ignored == 0, f"{path} must be ignored by git"
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(path)],
            cwd=ROOT,
            capture_output=True,
            check=False,
        ).returncode
        assert tracked != 0, f"{path} is committed"


def test_services_read_each_secret_they_point_at(compose: dict[str, Any]) -> None:
    file_vars = ("POSTGRES_PASSWORD_FILE", "PGPASSWORD_FILE", "RAY_AUTH_TOKEN_PATH")
    for name, service in compose["services"].items():
        env = _env(service)
        for var in file_vars:
            if var in env:
                secret = env[var].removeprefix("/run/secrets/")
                assert env[var] == f"/run/secrets/{secret}", (name, var)
                assert secret in service["secrets"], f"{name}: {var} needs secret {secret}"


def test_no_password_or_token_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    text = (DOCKER / "compose.yaml").read_text()
    assert not URL_WITH_PASSWORD.search(text)
    assert not HEX_SECRET.search(text)
    for name, service in compose["services"].items():
        for key, value in _env(service).items():
            if SECRET_NAME.search(key):
                assert key.endswith(("_FILE", "_PATH")), f"{name}: {key} must point at a file"
                assert value.startswith("/run/secrets/"), f"{name}: {key}={value}"


def test_ray_token_authentication_stays_on(compose: dict[str, Any]) -> None:
    for name in RAY_SERVICES:
        env = _env(_service(compose, name))
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_auth_token", name
    assert "RAY_AUTH_MODE" not in _env(_service(compose, "dashboard"))


def test_nas_services_use_the_image_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    for name in NAS_SERVICES:
        service = _service(compose, name)
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        assert (DOCKER / service["build"]["context"]).resolve() == ROOT
        assert service["image"] == f"nas:{_version()}"


def _version() -> str:
    text = (ROOT / "nas" / "__init__.py").read_text()
    match = re.search(r'__version__ = "([^"]+)"', text)
    assert match
    return match.group(1)


# ----------------------------------------------------------------------------- Dockerfile


def test_base_image_is_pinned_to_an_exact_tag(dockerfile: list[tuple[str, str]]) -> None:
    froms = [args for word, args in dockerfile if word == "FROM"]
    assert len(froms) == 1
    match = re.fullmatch(r"([\w./-]+):([\w.-]+)(@sha256:[0-9a-f]{64})?", froms[0])
    assert match, f"FROM {froms[0]}: name:tag[@sha256:digest], no build args"
    assert match.group(2) != "latest" and re.search(r"\d+\.\d+", match.group(2))


def test_runs_as_a_non_root_user_set_before_the_entrypoint(
    dockerfile: list[tuple[str, str]],
) -> None:
    words = [word for word, _ in dockerfile]
    users = [(i, args) for i, (word, args) in enumerate(dockerfile) if word == "USER"]
    assert users, "no USER"
    last_index, last_user = users[-1]
    assert last_user.split(":")[0] not in ("root", "0")
    assert last_index < words.index("ENTRYPOINT")
    creates = " ".join(args for word, args in dockerfile if word == "RUN")
    assert "useradd" in creates and last_user in creates


def test_torch_and_the_cluster_extras_are_installed(dockerfile: list[tuple[str, str]]) -> None:
    runs = [args for word, args in dockerfile if word == "RUN"]
    torch = [r for r in runs if re.search(r"pip install[^&]*\btorch\b", r)]
    assert torch and re.search(r"\btorch==\d+\.\d+\.\d+\b", torch[0])
    assert "--index-url https://download.pytorch.org/whl/cu" in torch[0]
    install = next(r for r in runs if "/src[" in r)
    extras = set(re.search(r"/src\[([^\]]+)\]", install).group(1).split(","))  # type: ignore[union-attr]
    assert {"postgres", "mysql", "s3"} <= extras
    assert "--constraint /src/docker/constraints.txt" in install
    for tool in ("nas --version", "ray --version", "optuna-dashboard --version"):
        assert tool in install


def test_image_extras_exist_in_pyproject(dockerfile: list[tuple[str, str]]) -> None:
    # pip only warns about an unknown extra, so a renamed extra would silently drop a driver
    install = next(args for word, args in dockerfile if word == "RUN" and "/src[" in args)
    extras = set(re.search(r"/src\[([^\]]+)\]", install).group(1).split(","))  # type: ignore[union-attr]
    declared = _declared_extras((ROOT / "pyproject.toml").read_text())
    assert extras <= declared, f"undeclared extras: {sorted(extras - declared)}"


def _declared_extras(pyproject: str) -> set[str]:
    # (tomllib is 3.11+; nas supports 3.10) the keys of [project.optional-dependencies]
    section = pyproject.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*=", section, flags=re.M))


def test_no_secret_in_env_or_build_args(dockerfile: list[tuple[str, str]]) -> None:
    for word, args in dockerfile:
        if word in ("ENV", "ARG"):
            for token in shlex.split(args):
                name = token.split("=", 1)[0]
                assert not SECRET_NAME.search(name), f"{word} {name}"
        if word in ("COPY", "ADD"):
            assert "secrets" not in args and ".env" not in args, f"{word} {args}"


def test_copied_sources_exist_and_are_not_dockerignored(
    dockerfile: list[tuple[str, str]],
) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for word, args in dockerfile:
        if word != "COPY":
            continue
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            hit = [p for p in patterns if _dockerignored(source, p)]
            assert not hit, f"COPY {source} is excluded by .dockerignore {hit}"
    for needed in ("docker/secrets", "**/.env", ".git", ".venv", ".nas", "*.db"):
        assert needed in patterns, f".dockerignore should exclude {needed}"


def _dockerignored(path: str, pattern: str) -> bool:
    """Docker's rule in short: a pattern excludes the path it matches and all below it."""
    pattern = pattern.removeprefix("**/")
    parts = Path(path).parts
    return any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts)))


def test_entrypoint_and_scripts_are_installed(dockerfile: list[tuple[str, str]]) -> None:
    entry = next(args for word, args in dockerfile if word == "ENTRYPOINT")
    assert entry == '["nas-entrypoint"]'
    copies = [args for word, args in dockerfile if word == "COPY"]
    assert "--chmod=755 docker/entrypoint.sh /usr/local/bin/nas-entrypoint" in copies
    assert "--chmod=755 docker/ray-worker.sh /usr/local/bin/nas-ray-worker" in copies


def test_constraints_match_the_versions_tested_here() -> None:
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, _, pinned = line.partition("==")
        assert pinned, f"constraints.txt: {line} must pin with =="
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # not in this environment (an extra's driver): nothing to compare
        assert installed == pinned, (
            f"{name}: image pins {pinned}, tests run {installed}; install with "
            "pip install -c docker/constraints.txt -e '.[test]' (CI does)"
        )


def test_ci_and_the_readme_install_with_the_constraints() -> None:
    """The image, CI and a developer's setup resolve the same versions by construction."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"pip install[^\n]*-c docker/constraints\.txt -e \"\.\[test\]\"", ci)
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -c docker/constraints.txt -e ".[test]"' in readme
    refresh = (DOCKER / "refresh-constraints.sh").read_text()
    assert "docker/constraints.txt" in refresh and "torch==2.13.0" in refresh


# ----------------------------------------------------------------------------- scripts


@pytest.fixture
def fake_path(tmp_path: Path) -> dict[str, str]:
    """PATH with an nvidia-smi that lists 3 GPUs and a `ray` that prints and waits."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nprintf '0\\n1\\n2\\n'\n")
    (bin_dir / "ray").write_text(
        '#!/bin/sh\necho "ray $* gpus=${CUDA_VISIBLE_DEVICES:-unset}"\n'
        'exec sleep "${FAKE_RAY_SLEEP:-0}"\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "RAY_HEAD_ADDRESS": "ray-head:6379",
        "NAS_GPU_CLAIMS": str(tmp_path / "claims"),
    }


def _worker(env: dict[str, str], per_worker: str, sleep: float = 0) -> subprocess.Popen[str]:
    env = {**env, "NAS_GPUS_PER_WORKER": per_worker, "FAKE_RAY_SLEEP": str(sleep)}
    return subprocess.Popen(
        ["bash", str(DOCKER / "ray-worker.sh"), "--num-cpus=4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ray_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ray "):
            return line.strip()
    raise AssertionError(f"no ray line; stderr: {proc.stderr.read() if proc.stderr else ''}")


def test_scaled_workers_claim_distinct_gpus(fake_path: dict[str, str]) -> None:
    first = _worker(fake_path, "2", sleep=30)  # holds GPUs 0 and 1 while it "runs"
    try:
        line = _ray_line(first)
        assert "--num-gpus=2" in line and line.endswith("gpus=0,1")
        assert "--address=ray-head:6379" in line and "--num-cpus=4" in line
        second = _worker(fake_path, "1")
        assert _ray_line(second).endswith("gpus=2")
        assert second.wait(10) == 0  # its fake ray exits: GPU 2 is free again
        third = _worker(fake_path, "2")
        _, err = third.communicate(timeout=10)
        assert third.returncode == 1 and "wanted 2 GPU(s), 1 free of 3" in err
    finally:
        first.kill()
        first.wait()
    deadline = time.time() + 10
    while True:  # the dead replica's locks are gone with it
        again = _worker(fake_path, "3")
        out, _ = again.communicate(timeout=10)
        if again.returncode == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert again.returncode == 0 and out.strip().endswith("gpus=0,1,2")


def test_a_worker_without_a_count_offers_every_gpu(fake_path: dict[str, str]) -> None:
    proc = _worker(fake_path, "all")
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out.strip() == (
        "ray start --address=ray-head:6379 --block --disable-usage-stats --num-cpus=4 gpus=unset"
    )
    bad = _worker(fake_path, "two")
    _, err = bad.communicate(timeout=10)
    assert bad.returncode == 2 and "must be 'all' or a positive count" in err


def test_entrypoint_hands_the_password_file_to_libpq(tmp_path: Path) -> None:
    password = tmp_path / "postgres_password"
    password.write_text("p4ss w0rd\n")
    token = tmp_path / "ray_auth_token"
    token.write_text("ab" * 32 + "\n")
    env = {
        "PATH": os.environ["PATH"],
        "PGPASSWORD_FILE": str(password),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
    }
    script = str(DOCKER / "entrypoint.sh")
    run = subprocess.run(
        ["sh", script, "sh", "-c", 'printf "%s|" "$PGPASSWORD"'],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0 and run.stdout == "p4ss w0rd|"
    token.write_text("")
    empty = subprocess.run(["sh", script, "true"], env=env, capture_output=True, text=True)
    assert empty.returncode == 2 and "openssl rand -hex 32" in empty.stderr
    gone = {**env, "PGPASSWORD_FILE": str(tmp_path / "missing")}
    missing = subprocess.run(["sh", script, "true"], env=gone, capture_output=True, text=True)
    assert missing.returncode == 2 and "not readable" in missing.stderr


# ----------------------------------------------------------------------------- ray up


def test_ray_up_yaml_passes_rays_own_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((DOCKER / "ray-cluster.aws.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(raw)))  # what `ray up` runs first
    types = raw["available_node_types"]
    assert raw["head_node_type"] in types
    workers = [t for name, t in types.items() if name != raw["head_node_type"]]
    assert workers and all(t["resources"].get("GPU", 0) >= 1 for t in workers)
    assert types[raw["head_node_type"]]["resources"].get("GPU", 0) == 0


def test_ray_up_nodes_start_with_the_token() -> None:
    raw = yaml.safe_load((DOCKER / "ray-cluster.aws.yaml").read_text())
    assert raw["file_mounts"]["~/.ray/auth_token"] == "docker/secrets/ray_auth_token.txt"
    assert "docker/secrets" in raw["rsync_exclude"]
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in raw[key] if "ray start" in c]
        assert start and all("RAY_AUTH_MODE=token" in c for c in start), key
    installs = " ".join(raw["setup_commands"])
    assert "torch==" in installs and "-c ~/nas/docker/constraints.txt" in installs


def test_cluster_docs_are_linked_and_name_the_files() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/cluster.md" in readme
    docs = (ROOT / "docs" / "cluster.md").read_text()
    for name in ("docker/compose.yaml", "docker/ray-cluster.aws.yaml", "RAY_AUTH_MODE=token"):
        assert name in docs
    assert "## Testing notes" in docs
