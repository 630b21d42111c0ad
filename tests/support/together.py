"""Run a function in several threads released at the same moment: races made likely."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


def run_together(action: Callable[[Any], None], inputs: Sequence[Any]) -> list[BaseException]:
    """``action(x)`` for every ``x`` of ``inputs``, each in its own thread, all started by one
    barrier; returns what they raised (empty when none did)."""
    start = threading.Barrier(len(inputs))
    errors: list[BaseException] = []

    def one(value: Any) -> None:
        start.wait()
        try:
            action(value)
        except BaseException as exc:  # noqa: BLE001 - returned to the caller
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(value,)) for value in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
