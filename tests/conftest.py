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
    from nas.tasks.vocab import build_tokenizer

    words = [
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "is",
        "was",
        "it",
        "and",
        "for",
        "on",
        "that",
        "with",
        "as",
        "by",
        "at",
        "from",
        "this",
        "be",
        "are",
        "or",
        "what",
        "who",
        "where",
        "when",
        "which",
        "how",
        "why",
        "did",
        "does",
        "do",
        "not",
        "no",
        "yes",
        "film",
        "movie",
        "good",
        "bad",
        "great",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "me",
        "my",
        "love",
        "joy",
        "anger",
        "fear",
        "sadness",
        "surprise",
        "feel",
        "feeling",
    ]
    folder = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer(words, folder)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


TINY_TEACHER = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
TINY_BASELINE = {
    "n_layers": 1,
    "n_heads": 2,
    "hidden_size": 32,
    "ffn_dim": 64,
    "temperature": 2.0,
    "alpha": 0.5,
    "learning_rate": 1e-3,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "batch_size": 32,
    "epochs": 1,
}


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache (teacher, features, logits) for every tiny study of the session."""
    return tmp_path_factory.mktemp("nas-cache")


@pytest.fixture
def tiny_study(tmp_path: Path, shared_cache: Path):  # type: ignore[no-untyped-def]
    """A factory for small synthetic_qa study files: ``tiny_study(name=..., n_trials=...)``."""
    import yaml

    def make(**overrides: object) -> Path:
        study = {
            "name": "tiny",
            "task": "synthetic_qa",
            "data": {
                "max_seq_length": 64,
                "doc_stride": 32,
                "max_query_length": 16,
                "synthetic": {"n_train": 200, "n_eval": 60, "n_test": 60, "seed": 0},
            },
            "teacher": {
                "path": "{cache_dir}/teachers/tiny",
                "train": {"arch": TINY_TEACHER, "epochs": 1, "learning_rate": 1e-3},
            },
            "student_source": "{cache_dir}/teachers/tiny",
            "search_space": str(REPO / "search_spaces" / "quickstart.yaml"),
            "cache_dir": str(shared_cache),
            "artifact_root": str(tmp_path / "artifacts"),
            "baseline": TINY_BASELINE,
            "thresholds": [{"metric": "exact", "min": 50.0}],
            "n_trials": 3,
            "sampler": {"name": "random", "seed": 0},
            **overrides,
        }
        path = tmp_path / f"{study['name']}.yaml"
        path.write_text(yaml.safe_dump(study))
        return path

    return make


@pytest.fixture(scope="session")
def real_study(  # type: ignore[no-untyped-def]
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, worker_id: str
):
    """A finished 6-trial study on real SST-2 sentences (see tests/support/real_study.py), run
    once per session: under pytest-xdist the first worker to ask runs it in the session's shared
    temporary folder while the others wait on a lock, then every worker reads it."""
    import fcntl
    import shutil

    from support.real_study import load_real_study, run_real_study

    if worker_id == "master":  # -n 0: one process, nothing to share
        return run_real_study(tmp_path_factory.mktemp("real-study"), shared_data)
    folder = tmp_path_factory.getbasetemp().parent / "real-study"  # shared by this session
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = load_real_study(folder)
        if done is not None:
            return done
        shutil.rmtree(folder, ignore_errors=True)  # a run that failed on another worker
        folder.mkdir()
        return run_real_study(folder, shared_data)


@pytest.fixture
def name():  # type: ignore[no-untyped-def]
    """A study name no other run uses; deleted from the shared servers afterwards."""
    import contextlib
    import uuid

    import optuna
    from support.servers import MARIADB, POSTGRES

    unique = f"t-{uuid.uuid4().hex[:8]}"
    yield unique
    for url in (POSTGRES, MARIADB):
        with contextlib.suppress(Exception):  # not created there
            optuna.delete_study(study_name=unique, storage=url)
