"""Where checkpoints live: the artifact root, its Optuna artifact store, and the two halves of
storing a checkpoint — a worker writes the files, the driver records them in the trial.

An artifact root is a folder (``.nas/artifacts``, or a shared file system such as NFS that every
Ray node mounts at the same path) or an S3-compatible bucket and key prefix
(``s3://BUCKET/PREFIX``, through Optuna's ``Boto3ArtifactStore``; the boto3 client takes its
credentials and ``AWS_ENDPOINT_URL`` from the environment of the process that opens it).

Workers never touch the study database, so storing a checkpoint is split in two:
:func:`write_files` (worker) puts each file into the store under a fresh artifact id and returns
a :class:`StoredFile` per file; :func:`record_files` (driver) records them in the trial exactly
as :func:`optuna.artifacts.upload_artifact` would (one ``artifacts:<id>`` system attribute of
``ArtifactMeta`` JSON), so :func:`optuna.artifacts.get_all_artifact_meta` and optuna-dashboard
list them. Files of a trial that does not complete are removed again and never recorded.

Each record also holds the file's size and sha256, taken from the bytes the worker wrote;
:func:`recorded_files` reads them back and :meth:`FileRecord.check` compares a stored copy
with them (export, dashboard downloads). Records written before nas stored digests have
neither: such files cannot be verified, only the trial's total ``checkpoint_bytes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import optuna
from optuna.artifacts import ArtifactMeta, FileSystemArtifactStore

# Optuna's own key for an artifact's meta (private there, so pinned by
# tests/study/test_artifacts.py through the public get_all_artifact_meta).
from optuna.artifacts._upload import ARTIFACTS_ATTR_PREFIX, DEFAULT_MIME_TYPE
from optuna.trial import FrozenTrial

from nas.errors import NasError
from nas.study.record import CHECKPOINT_BYTES, CHECKPOINT_FILES

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

DEFAULT_ARTIFACT_ROOT = ".nas/artifacts"  # relative to where nas runs
_CHUNK = 1 << 20  # bytes read at a time when hashing
S3_SCHEME = "s3://"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's bucket naming rules
S3_ENV_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for an "
    "S3-compatible server) in the environment"
)


class ArtifactRootError(NasError):
    """The artifact root is malformed, missing, or not writable."""


@dataclass(frozen=True)
class ArtifactRoot:
    """A parsed artifact root: an absolute folder, or an S3 bucket and key prefix."""

    url: str  # canonical: /abs/folder or s3://bucket/prefix (no trailing slash)
    bucket: str | None = None  # None: a folder
    prefix: str = ""  # S3 keys start with this: "" or "prefix/"

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def __str__(self) -> str:
        return self.url


def parse_root(value: str | Path, where: str = "--artifact-root") -> ArtifactRoot:
    """``s3://BUCKET/PREFIX`` or a folder (made absolute against the current directory).

    Raises:
        ArtifactRootError: another URL scheme, or a bucket name S3 does not allow.
    """
    text = str(value)
    if text.startswith(S3_SCHEME):
        bucket, _, prefix = text.removeprefix(S3_SCHEME).partition("/")
        if not _BUCKET.match(bucket):
            raise ArtifactRootError(
                f"{where} {text!r}: {bucket!r} is not an S3 bucket name (3-63 lowercase "
                "letters, digits, dots, hyphens); write s3://BUCKET/PREFIX"
            )
        prefix = prefix.strip("/")
        url = f"{S3_SCHEME}{bucket}/{prefix}" if prefix else f"{S3_SCHEME}{bucket}"
        return ArtifactRoot(url, bucket, f"{prefix}/" if prefix else "")
    if "://" in text:
        raise ArtifactRootError(
            f"{where} {text!r}: only a folder or s3://BUCKET/PREFIX can hold checkpoints"
        )
    return ArtifactRoot(str(Path(text).expanduser().resolve()))


class PrefixedStore:
    """An artifact store whose keys sit under ``prefix`` in another store (S3 ``PREFIX/``).

    Artifact ids stay plain UUIDs (optuna-dashboard's routes accept nothing else); only the
    object keys carry the prefix.
    """

    def __init__(self, inner: ArtifactStore, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.inner.open_reader(self.prefix + artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.inner.write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.inner.remove(self.prefix + artifact_id)


def open_store(root: ArtifactRoot) -> ArtifactStore:
    """The Optuna artifact store of ``root`` (boto3 client from this process's environment)."""
    if root.bucket is None:
        return FileSystemArtifactStore(root.url)
    from optuna.artifacts import Boto3ArtifactStore

    # avoid_buf_copy: write() is always given a file opened here, so boto3 may close it, and
    # a checkpoint is not copied into memory first.
    store = Boto3ArtifactStore(root.bucket, client=_s3_client(), avoid_buf_copy=True)
    return PrefixedStore(store, root.prefix) if root.prefix else store


def _s3_client(**config: Any) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ArtifactRootError(
            "an s3:// artifact root needs boto3; pip install 'nas-distill[s3]'"
        ) from None
    # a fresh session: credentials and AWS_ENDPOINT_URL are read from the environment now
    return boto3.session.Session().client("s3", config=Config(**config) if config else None)


def check_root(root: ArtifactRoot) -> None:
    """Fail early, with the fix, when the driver cannot write to ``root``.

    A folder is created if missing; a probe object is written and removed in either kind.

    Raises:
        ArtifactRootError: the folder cannot be created or written; the bucket is missing, the
            credentials are absent or refused, or the endpoint does not answer.
    """
    if root.bucket is None:
        _check_folder(Path(root.url))
    else:
        _check_bucket(root)


def _check_folder(folder: Path) -> None:
    probe = folder / f".nas-write-check-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ArtifactRootError(
            f"artifact root {folder} is not writable ({exc.strerror or exc}); pass "
            "--artifact-root with a folder you can write (shared by every node on a cluster)"
        ) from None


def _check_bucket(root: ArtifactRoot) -> None:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    assert root.bucket is not None
    client = _s3_client(connect_timeout=5, read_timeout=20, retries={"max_attempts": 1})
    endpoint = client.meta.endpoint_url
    key = f"{root.prefix}.nas-write-check-{uuid.uuid4().hex}"
    try:
        client.head_bucket(Bucket=root.bucket)
        client.put_object(Bucket=root.bucket, Key=key, Body=b"")
        client.delete_object(Bucket=root.bucket, Key=key)
    except NoCredentialsError:
        raise ArtifactRootError(
            f"artifact root {root}: no S3 credentials found; {S3_ENV_FIX}"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or error.get("Code") in ("404", "NoSuchBucket"):
            fix = f"create it (aws s3 mb s3://{root.bucket}) or name an existing bucket"
            raise ArtifactRootError(
                f"artifact root {root}: bucket {root.bucket!r} does not exist at {endpoint}; {fix}"
            ) from None
        reason = f"{error.get('Code', status)}: {error.get('Message', '')}".rstrip(": ")
        raise ArtifactRootError(
            f"artifact root {root}: S3 at {endpoint} refused access ({reason}); check the "
            f"bucket policy and the credentials: {S3_ENV_FIX}"
        ) from None
    except BotoCoreError as exc:
        raise ArtifactRootError(
            f"artifact root {root}: S3 endpoint {endpoint} does not answer ({exc}); check "
            "AWS_ENDPOINT_URL"
        ) from None


@dataclass(frozen=True)
class StoredFile:
    """One checkpoint file a worker wrote into the store (JSON-able, reported to the driver)."""

    artifact_id: str
    filename: str
    mimetype: str
    encoding: str | None
    size: int  # bytes
    sha256: str | None = None  # hex digest of the bytes written; None: from an older worker

    def meta(self) -> ArtifactMeta:
        return ArtifactMeta(self.artifact_id, self.filename, self.mimetype, self.encoding)

    def record(self) -> dict[str, Any]:
        """The artifact's record: ``ArtifactMeta``'s keys (read by Optuna and optuna-dashboard,
        which ignore the rest) plus ``size`` and ``sha256``."""
        return {**asdict(self.meta()), "size": self.size, "sha256": self.sha256}


class ChecksumError(NasError):
    """A stored checkpoint file is not the file that was recorded (changed or truncated)."""


@dataclass(frozen=True)
class FileRecord:
    """What a trial recorded about one checkpoint file; ``None``: not recorded (older nas)."""

    filename: str
    artifact_id: str
    size: int | None
    sha256: str | None

    def check(self, sha256: str, size: int, where: str) -> None:
        """Compare a stored copy's digest and size with the record.

        Args:
            sha256: Hex digest of the stored copy.
            size: Its size in bytes.
            where: The trial, for the message (``trial 3 of study 'x'``).

        Raises:
            ChecksumError: Naming the trial, the file and what differs.
        """
        wrong = []
        if self.size is not None and size != self.size:
            wrong.append(f"{size} bytes, {self.size} recorded")
        if self.sha256 is not None and sha256 != self.sha256:
            wrong.append(f"sha256 {sha256[:16]}..., {self.sha256[:16]}... recorded")
        if wrong:
            raise ChecksumError(
                f"{where}: checkpoint file {self.filename} (artifact {self.artifact_id}) is not "
                f"the file that was stored ({'; '.join(wrong)}): the stored copy was changed or "
                "truncated; restore it from a backup, or export another trial"
            )


def digest(handle: BinaryIO) -> tuple[str, int]:
    """The sha256 hex digest and the size of what ``handle`` reads until its end."""
    sha, size = hashlib.sha256(), 0
    while chunk := handle.read(_CHUNK):
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size


def file_digest(path: Path) -> tuple[str, int]:
    """The sha256 hex digest and the size of the file at ``path``."""
    with open(path, "rb") as handle:
        return digest(handle)


def write_files(store: ArtifactStore, folder: Path) -> list[StoredFile]:
    """Write every file of ``folder`` into ``store``, each under a fresh artifact id (worker).

    MIME type and encoding are guessed from the file name as ``upload_artifact`` does; size
    and sha256 are those of the bytes read for the write. If any write fails, the files
    written so far (a partial one included) are removed and the error is raised.
    """
    paths = sorted(folder.iterdir())
    if not paths or not all(p.is_file() for p in paths):
        raise ValueError(f"checkpoint folder {folder} must hold plain files only, and some")
    written: list[StoredFile] = []
    try:
        for path in paths:
            mimetype, encoding = mimetypes.guess_type(path.name)
            with open(path, "rb") as handle:
                sha256, size = digest(handle)
                handle.seek(0)
                stored = StoredFile(
                    str(uuid.uuid4()),
                    path.name,
                    mimetype or DEFAULT_MIME_TYPE,
                    encoding,
                    size,
                    sha256,
                )
                written.append(stored)  # before writing: a partial file is removed too
                store.write(stored.artifact_id, handle)
    except BaseException:
        remove_files(store, written)
        raise
    return written


def remove_files(store: ArtifactStore, files: Iterable[StoredFile]) -> None:
    """Remove stored files that will never be recorded. Best effort: this runs while another
    error is already being reported, which must not be masked."""
    for stored in files:
        with contextlib.suppress(Exception):
            store.remove(stored.artifact_id)


def record_files(trial: optuna.Trial, files: Sequence[StoredFile]) -> dict[str, str]:
    """Record ``files`` in ``trial`` as ``upload_artifact`` does, with size and sha256
    (driver). Returns name -> id, the trial's ``checkpoint_files``."""
    for stored in files:
        trial.storage.set_trial_system_attr(
            trial._trial_id,
            ARTIFACTS_ATTR_PREFIX + stored.artifact_id,
            json.dumps(stored.record()),
        )
    return {stored.filename: stored.artifact_id for stored in files}


def artifact_record(
    trial: FrozenTrial, artifact_id: str, filename: str | None = None
) -> FileRecord:
    """The size and sha256 recorded for one of the trial's artifacts (``None`` where absent);
    ``filename`` defaults to the recorded one."""
    text = trial.system_attrs.get(ARTIFACTS_ATTR_PREFIX + artifact_id)
    try:
        meta = json.loads(text) if isinstance(text, str) else {}
    except json.JSONDecodeError:
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    size, sha256 = meta.get("size"), meta.get("sha256")
    return FileRecord(
        filename or str(meta.get("filename", artifact_id)),
        artifact_id,
        size if isinstance(size, int) else None,
        sha256 if isinstance(sha256, str) else None,
    )


def recorded_files(trial: FrozenTrial) -> dict[str, FileRecord]:
    """The trial's checkpoint files by name (its ``checkpoint_files``), with their records."""
    files = trial.user_attrs.get(CHECKPOINT_FILES)
    if not isinstance(files, dict):
        return {}
    return {name: artifact_record(trial, str(i), name) for name, i in sorted(files.items())}


def is_verifiable(trial: FrozenTrial) -> bool:
    """Whether every checkpoint file of the trial has a recorded sha256 (True without files:
    there is nothing to verify)."""
    return all(r.sha256 is not None for r in recorded_files(trial).values())


def verify_folder(trial: FrozenTrial, folder: Path, where: str) -> None:
    """Check the trial's checkpoint files copied into ``folder`` against their records: size
    and sha256 of each where recorded; for records of older nas without either, the total
    against the trial's ``checkpoint_bytes`` where that is recorded.

    Raises:
        ChecksumError: A file differs from its record (or the total from the recorded one),
            naming the trial and the file.
    """
    records = recorded_files(trial)
    sizes: dict[str, int] = {}
    for name, record in records.items():
        sha256, sizes[name] = file_digest(folder / name)
        record.check(sha256, sizes[name], where)
    total = trial.user_attrs.get(CHECKPOINT_BYTES)
    if any(r.size is not None for r in records.values()) or not isinstance(total, int):
        return
    if sum(sizes.values()) != total:
        raise ChecksumError(
            f"{where}: checkpoint files {', '.join(sizes)} total {sum(sizes.values())} bytes, "
            f"{total} recorded: a stored copy was changed or truncated; restore it from a "
            "backup, or export another trial"
        )
