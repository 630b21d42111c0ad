"""The on-disk cache shared by trials and worker processes of one machine.

Entries are folders written whole or not at all (a temporary folder renamed into place) under a
per-entry file lock, so concurrent workers compute each entry once and never read half of one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def fingerprint(*parts: str) -> str:
    """A short stable key for the given strings."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across the processes of one machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_folder_atomically(folder: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a fresh temporary folder beside ``folder``, then rename it there.

    An existing ``folder`` stays whole until ``write`` has succeeded; it is then renamed aside,
    the new one renamed into place and the old one deleted, so a failed write keeps the old
    folder and a reader never sees a half-written one.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(tmp)
        _swap_into_place(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_into_place(tmp: Path, folder: Path) -> None:
    if not folder.exists():
        os.replace(tmp, folder)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}-old-", dir=folder.parent))
    os.replace(folder, old)  # a directory onto an empty directory: replaces it
    try:
        os.replace(tmp, folder)
    except BaseException:
        os.replace(old, folder)  # put the old folder back
        raise
    shutil.rmtree(old, ignore_errors=True)


def cached_folder(folder: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """Return ``folder``, building it once with ``build(tmp)`` unless ``folder/marker`` exists."""
    if (folder / marker).exists():
        return folder
    with file_lock(folder.parent / f"{folder.name}.lock"):
        if not (folder / marker).exists():
            write_folder_atomically(folder, build)
    return folder


_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, read once per process for each version of the file.

    The memo is keyed by (path, size, mtime, ctime, inode): a copy that keeps the size and the
    mtime (``cp -p``, ``shutil.copy2``) still changes the ctime, which no tool can set back.
    """
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]
