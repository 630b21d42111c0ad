"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nas.errors import NasError


def parse_params(text: str, flag: str = "--params") -> dict[str, Any]:
    """A JSON object of parameters; a file path prefixed with @ is read."""
    if text.startswith("@"):
        try:
            with open(text[1:]) as handle:
                text = handle.read()
        except OSError as exc:
            raise NasError(f"{flag} {text}: cannot read the file ({exc.strerror})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NasError(
            f"{flag} {text!r} is not valid JSON ({exc.msg}); write e.g. "
            '\'{"n_layers": 3, "hidden_size": 384}\''
        ) from None
    if not isinstance(value, dict):
        raise NasError(f"{flag} must be a JSON object of name -> value, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse type for counts: an integer of at least 1 (argparse exits 2 otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; write e.g. 12") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def progress(message: str) -> None:
    """Progress lines go to stderr so that stdout stays machine-readable."""
    print(f"[nas] {message}", file=sys.stderr, flush=True)


def quiet(_: str) -> None:
    """A progress sink that drops everything."""
