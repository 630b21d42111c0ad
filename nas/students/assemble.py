"""A trial's student from its typed parameters: any family, with the vocabulary it keeps.

:func:`build_trial_student` is what a trial builds (``nas.trial.run``): a DistilBERT student
sliced from the source (:func:`nas.students.build.build_student`), or a ``bilstm`` / ``cnn`` /
``bow`` student (:mod:`nas.students.families`) whose embeddings start from the source's word
embeddings reduced by PCA, or at random. With a pruned vocabulary
(:mod:`nas.students.vocab`) the embedding keeps the rows of the kept tokens, in their new id
order, so the student reads the ids the reduced tokenizer gives. :func:`save_trial_student`
writes either kind of student to a folder with no pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.errors import InvalidConfig
from nas.params import StudentShape, TrialParams
from nas.students.build import build_student
from nas.students.calibration import ActivationStats
from nas.students.families import FamilyModel, build_family, save_family
from nas.students.sources import EMB, SourceModel, load_source
from nas.students.vocab import PrunedVocab, prune_embeddings


def build_trial_student(
    params: TrialParams,
    source: str | Path | SourceModel,
    task_kind: str,
    num_labels: int,
    *,
    calibration: ActivationStats | None = None,
    vocab: PrunedVocab | None = None,
    seed: int | None = None,
) -> nn.Module:
    """The student ``params`` describe, in train mode, reading ids of ``vocab`` when given.

    Raises:
        InvalidConfig: a non-transformer family for question answering (its students have no
            span head), or a shape that cannot be built.
    """
    src = source if isinstance(source, SourceModel) else load_source(source)
    if isinstance(params.shape, StudentShape):
        model = build_student(
            params.shape, src, task_kind, num_labels, seed=seed, calibration=calibration
        )
        if vocab is not None:
            prune_student_vocab(model, vocab)
        return model
    if task_kind != "classification":
        raise InvalidConfig(
            f"family {params.family} is a text classifier; a {task_kind} study can only search "
            "distilbert students (set family: distilbert in the search space)"
        )
    words = src.tensors[EMB + "word_embeddings.weight"]  # (source vocab, dim)
    if vocab is not None:
        words = prune_embeddings(words, vocab)  # (kept, dim)
    return build_family(
        params.shape,
        int(words.shape[0]),
        num_labels,
        embeddings=words if params.embeddings == "source" else None,
        freeze=params.freeze_embeddings,
        seed=seed,
    )


def prune_student_vocab(model: Any, vocab: PrunedVocab) -> None:
    """Keep only ``vocab``'s rows of a DistilBERT student's word embeddings, in place; its
    config's ``vocab_size`` and ``pad_token_id`` follow."""
    old = model.get_input_embeddings()  # (source vocab, dim)
    if old.num_embeddings != len(vocab.id_map):
        raise InvalidConfig(
            f"the student has {old.num_embeddings} word embeddings but the pruned vocabulary "
            f"was made from a tokenizer of {len(vocab.id_map)} tokens; use the source's tokenizer"
        )
    pad = model.config.pad_token_id
    new_pad = None if pad is None else int(vocab.remap([pad])[0])
    new = nn.Embedding(vocab.size, old.embedding_dim, padding_idx=new_pad)
    with torch.no_grad():
        new.weight.copy_(prune_embeddings(old.weight, vocab))
    new.weight.requires_grad_(old.weight.requires_grad)
    model.set_input_embeddings(new)
    model.config.vocab_size = vocab.size
    model.config.pad_token_id = new_pad


def save_trial_student(model: nn.Module, folder: Path) -> None:
    """Write ``model``'s weights and config to ``folder``: a Hugging Face folder for DistilBERT
    students, ``nas_family.json`` beside ``model.safetensors`` for the other families."""
    if isinstance(model, FamilyModel):
        save_family(model, folder)
        return
    model.save_pretrained(str(folder), safe_serialization=True)  # type: ignore[operator]
