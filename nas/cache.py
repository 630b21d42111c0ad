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
    """Call ``write(tmp)`` on a fresh temporary folder beside ``folder``, then rename it there."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def cached_folder(folder: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """Return ``folder``, building it once with ``build(tmp)`` unless ``folder/marker`` exists."""
    if (folder / marker).exists():
        return folder
    with file_lock(folder.parent / f"{folder.name}.lock"):
        if not (folder / marker).exists():
            write_folder_atomically(folder, build)
    return folder
