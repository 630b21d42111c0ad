"""The ``nas`` command line: one module per subcommand, ``main() -> int``.

User errors (``NasError``) print one line on stderr and exit 2 (bad input) or their own
``exit_code`` (1: the teacher ran out of memory); nothing half-written is left. A closed
stdout (``| head``) ends the command quietly with exit code 141, as git does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from nas import __version__
from nas.cli import _dashboard, _eval, _export, _storage, _student, _study, _teacher, _trial
from nas.cli._common import examples_text, set_log_level
from nas.errors import NasError

EXIT_USAGE = 2
# stdout's reader went away (`nas study front NAME | head -1`): git and coreutils die of
# SIGPIPE there, which a shell reports as 128 + 13; nas stops quietly with that status.
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas",
        description="Multi-objective architecture and hyperparameter search for distilling "
        "fine-tuned BERT teachers into small DistilBERT students.",
        epilog=examples_text(
            [
                "nas study run studies/quickstart.yaml",
                "nas study front quickstart",
                "nas export quickstart --out frontier/",
                "nas study run --help",
            ]
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (_study, _storage, _trial, _student, _teacher, _eval, _export, _dashboard):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # nas prints its own progress
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    set_log_level(args)  # --quiet / --log-level; info for commands without them
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        code = int(args.run(args))
        sys.stdout.flush()  # a closed pipe shows here, not in Python's flush at exit
        return code
    except BrokenPipeError:
        # As the Python docs advise (signal module, "Note on SIGPIPE"): point the streams at
        # /dev/null so that the interpreter's last flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            os.dup2(devnull, stream.fileno())
        return EXIT_BROKEN_PIPE
    except NasError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nas: interrupted", file=sys.stderr)
        return 130
