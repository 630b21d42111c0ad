"""Artifact roots: folders and S3 (a moto server on loopback), written by workers, recorded by
the driver as Optuna artifacts, read back by export."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta
from optuna.trial import TrialState
from support.cli_run import assert_usage_error, run_nas
from support.fake_outcomes import fake_metrics

from nas.config import load_study
from nas.search.searcher import StudySearcher
from nas.search_space import load_search_space
from nas.study.artifacts import (
    ArtifactRootError,
    ChecksumError,
    FileRecord,
    StoredFile,
    check_root,
    file_digest,
    is_verifiable,
    open_store,
    parse_root,
    record_files,
    recorded_files,
    write_files,
)

BUCKET = "nas-test"


def checkpoint(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["X"]}')
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    (folder / "nas.json").write_text("{}")
    return folder


# ----------------------------------------------------------------------------- roots


def test_roots_parse_to_a_folder_or_a_bucket_and_prefix(tmp_path: Path) -> None:
    folder = parse_root(str(tmp_path / "a" / ".." / "b"))
    assert (folder.url, folder.bucket) == (str(tmp_path / "b"), None)
    s3 = parse_root("s3://my.bucket-1/runs/ckpt/")
    assert (s3.url, s3.bucket, s3.prefix) == (
        "s3://my.bucket-1/runs/ckpt",
        "my.bucket-1",
        "runs/ckpt/",
    )
    assert parse_root("s3://bucket").prefix == ""
    with pytest.raises(ArtifactRootError, match=r"'Bad_Bucket' is not an S3 bucket name"):
        parse_root("s3://Bad_Bucket/x")
    with pytest.raises(ArtifactRootError, match=r"'gs://b/x': only a folder or s3://"):
        parse_root("gs://b/x")


def test_an_unwritable_folder_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ArtifactRootError, match=r"is not writable.*--artifact-root"):
        check_root(parse_root(str(blocker / "artifacts")))
    check_root(parse_root(str(tmp_path / "new" / "artifacts")))  # created
    assert list((tmp_path / "new" / "artifacts").iterdir()) == []  # the probe is gone


# ----------------------------------------------------------------------------- write, record


def test_written_files_are_recorded_as_upload_artifact_records_them(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    store = open_store(parse_root(str(root)))
    files = write_files(store, checkpoint(tmp_path / "ckpt"))
    assert [(f.filename, f.size) for f in files] == [
        ("config.json", 24),
        ("model.safetensors", 1000),
        ("nas.json", 2),
    ]
    study = optuna.create_study()
    trial = study.ask()
    ids = record_files(trial, files)
    # the reference: what optuna's own upload_artifact records for the same file
    reference = optuna.artifacts.upload_artifact(
        artifact_store=FileSystemArtifactStore(root),
        file_path=str(tmp_path / "ckpt" / "config.json"),
        study_or_trial=trial,
    )
    metas = {m.artifact_id: m for m in get_all_artifact_meta(trial)}
    assert metas[ids["config.json"]].mimetype == metas[reference].mimetype == "application/json"
    assert metas[ids["config.json"]].encoding == metas[reference].encoding
    assert metas[ids["model.safetensors"]].mimetype == "application/octet-stream"
    assert {m.filename for m in metas.values()} == {"config.json", "model.safetensors", "nas.json"}
    out = tmp_path / "back.safetensors"
    download_artifact(
        artifact_store=store, artifact_id=ids["model.safetensors"], file_path=str(out)
    )
    assert out.read_bytes() == b"\0" * 1000


def test_records_hold_size_and_sha256_and_find_a_changed_copy(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    files = write_files(open_store(parse_root(str(root))), checkpoint(tmp_path / "ckpt"))
    model = next(f for f in files if f.filename == "model.safetensors")
    sha256 = hashlib.sha256(b"\0" * 1000).hexdigest()
    assert (model.size, model.sha256) == (1000, sha256)
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("checkpoint_files", record_files(trial, files))
    frozen = study.trials[0]
    records = recorded_files(frozen)
    assert records["model.safetensors"] == FileRecord(
        "model.safetensors", model.artifact_id, 1000, sha256
    )
    assert is_verifiable(frozen) and len(records) == 3
    stored = root / model.artifact_id
    records["model.safetensors"].check(*file_digest(stored), "trial 0")  # intact: no error
    flipped = bytearray(stored.read_bytes())
    flipped[500] ^= 0x01
    stored.write_bytes(bytes(flipped))
    with pytest.raises(ChecksumError, match=r"^trial 0: checkpoint file model.safetensors "):
        records["model.safetensors"].check(*file_digest(stored), "trial 0")
    stored.write_bytes(b"\0" * 900)
    with pytest.raises(ChecksumError, match=r"900 bytes, 1000 recorded; sha256"):
        records["model.safetensors"].check(*file_digest(stored), "trial 0")


def test_an_older_workers_file_without_sha256_is_recorded_unverifiable() -> None:
    # what a worker of an older nas reported: no sha256 key
    old = {"artifact_id": "a1", "filename": "config.json", "mimetype": "application/json"}
    stored = StoredFile(**old, encoding=None, size=24)
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("checkpoint_files", record_files(trial, [stored]))
    frozen = study.trials[0]
    assert recorded_files(frozen)["config.json"] == FileRecord("config.json", "a1", 24, None)
    assert not is_verifiable(frozen)
    assert [m.filename for m in get_all_artifact_meta(trial)] == ["config.json"]


class FailingStore:
    """Writes like a folder store, but the ``fail_at``-th write breaks halfway."""

    def __init__(self, root: Path, fail_at: int) -> None:
        self.inner, self.fail_at, self.writes = FileSystemArtifactStore(root), fail_at, 0

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.inner.open_reader(artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.writes += 1
        if self.writes == self.fail_at:
            (self.inner._base_path / artifact_id).write_bytes(content_body.read(10))
            raise OSError(28, "No space left on device")
        self.inner.write(artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.inner.remove(artifact_id)


def test_a_failed_write_leaves_no_file_behind(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    with pytest.raises(OSError, match="No space left"):
        write_files(FailingStore(root, fail_at=2), checkpoint(tmp_path / "ckpt"))
    assert list(root.iterdir()) == []  # the first file and the partial second one are gone


def test_a_trial_failing_in_the_driver_keeps_no_artifact(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "artifacts"
    root.mkdir()
    config = load_study(tiny_study())
    study = optuna.create_study(directions=["maximize", "minimize"])
    searcher = StudySearcher(
        study,
        load_search_space(config.search_space),
        config,
        ["exact", "params"],
        3,
        root,
        lambda line: None,
    )
    assert searcher.suggest("a") is not None
    files = write_files(open_store(parse_root(str(root))), checkpoint(tmp_path / "ckpt"))
    outcome = {
        "status": "ok",
        "metrics": fake_metrics(float("nan")),
        "artifact_root": str(root),
        "artifacts": [f.__dict__ for f in files],
    }
    searcher.on_trial_complete("a", {"nas_outcome": json.dumps(outcome)})
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "nan_loss"
    assert get_all_artifact_meta(trial, storage=study._storage) == []
    assert "checkpoint_files" not in trial.user_attrs
    assert list(root.iterdir()) == []


# ----------------------------------------------------------------------------- S3 (moto)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, with the bucket ``nas-test``."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def no_credentials_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def test_s3_store_writes_under_the_prefix(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    for key, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    root = parse_root(f"s3://{BUCKET}/unit/run1")
    check_root(root)
    files = write_files(open_store(root), checkpoint(tmp_path / "ckpt"))
    keys = {
        o["Key"]
        for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="unit/")["Contents"]
    }
    assert keys == {f"unit/run1/{f.artifact_id}" for f in files}  # no probe object is left
    out = tmp_path / "config.json"
    config_id = next(f.artifact_id for f in files if f.filename == "config.json")
    download_artifact(artifact_store=open_store(root), artifact_id=config_id, file_path=str(out))
    assert out.read_text() == '{"architectures": ["X"]}'


def test_bad_s3_roots_are_one_line_errors(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ArtifactRootError, match=r"bucket 'missing' does not exist at http"):
        check_root(parse_root("s3://missing/x"))
    for key, value in no_credentials_env(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ArtifactRootError, match=r"no S3 credentials found; set AWS_ACCESS_KEY_ID"):
        check_root(parse_root(f"s3://{BUCKET}/x"))


@pytest.mark.slow
def test_search_and_export_through_s3(tiny_study, s3_endpoint: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import boto3
    from transformers import AutoModelForQuestionAnswering

    env = s3_env(s3_endpoint)
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study_file = tiny_study(n_trials=2)
    root = f"s3://{BUCKET}/ckpt"
    result = run_nas(
        "study", "run", str(study_file), "--storage", url, "--artifact-root", root, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=url)
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
    )
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="ckpt/")["Contents"]}
    recorded = set()
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE
        assert trial.user_attrs["artifact_root"] == root
        metas = get_all_artifact_meta(trial, storage=study._storage)
        files = trial.user_attrs["checkpoint_files"]
        assert {m.filename: m.artifact_id for m in metas} == files
        assert trial.user_attrs["checkpoint_bytes"] == sum(
            client.head_object(Bucket=BUCKET, Key=f"ckpt/{i}")["ContentLength"]
            for i in files.values()
        )
        recorded |= {f"ckpt/{i}" for i in files.values()}
    assert keys == recorded  # nothing unrecorded left in the bucket, no staging copies
    assert not (Path(study_file).parent / "artifacts").exists()  # the config's folder unused

    out = tmp_path / "frontier"
    exported = run_nas("export", "tiny", "--out", str(out), "--storage", url, env=env)
    assert exported.returncode == 0, exported.stderr[-3000:]
    index = json.loads((out / "index.json").read_text())
    assert index["artifact_roots"] == [root] and index["trials"]
    for row in index["trials"]:
        folder = out / row["folder"]
        model = AutoModelForQuestionAnswering.from_pretrained(str(folder))
        assert sum(p.numel() for p in model.parameters()) == row["n_params"]
        assert json.loads((folder / "nas.json").read_text())["artifact_root"] == root

    # without credentials the export is a one-line error, and writes nothing
    failed = run_nas(
        "export",
        "tiny",
        "--out",
        str(tmp_path / "again"),
        "--storage",
        url,
        env=no_credentials_env(s3_endpoint),
    )
    assert_usage_error(failed, "cannot read checkpoint file", root)
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("case", ["missing bucket", "no credentials", "bad bucket name"])
def test_a_bad_s3_root_stops_the_run_before_any_trial(  # type: ignore[no-untyped-def]
    tiny_study, s3_endpoint: str, tmp_path: Path, case: str
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    root, env, fragment = {
        "missing bucket": ("s3://nope/ckpt", s3_env(s3_endpoint), "bucket 'nope' does not exist"),
        "no credentials": (
            f"s3://{BUCKET}/ckpt",
            no_credentials_env(s3_endpoint),
            "no S3 credentials found",
        ),
        "bad bucket name": ("s3://UPPER/x", s3_env(s3_endpoint), "is not an S3 bucket name"),
    }[case]
    result = run_nas(
        "study", "run", str(tiny_study()), "--storage", url, "--artifact-root", root, env=env
    )
    assert_usage_error(result, fragment, "s3://")
    if (tmp_path / "nas.db").exists():
        assert optuna.get_all_study_summaries(url) == []  # no study, no trial
