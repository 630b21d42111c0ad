"""Task data for a study: examples loaded with the study's paths, tokenized once, cached on disk.

Tokenized features live under ``<cache_dir>/features/<fingerprint>/`` as ``.npy`` files; the
fingerprint covers the task, the examples' text, the tokenizer's vocabulary and the lengths, so a
change to any of them tokenizes again and nothing stale is reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from nas.cache import cached_folder, fingerprint
from nas.config import DataConfig, StudyConfig
from nas.errors import DataError
from nas.tasks import Features, QAExample, Splits, Task, TextExample, get_task


def resolved_data(config: StudyConfig) -> DataConfig:
    """The study's data config with file paths made relative to the study file, checked."""
    data = config.data
    changes: dict[str, Any] = {}
    for key in ("train_file", "eval_file", "test_file"):
        value, resolved = getattr(data, key), getattr(config.paths, key)
        if value is not None:
            path = Path(resolved)
            if not path.is_file():
                raise DataError(
                    f"{config.source_file}: data.{key} = {value!r} -> {path} does not exist; "
                    "fix the path (relative paths start at the study file's folder)"
                )
            changes[key] = str(path)
    return dataclasses.replace(data, **changes)


def load_splits(config: StudyConfig) -> tuple[Task, Splits, DataConfig]:
    """The study's task, its train / selection / test examples and the resolved data config."""
    task = get_task(config.task)
    data = resolved_data(config)
    splits = task.load(data)
    if not splits.train or not splits.eval or not splits.test:
        raise DataError(
            f"{config.source_file}: task {config.task} loaded {len(splits.train)} train, "
            f"{len(splits.eval)} selection and {len(splits.test)} test examples; all three must "
            "be non-empty (the selection split scores trials, the test split reports the front)"
        )
    return task, splits, data


def examples_digest(examples: list[Any]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        if isinstance(ex, QAExample):
            parts = [ex.id, ex.question, ex.context, *ex.answers, *map(str, ex.answer_starts)]
        elif isinstance(ex, TextExample):
            parts = [ex.text, ex.text_pair or "", str(ex.label)]
        else:
            raise TypeError(f"unknown example type {type(ex).__name__}")
        h.update("\x1e".join(parts).encode())
        h.update(b"\x1d")
    return h.hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    meta = [type(tokenizer).__name__, getattr(tokenizer, "do_lower_case", None), vocab]
    return hashlib.sha256(json.dumps(meta).encode()).hexdigest()


def encoded(
    task: Task,
    examples: list[Any],
    tokenizer: Any,
    data: DataConfig,
    cache_dir: Path,
    tokenizer_key: str | None = None,
) -> Features:
    """Tokenize ``examples`` once; later calls (any process) memory-map the cached arrays."""
    lengths = (data.max_seq_length, data.doc_stride, data.max_query_length)
    key_parts = [
        task.name,
        str(lengths),
        tokenizer_key or tokenizer_digest(tokenizer),
        examples_digest(examples),
    ]
    folder = cache_dir / "features" / fingerprint(*key_parts)
    cached_folder(
        folder, "starts.npy", lambda tmp: task.encode(examples, tokenizer, data).save(tmp)
    )
    return Features.load(folder)
