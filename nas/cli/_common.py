"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import textwrap
from typing import TYPE_CHECKING, Any

from nas.config import shown
from nas.errors import NasError
from nas.progress import terminal_sink

if TYPE_CHECKING:
    import optuna


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


def _shows_progress() -> bool:
    return _LEVEL <= logging.INFO


# On a terminal a tqdm bar stands in for long work's progress lines, while they are shown.
@functools.partial(terminal_sink, when=_shows_progress)
def progress(message: str) -> None:
    """Progress lines go to stderr so that stdout stays machine-readable; ``--quiet`` and
    ``--log-level warning`` drop them."""
    if _LEVEL <= logging.INFO:
        print(f"[nas] {message}", file=sys.stderr, flush=True)


def quiet(_: str) -> None:
    """A progress sink that drops everything."""


# ------------------------------------------------------------------------------ shared options

LOG_LEVELS = ("info", "warning", "error")
_LEVEL = logging.INFO  # what progress() prints; main() sets it from --log-level / --quiet

STORAGE_HELP = "SQLAlchemy URL or journal:FILE (default: {}$NAS_STORAGE, then sqlite:///nas.db)"


def storage_help(from_config: bool = False) -> str:
    """The ``--storage`` help, in :func:`nas.study.storage.resolve_storage`'s order;
    ``from_config``: the command reads a study file, whose ``storage:`` comes before the
    environment."""
    return STORAGE_HELP.format("the study file's storage key, then " if from_config else "")


def storage_arg(parser: argparse.ArgumentParser, from_config: bool = False) -> None:
    parser.add_argument("--storage", metavar="URL", help=storage_help(from_config))


def log_args(parser: argparse.ArgumentParser, quiet_help: str) -> None:
    """``--quiet`` (``quiet_help``: what it leaves) and ``--log-level``, one or the other."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help=quiet_help)
    group.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="nas's progress lines are info, its warnings warning (default: info; "
        "--quiet is warning)",
    )


def set_log_level(args: argparse.Namespace) -> int:
    """The level ``args`` ask for (info for commands without the options); progress() and
    nas's library loggers follow it. Returns it."""
    global _LEVEL
    name = "warning" if getattr(args, "quiet", False) else getattr(args, "log_level", "info")
    _LEVEL = getattr(logging, str(name).upper())
    logging.getLogger("nas").setLevel(_LEVEL)
    return _LEVEL


def command(
    sub: Any, name: str, help: str, description: str, examples: list[str]
) -> argparse.ArgumentParser:
    """A subcommand parser whose ``--help`` ends with examples (kept as written)."""
    return sub.add_parser(
        name,
        help=help,
        description=textwrap.fill(description, 78),  # argparse's own width in 80 columns
        epilog=examples_text(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def examples_text(examples: list[str]) -> str:
    """An ``--help`` epilog: ``examples:`` then one command a line."""
    return "examples:\n" + "\n".join(f"  {line}" for line in examples)


def group(
    commands: Any, name: str, help: str, dest: str, examples: list[str], metavar: str = "ACTION"
) -> Any:
    """A command that only holds actions (``nas study``): its parser's subparsers."""
    parser = commands.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog=examples_text(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.add_subparsers(dest=dest, metavar=metavar, required=True)


def load_named_study(
    args: argparse.Namespace, writes: bool = False, fix: str = ""
) -> optuna.Study:
    """The study ``args.name`` in ``--storage``, creating nothing; a missing study names the
    storage's absolute path and the studies it holds. ``writes``: the command will write into
    the study, so a read-only SQLite file fails now, in one line (``fix``: more advice)."""
    import optuna

    from nas.study import location, open_existing, resolve_storage

    url = resolve_storage(args.storage)
    storage = open_existing(url, writes, fix)  # the command's one open of its storage
    names = sorted(s.study_name for s in storage.get_all_studies())
    if args.name not in names:
        raise NasError(
            f"no study {shown(args.name)} in {location(url)}; studies there: "
            f"{_names(names)} (pass --storage for another database)"
        )
    return optuna.load_study(study_name=args.name, storage=storage)


def _names(names: list[str], limit: int = 10) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown(n) for n in names[:limit]) + more
