"""Progress of long work, as Hugging Face tools show it.

On a terminal (a sink marked with :func:`terminal_sink` and stderr a TTY): a tqdm bar with the
elapsed time, the ETA and the rate. Elsewhere (CI, log files, Ray workers, tests): one line
through the sink every ``LINE_EVERY_S`` seconds, and every ``every`` units when the caller
gives it (``training.log_every`` steps), and one when the work ends, each with the elapsed time
and the ETA. A sink of None shows nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from tqdm import tqdm

Sink = Callable[[str], None]
LINE_EVERY_S = 60.0  # one line a minute where no bar can be drawn
# Sinks that print to stderr, where a bar may be drawn, and when they show progress.
_TERMINAL_SINKS: dict[Sink, Callable[[], bool]] = {}


def terminal_sink(sink: Sink, when: Callable[[], bool] = lambda: True) -> Sink:
    """``sink`` (a function printing to stderr), marked as one a bar may stand in for on a TTY
    while ``when()`` holds (e.g. the log level lets progress through).

    Its lines are written above a live bar instead of through it (``tqdm.write``'s way)."""

    def write(message: str) -> None:
        with tqdm.external_write_mode(file=sys.stderr):
            sink(message)

    _TERMINAL_SINKS[write] = when
    return write


def draws_bars(sink: Sink | None) -> bool:
    """Whether progress for ``sink`` is a tqdm bar: a terminal sink that shows progress now,
    and stderr a TTY."""
    when = _TERMINAL_SINKS.get(sink) if sink is not None else None
    return when is not None and when() and sys.stderr.isatty()


def duration(seconds: float) -> str:
    """``0:05``, ``1:02:03``: minutes and seconds, hours when there are any."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Ticker:
    """``total`` units of work called ``what``; ``update()`` as they are done, then ``close()``
    (or use it in a ``with``). Off a terminal a line is written each minute and, with
    ``every``, each ``every`` units. ``clock`` and ``bar`` are for tests."""

    def __init__(
        self,
        sink: Sink | None,
        what: str,
        total: int,
        unit: str = "it",
        *,
        every: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        bar: bool | None = None,
    ) -> None:
        self.sink, self.what, self.total, self.unit, self.clock = sink, what, total, unit, clock
        self.every = every if every is not None and every > 0 else None
        self.done, self.note, self.done_at_line = 0, "", 0
        self.start = self.last_line = clock()
        self.closed = False
        use_bar = draws_bars(sink) if bar is None else bar
        self.bar: Any = (
            tqdm(total=total, desc=f"[nas] {what}", unit=f" {unit}", file=sys.stderr, leave=True)
            if use_bar and sink is not None
            else None
        )

    def update(self, n: int = 1, note: str = "") -> None:
        """``n`` more units done; ``note`` (e.g. ``loss 0.51``) is shown with the count."""
        self.done += n
        self.note = note or self.note
        if self.bar is not None:
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(n)
            return
        now = self.clock()
        due = now - self.last_line >= LINE_EVERY_S or (
            self.every is not None and self.done - self.done_at_line >= self.every
        )
        if self.sink is not None and due and not self._ended():
            self.last_line, self.done_at_line = now, self.done
            self.sink(self.line(now))

    def line(self, now: float) -> str:
        """``what: done/total unit (pct%), elapsed, ETA, note``."""
        elapsed = now - self.start
        pct = 100.0 * self.done / max(self.total, 1)
        left = elapsed * (self.total - self.done) / self.done if self.done else float("nan")
        eta = duration(left) if left == left else "?"  # NaN: nothing done yet
        note = f", {self.note}" if self.note else ""
        return (
            f"{self.what}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), "
            f"{duration(elapsed)} elapsed, ETA {eta}{note}"
        )

    def close(self) -> float:
        """End the work (a last line, or the bar left at its final state); the seconds taken."""
        elapsed = self.clock() - self.start
        if self.closed:
            return elapsed
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif self.sink is not None and self.done:
            note = f", {self.note}" if self.note else ""
            self.sink(
                f"{self.what}: {self.done}/{self.total} {self.unit} in {duration(elapsed)}{note}"
            )
        return elapsed

    def _ended(self) -> bool:
        return self.done >= self.total  # the closing line says it

    def __enter__(self) -> Ticker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        elif self.bar is not None:
            self.bar.close()  # an error: the bar stops where it was, no closing line
            self.closed = True


def human_bytes(n_bytes: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n_bytes) < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")
