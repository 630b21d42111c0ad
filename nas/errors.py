"""Typed errors. ``NasError`` and its subclasses are user-facing: the CLI prints one line, exits 2.

Trial outcomes that are not user mistakes (``OutOfMemory``, ``Diverged``) are raised by the
objective and mapped to trial states by the runner.
"""

from __future__ import annotations


class NasError(Exception):
    """A problem the user can fix; the message names the value, where it came from and the fix."""


class ConfigError(NasError):
    """A study config or search space file is wrong."""


class DataError(NasError):
    """A data file is missing, unreadable or in the wrong format."""


class CheckpointError(NasError):
    """A model checkpoint (teacher, student source) cannot be read or does not fit."""


class InvalidConfig(NasError):
    """Parameters describe a student that cannot be built (e.g. heads do not divide dim)."""


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
