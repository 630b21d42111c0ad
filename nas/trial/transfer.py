"""Transfer sets: texts the teacher labels for the student beyond the labelled training split.

Three sources, all classification (:class:`~nas.tasks.TextExample` with label
:data:`~nas.trial.augment.UNLABELLED`: they train on the teacher's soft labels alone):

- an unlabelled in-domain file (:func:`unlabelled_file`): one text per line, or a column of a
  CSV / TSV / JSONL file (read by ``nas.tasks.read_texts``);
- the training split's own texts beyond the labelled subset (:func:`unlabelled_rest`): with
  ``data.max_train_samples`` = N the task keeps N seeded examples labelled; the rest lose
  their labels here;
- augmented copies (:mod:`nas.trial.augment`), of the labelled examples or of all of them.

:func:`transfer_set` puts them together; :func:`cached_transfer_set` does so once per content
(the examples, the settings, the seed, the tokenizer and the neighbour table), under
``<cache_dir>/transfer/<key>/``, so every worker of a study reads the same texts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from nas.cache import cached_folder, fingerprint
from nas.config import DataConfig, StudyConfig
from nas.errors import ConfigError, DataError
from nas.progress import Sink
from nas.students import load_source
from nas.tasks import Task, TextExample, read_texts
from nas.trial.augment import UNLABELLED, AugmentSettings, augment, cached_neighbour_table
from nas.trial.data import examples_digest, tokenizer_digest

AugmentFrom = Literal["labelled", "all"]  # which examples get augmented copies
# SourceModel.tensors uses DistilBERT parameter names for every source (BERT ones renamed)
_WORD_EMBEDDINGS = "distilbert.embeddings.word_embeddings.weight"


def source_embeddings(source: str | Path) -> torch.Tensor:
    """``(vocab, dim)`` word embeddings of a DistilBERT/BERT checkpoint, for neighbour tables."""
    return load_source(source).tensors[_WORD_EMBEDDINGS]


def unlabelled_file(
    path: str | Path,
    key: str = "transfer.file",
    paired: bool = False,
    text_column: str | None = None,
    pair_column: str | None = None,
) -> list[TextExample]:
    """The texts of an unlabelled in-domain file, as transfer examples.

    Args:
        path: ``.txt`` (one text per line) or ``.csv`` / ``.tsv`` / ``.jsonl`` with a text column.
        key: the config key of ``path``, for messages.
        paired: the task classifies sentence pairs: the file must have a pair column.
        text_column: the text column of a CSV/TSV/JSONL file (default: ``sentence``, ``text``...).
        pair_column: the second sentence's column (default ``sentence2``).

    Raises:
        DataError: missing, empty or unreadable file, or pairs that do not match the task.
    """
    records = read_texts(path, key, text_column, pair_column)
    has_pairs = records[0][1] is not None
    if has_pairs != paired:
        raise DataError(
            f"{path}: {'has' if has_pairs else 'has no'} second-sentence column but the task "
            f"classifies {'sentence pairs' if paired else 'single texts'}; "
            + (
                f"set {key.rpartition('.')[0]}.text_pair_column to the second sentence's column"
                if paired
                else "use a file of single texts"
            )
        )
    return [TextExample(text, UNLABELLED, pair) for text, pair in records]


def unlabelled_rest(
    task: Task, data: DataConfig, labelled: Sequence[TextExample]
) -> list[TextExample]:
    """The training split's examples beyond the labelled ``data.max_train_samples``, unlabelled.

    The task is loaded again without the limit; the rest is that training split less the
    labelled examples (as a multiset: a text that occurs twice and is labelled once stays once),
    in file order.

    Raises:
        DataError: ``data.max_train_samples`` is unset (every example is labelled), the task is
            not classification, or ``labelled`` is not a subset of the training split.
    """
    if task.kind != "classification":
        raise DataError(
            f"task {task.name}: transfer sets from the training split are for classification "
            "tasks only; SQuAD transfer examples are not supported yet"
        )
    if data.max_train_samples is None:
        raise DataError(
            "the transfer set asks for the training split's unlabelled rest, but "
            "data.max_train_samples is unset, so every training example is labelled; set "
            "data.max_train_samples to the number of labelled examples"
        )
    full = task.load(dataclasses.replace(data, max_train_samples=None)).train
    left = Counter((e.text, e.text_pair, e.label) for e in labelled)
    rest = []
    for example in full:
        key = (example.text, example.text_pair, example.label)
        if left[key] > 0:
            left[key] -= 1
        else:
            rest.append(TextExample(example.text, UNLABELLED, example.text_pair))
    if sum(left.values()):
        raise DataError(
            f"{sum(left.values())} of {len(labelled)} labelled examples are not in the training "
            "split of this data config; pass the labelled examples loaded with the same config"
        )
    return rest


def sample_unlabelled(
    unlabelled: Sequence[TextExample], limit: int | None, seed: int
) -> list[TextExample]:
    """At most ``limit`` of ``unlabelled`` (``transfer.max_unlabelled``): a sample drawn with
    ``seed``, kept in their order; all of them when ``limit`` is None or not smaller."""
    if limit is None or limit >= len(unlabelled):
        return list(unlabelled)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(unlabelled), size=limit, replace=False))
    return [unlabelled[int(i)] for i in chosen]


def transfer_set(
    labelled: Sequence[TextExample],
    unlabelled: Sequence[TextExample] = (),
    *,
    settings: AugmentSettings | None = None,
    augment_from: AugmentFrom = "labelled",
    tokenizer: Any = None,
    table: np.ndarray | None = None,
    seed: int = 0,
    progress: Sink | None = None,
) -> list[TextExample]:
    """The transfer set: ``unlabelled`` then the augmented copies, every label ``UNLABELLED``.

    Args:
        labelled: the labelled training examples (not part of the result).
        unlabelled: unlabelled texts (:func:`unlabelled_file`, :func:`unlabelled_rest`).
        settings: augmentation settings; None makes no copies.
        augment_from: copies of the ``labelled`` examples only, or of ``all`` (also unlabelled).
        tokenizer: the students' fast tokenizer (needed with ``settings``).
        table: the neighbour table (needed with ``settings``).
        seed: the augmentation seed.
        progress: where progress lines go.
    """
    _check_pairs(labelled, unlabelled)
    out = [TextExample(e.text, UNLABELLED, e.text_pair) for e in unlabelled]
    if settings is None:
        return out
    if augment_from not in ("labelled", "all"):
        raise ConfigError(f"augment_from = {augment_from!r}; one of 'labelled', 'all'")
    if tokenizer is None or table is None:
        raise ValueError("augmentation needs the tokenizer and the neighbour table")
    sources = [*labelled, *unlabelled] if augment_from == "all" else list(labelled)
    return out + augment(sources, tokenizer, table, settings, seed, progress)


def _check_pairs(labelled: Sequence[TextExample], unlabelled: Sequence[TextExample]) -> None:
    kinds = {e.text_pair is not None for e in [*labelled, *unlabelled]}
    if len(kinds) > 1:
        raise DataError(
            "the transfer set mixes single texts and sentence pairs; give unlabelled texts of "
            "the task's kind (a pair column for a sentence-pair task)"
        )


def transfer_key(
    labelled: Sequence[TextExample],
    unlabelled: Sequence[TextExample],
    settings: AugmentSettings | None,
    augment_from: AugmentFrom,
    tokenizer: Any,
    table: np.ndarray | None,
    seed: int,
) -> str:
    """The cache key of a transfer set: the content of everything that makes it."""
    copies = settings is not None
    parts = [
        examples_digest(list(labelled)) if copies else "-",
        examples_digest(list(unlabelled)),
        repr(settings),
        augment_from if copies else "-",
        str(seed) if copies else "-",
        tokenizer_digest(tokenizer) if copies else "-",
        hashlib.sha256(np.ascontiguousarray(table).tobytes()).hexdigest() if copies else "-",
    ]
    return fingerprint(*parts)


def cached_transfer_set(
    cache_dir: Path,
    labelled: Sequence[TextExample],
    unlabelled: Sequence[TextExample] = (),
    *,
    settings: AugmentSettings | None = None,
    augment_from: AugmentFrom = "labelled",
    tokenizer: Any = None,
    table: np.ndarray | None = None,
    seed: int = 0,
    progress: Sink | None = None,
) -> list[TextExample]:
    """:func:`transfer_set`, made once per content and read back from
    ``<cache_dir>/transfer/<transfer_key>/texts.jsonl`` after that."""
    args = (labelled, unlabelled, settings, augment_from, tokenizer, table, seed)
    folder = cache_dir / "transfer" / transfer_key(*args)

    def build(tmp: Path) -> None:
        examples = transfer_set(
            labelled,
            unlabelled,
            settings=settings,
            augment_from=augment_from,
            tokenizer=tokenizer,
            table=table,
            seed=seed,
            progress=progress,
        )
        lines = (json.dumps([e.text, e.text_pair]) for e in examples)
        (tmp / "texts.jsonl").write_text("".join(line + "\n" for line in lines))

    cached_folder(folder, "texts.jsonl", build)
    with open(folder / "texts.jsonl", encoding="utf-8") as handle:
        return [TextExample(text, UNLABELLED, pair) for text, pair in map(json.loads, handle)]


def study_transfer_set(
    config: StudyConfig,
    task: Task,
    labelled: Sequence[TextExample],
    data: DataConfig,
    tokenizer: Any,
    progress: Sink | None = None,
) -> list[TextExample]:
    """The transfer set the study's ``transfer:`` section asks for (cached by content).

    Unlabelled texts come from ``transfer.file`` and, with ``transfer.unlabelled_rest``, from
    the training split beyond the labelled ``data.max_train_samples``; augmented copies (with
    ``transfer.augment``) use the student source's word-embedding neighbours and the seed
    ``transfer.seed`` (default ``data.seed``).

    Raises:
        DataError: the task is not classification, or its texts do not fit the file's.
    """
    transfer = config.transfer
    if transfer is None:
        return []
    if task.kind != "classification":
        raise DataError(
            f"{config.source_file}: transfer: task {task.name} is not a classification task; "
            "transfer sets are for classification only: remove the transfer section"
        )
    paired = any(e.text_pair is not None for e in labelled)
    unlabelled: list[TextExample] = []
    if config.paths.transfer_file is not None:
        unlabelled += unlabelled_file(
            config.paths.transfer_file,
            "transfer.file",
            paired,
            transfer.text_column,
            transfer.text_pair_column,
        )
    if transfer.unlabelled_rest:
        unlabelled += unlabelled_rest(task, data, labelled)
    seed = config.data.seed if transfer.seed is None else transfer.seed
    unlabelled = sample_unlabelled(unlabelled, transfer.max_unlabelled, seed)
    settings, table = None, None
    if transfer.augment is not None:
        settings = AugmentSettings(**dataclasses.asdict(transfer.augment))
        embeddings = source_embeddings(config.paths.student_source)
        table = cached_neighbour_table(
            Path(config.cache_dir), embeddings, tokenizer, settings.neighbours
        )
    return cached_transfer_set(
        Path(config.cache_dir),
        labelled,
        unlabelled,
        settings=settings,
        augment_from=transfer.augment_from,
        tokenizer=tokenizer,
        table=table,
        seed=seed,
        progress=progress,
    )
