"""Typed errors. ``NasError`` and its subclasses are user-facing: the CLI prints one line and
exits with their ``exit_code`` (2: bad input).

Trial outcomes that are not user mistakes (``OutOfMemory``, ``Diverged``) are raised by the
trial (``nas.trial``) and mapped to trial states by the Ray worker and searcher. This module
imports no torch: :func:`is_out_of_memory` knows torch's errors by class name and message.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

# RuntimeError messages of a CUDA (or ROCm) allocation failure that torch does not raise as
# torch.OutOfMemoryError: the caching allocator's own error is one, the libraries' are not
_OOM_MESSAGES = (
    "CUDA out of memory",
    "CUDA error: out of memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "HIP out of memory",
    "HIP error: out of memory",
)


class NasError(Exception):
    """A problem the user can fix; the message names the value, where it came from and the fix."""

    exit_code = 2  # bad input


class ConfigError(NasError):
    """A study config or search space file is wrong."""


class DataError(NasError):
    """A data file is missing, unreadable or in the wrong format."""


class CheckpointError(NasError):
    """A model checkpoint (teacher, student source) cannot be read or does not fit."""


class InvalidConfig(NasError):
    """Parameters describe a student that cannot be built (e.g. heads do not divide dim)."""


class TeacherOutOfMemory(NasError):
    """The teacher's training or its logit pass ran out of accelerator memory; the message names
    the batch size to lower. Not bad input, so the CLI exits 1."""

    exit_code = 1


class ArtifactRootFailed(NasError):
    """A worker could not write its checkpoint into the artifact root (a full disk, lost
    permissions, an unreachable bucket). Every later trial would fail the same way, so the run
    stops (exit 1) and the trial is queued again for the next ``nas study run``."""

    exit_code = 1


class StorageUnreachable(NasError):
    """The study storage stopped answering while the driver recorded a trial, and stayed so
    through the retries. Not bad input, so the CLI exits 1; the trial stays RUNNING and the next
    ``nas study run`` re-runs it."""

    exit_code = 1


class TrialError(Exception):
    """Base of the trial outcomes that end a trial without metrics."""

    reason = "error"


class OutOfMemory(TrialError):
    """The trial ran out of accelerator memory (wraps ``torch.cuda.OutOfMemoryError``)."""

    reason = "oom"


class PredictedOutOfMemory(TrialError):
    """The memory pre-flight predicts the trial will not fit; it was not built or trained."""

    reason = "oom_predicted"


class Diverged(TrialError):
    """The training loss became NaN or infinite."""

    reason = "nan_loss"


class TrialTimeout(TrialError):
    """The trial ran past the study's ``trial_timeout_s``."""

    reason = "timeout"


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator out-of-memory error: ``torch.OutOfMemoryError`` (alias
    ``torch.cuda.OutOfMemoryError``), a CUDA ``RuntimeError`` saying so (cuBLAS, cuDNN, a kernel
    launch), or nas's own :class:`OutOfMemory`."""
    if isinstance(exc, OutOfMemory | TeacherOutOfMemory):
        return True
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OOM_MESSAGES)


def out_of_memory_message(exc: BaseException, limit: int = 300) -> str:
    """The first line of an out-of-memory error, at most ``limit`` characters."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else "CUDA out of memory"
    return first if len(first) <= limit else first[: limit - 3] + "..."


def forget_frames(exc: BaseException) -> BaseException:
    """Drop the local variables of the finished frames in ``exc``'s traceback, and of its causes
    and contexts, then the tracebacks: an out-of-memory error kept for its message must not keep
    the model, the optimizer and the activations of the failed call alive. Returns ``exc``."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)  # skips frames still running
            current.__traceback__ = None
        pending += [current.__cause__, current.__context__]
    return exc


def teacher_out_of_memory(what: str, setting: str) -> Callable[[str], TeacherOutOfMemory]:
    """For ``nas.trial.loop.catch_out_of_memory``: ``what`` ran out of memory; lower
    ``setting``."""

    def error(first_line: str) -> TeacherOutOfMemory:
        return TeacherOutOfMemory(
            f"{what} ran out of accelerator memory; lower {setting} in the study file "
            f"({first_line})"
        )

    return error
