"""Shared fixtures: tiny tokenizers and models built locally; hub access fails loudly."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data expected at {SHARED_DATA} (the project's ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WordPiece tokenizer with common English words; any ASCII text tokenizes."""
    from nas.vocab import build_tokenizer

    words = (
        "the a an of to in is was it and for on that with as by at from this be are or "
        "what who where when which how why did does do not no yes film movie good bad great "
        "i you he she we they me my love joy anger fear sadness surprise feel feeling"
    ).split()
    folder = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer(words, folder)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
