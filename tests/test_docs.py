"""The README and docs/*.md name files that exist: a moved module or test breaks this test,
not a reader's search. BENCHMARKS.md is left out (its recorded outputs stay as printed), and so
is the old column of docs/architecture.md's "Old module -> new home" table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# a repository path to a Python file; placeholders (bench/NAME.py, tests/<package>/...) have
# upper-case or bracketed parts and do not match
PATH = re.compile(r"(?<![\w/.])((?:nas|tests|bench)/(?:[a-z0-9_]+/)*[a-z0-9_]+\.py)\b")
MAPPING = "## Old module -> new home"


def named_paths(text: str) -> list[str]:
    """The paths ``text`` names, the old column of the mapping table excepted."""
    found: list[str] = []
    in_mapping = False
    for line in text.splitlines():
        if line.startswith("## "):
            in_mapping = line.strip() == MAPPING
        if in_mapping and line.startswith("|"):
            line = line.split("|")[2]  # the new home only
        found += PATH.findall(line)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_path_exists(doc: Path) -> None:
    missing = [p for p in named_paths(doc.read_text()) if not (REPO / p).is_file()]
    assert missing == [], f"{doc.name} names files that do not exist: {missing}"


def test_old_paths_are_found_and_the_mapping_column_is_skipped() -> None:
    text = "see `nas/trial/run.py` and tests/e2e/test_search.py\n"
    text += f"{MAPPING}\n| old | new |\n| `nas/objective.py` | `nas/trial/run.py` |\n"
    assert named_paths(text) == [
        "nas/trial/run.py",
        "tests/e2e/test_search.py",
        "nas/trial/run.py",
    ]
    assert named_paths("`bench/NAME.py`, `tests/<package>/test_<module>.py`") == []
