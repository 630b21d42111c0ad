"""``--help`` and the README's command table cannot drift: every command has a row naming all
its options (and no other), every ``--help`` ends with examples that parse, and the
``--storage`` help says what each command really uses."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas.cli import build_parser
from nas.cli._common import storage_help
from nas.config import load_study
from nas.study.storage import DEFAULT_STORAGE, STORAGE_ENV, resolve_storage

README = Path(__file__).resolve().parents[2] / "README.md"
OPTION = re.compile(r"--[a-z][a-z0-9-]*")
NAME_COMMANDS = {  # take a study name, not a study file: no config's storage to fall back on
    "study status",
    "study front",
    "study confirm",
    "study report",
    "study list",
    "export",
    "dashboard",
}


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser, bool]]:
    """(command path, parser, whether it is a leaf) for nas and every command below it."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield " ".join(path), parser, not subs
    for sub in subs:
        for name, child in sub.choices.items():
            yield from _parsers(child, (*path, name))


PARSERS = list(_parsers(build_parser()))
LEAVES = {path: p for path, p, leaf in PARSERS if leaf}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        s
        for a in parser._actions
        for s in a.option_strings
        if s.startswith("--") and s != "--help"
    }


def _readme_rows() -> dict[str, str]:
    """Command path -> the synopsis in its README row (`nas study run S.yaml [--storage URL]`)."""
    text = README.read_text()
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if not line.startswith("| `nas "):
            continue
        synopsis = line.split("`")[1]
        words = synopsis.split()[1:]
        path = ""
        for word in words:
            if f"{path} {word}".strip() not in {p for p, _, _ in PARSERS}:
                break
            path = f"{path} {word}".strip()
        assert path not in rows, f"two README rows for nas {path}"
        rows[path] = synopsis
    return rows


def test_the_readme_table_lists_every_command_and_every_option() -> None:
    rows = _readme_rows()
    assert set(rows) == set(LEAVES), "README rows and nas commands differ"
    for path, parser in LEAVES.items():
        in_readme = set(OPTION.findall(rows[path]))
        assert in_readme == _options(parser), (
            f"nas {path}: README lacks {sorted(_options(parser) - in_readme)}, "
            f"names unknown {sorted(in_readme - _options(parser))}"
        )


@pytest.mark.parametrize("path", [p for p, _, _ in PARSERS])
def test_every_help_ends_with_examples_that_parse(path: str) -> None:
    parser = dict((p, x) for p, x, _ in PARSERS)[path]
    text = parser.format_help()
    assert "\nexamples:\n" in text, f"nas {path} --help has no examples"
    examples = [line.strip() for line in text.split("\nexamples:\n", 1)[1].splitlines()]
    assert examples and all(e.startswith(f"nas {path}".strip()) for e in examples), examples
    for example in examples:
        argv = shlex.split(example)[1:]
        if argv[-1] == "--help":
            continue
        build_parser().parse_args(argv)  # exits 2 on an option that does not exist


def test_storage_help_names_the_order_resolve_storage_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path, parser in LEAVES.items():
        helps = [a.help or "" for a in parser._actions if "--storage" in a.option_strings]
        if path in NAME_COMMANDS:
            assert helps == [storage_help()], path
            assert "config" not in helps[0] and "study file" not in helps[0]
        elif path == "study run":
            assert helps == [storage_help(from_config=True)]
    # the order the help states: --storage, then the study file's storage, then $NAS_STORAGE
    text = storage_help(from_config=True)
    assert text.index("study file") < text.index("$NAS_STORAGE") < text.index(DEFAULT_STORAGE)
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: s\ntask: synthetic_qa\nteacher: {path: t}\nstudent_source: t\n"
        "search_space: x.yaml\nstorage: sqlite:///from_file.db\n"
    )
    config = load_study(study)
    monkeypatch.setenv(STORAGE_ENV, "sqlite:///from_env.db")
    assert resolve_storage("sqlite:///flag.db", config) == "sqlite:///flag.db"
    assert resolve_storage(None, config) == "sqlite:///from_file.db"
    assert resolve_storage(None) == "sqlite:///from_env.db"
    monkeypatch.delenv(STORAGE_ENV)
    assert resolve_storage(None) == DEFAULT_STORAGE == "sqlite:///nas.db"
