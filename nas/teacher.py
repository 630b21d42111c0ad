"""The teacher: loading it, checking its tokenizer, and its logits computed once and cached.

Logits are cached under ``<cache_dir>/logits/<fingerprint>/logits.npy``, where the fingerprint
covers the teacher's files and the tokenized features (which already encode the data, the
tokenizer, the max length and the stride). Every trial and every process on the node memory-maps
the same file; a file lock makes concurrent workers compute it once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    PreTrainedModel,
)

from nas.cache import cached_folder, file_lock, fingerprint, write_folder_atomically
from nas.config import StudyConfig, TeacherTrainConfig
from nas.errors import CheckpointError, ConfigError
from nas.tasks.base import Features, QAExample, Task, TaskKind
from nas.train import predict, resolve_device, train
from nas.vocab import build_tokenizer, frequent_words

Progress = Callable[[str], None]
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt")


def model_class(kind: TaskKind) -> Any:
    return AutoModelForQuestionAnswering if kind == "qa" else AutoModelForSequenceClassification


def load_teacher(path: str, kind: TaskKind, num_labels: int) -> PreTrainedModel:
    """A fine-tuned teacher from a hub name or folder; errors name the path and the fix."""
    hint = (
        "give a fine-tuned checkpoint folder (config.json + model.safetensors) or a hub name, "
        "or train one with `nas teacher train STUDY.yaml`"
    )
    try:
        config = AutoConfig.from_pretrained(path)
        model = model_class(kind).from_pretrained(path)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"teacher '{path}' cannot be loaded ({first}); {hint}") from None
    if kind == "classification" and config.num_labels != num_labels:
        raise CheckpointError(
            f"teacher '{path}' has {config.num_labels} labels but the task has {num_labels}; "
            "use a teacher fine-tuned on this task's label set"
        )
    return model


def load_tokenizer(path: str, role: str) -> Any:
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{role} '{path}' has no readable tokenizer ({first}); save the tokenizer next to "
            "the weights (tokenizer.save_pretrained)"
        ) from None


def check_same_tokenization(
    teacher: Any, student: Any, teacher_name: str, student_name: str
) -> None:
    """Distillation on cached logits needs identical tokens: same vocabulary, same casing."""
    t_vocab, s_vocab = teacher.get_vocab(), student.get_vocab()
    if t_vocab != s_vocab:
        only_t = len(set(t_vocab) - set(s_vocab))
        only_s = len(set(s_vocab) - set(t_vocab))
        raise CheckpointError(
            f"teacher '{teacher_name}' ({len(t_vocab)} tokens) and student source "
            f"'{student_name}' ({len(s_vocab)} tokens) tokenize differently ({only_t} tokens only "
            f"in the teacher, {only_s} only in the student, or ids differ); pick a student "
            "source with the teacher's tokenizer, e.g. distilbert-base-uncased for "
            "bert-base-uncased teachers"
        )
    t_lower = getattr(teacher, "do_lower_case", None)
    s_lower = getattr(student, "do_lower_case", None)
    if t_lower != s_lower:
        raise CheckpointError(
            f"teacher '{teacher_name}' lowercases={t_lower} but student source '{student_name}' "
            f"lowercases={s_lower}; use the cased or uncased variant of both"
        )


def teacher_identity(path: str) -> str:
    """What identifies a teacher's weights: file names, sizes and mtimes for a folder."""
    folder = Path(path)
    if not folder.is_dir():
        return f"hub:{path}"
    parts = [str(folder.resolve())]
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in _WEIGHT_SUFFIXES:
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def features_digest(features: Features) -> str:
    h = hashlib.sha256()
    for array in (features.ids, features.type_ids, features.starts):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def cached_logits(
    cache_dir: Path,
    teacher_path: str,
    features: Features,
    kind: TaskKind,
    num_labels: int,
    pad_id: int,
    device: str = "auto",
    batch_size: int = 64,
    progress: Progress | None = None,
) -> np.ndarray:
    """Teacher logits for ``features``, computed on first use, then memory-mapped from disk."""
    key = fingerprint(teacher_identity(teacher_path), features_digest(features), kind)

    def build(tmp: Path) -> None:
        if progress:
            progress(
                f"teacher logits: one pass of {teacher_path} over {len(features)} features "
                "(cached for every trial)"
            )
        model = load_teacher(teacher_path, kind, num_labels)
        logits = predict(
            model, features, kind, pad_id, batch_size, resolve_device(device), progress
        )
        np.save(tmp / "logits.npy", logits)
        meta = {"teacher": teacher_path, "kind": kind, "features": len(features)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))

    folder = cached_folder(cache_dir / "logits" / key, "logits.npy", build)
    return np.load(folder / "logits.npy", mmap_mode="r")


# ----------------------------------------------------------------------------- teacher training


def ensure_teacher(config: StudyConfig, progress: Progress | None = None) -> str:
    """The teacher's path; trains it first when it is missing and the study says how."""
    path = config.resolve(config.teacher.path) or config.teacher.path
    if Path(path).is_dir() or config.teacher.train is None:
        return path
    folder = Path(path)
    with file_lock(folder.parent / f"{folder.name}.lock"):
        if not folder.is_dir():
            train_teacher(config, folder, progress)
    return path


def train_teacher(
    config: StudyConfig, out: Path, progress: Progress | None = None
) -> dict[str, float]:
    """Fine-tune a teacher on the study's task and save it (model, tokenizer, teacher.json)."""
    from nas.data import encoded, load_splits  # data imports tasks; keep this module light

    spec = config.teacher.train
    if spec is None:
        raise ConfigError(f"{config.source_file}: teacher.train is not set; add it to train one")
    task, splits, data = load_splits(config)
    num_labels = task.num_labels(splits)
    tokenizer, model = _teacher_start(config, spec, task, num_labels, splits.train)
    cache = Path(config.cache_dir)
    train_f = encoded(task, splits.train, tokenizer, data, cache)
    eval_f = encoded(task, splits.eval, tokenizer, data, cache)
    params = {
        "batch_size": spec.batch_size,
        "epochs": spec.epochs,
        "seed": spec.seed,
        "learning_rate": spec.learning_rate,
        "weight_decay": spec.weight_decay,
        "warmup_ratio": spec.warmup_ratio,
    }
    if progress:
        n = sum(p.numel() for p in model.parameters())
        progress(
            f"teacher: training a {n:,}-parameter {model.config.model_type} on "
            f"{len(splits.train)} {task.name} examples"
        )
    pad_id = tokenizer.pad_token_id or 0
    train(model, train_f, None, params, config.training, task.kind, pad_id, progress)
    logits = predict(
        model,
        eval_f,
        task.kind,
        pad_id,
        config.training.eval_batch_size,
        resolve_device(config.training.device),
    )
    metrics = task.evaluate(splits.eval, eval_f, logits, data)
    record = {
        "study": config.name,
        "task": task.name,
        "data": splits.description,
        "train": dataclasses.asdict(spec),
        "metrics": metrics,
    }

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "teacher.json").write_text(json.dumps(record, indent=2))

    write_folder_atomically(out, write)
    if progress:
        progress(f"teacher saved to {out}: {json.dumps(metrics)}")
    return metrics


def _texts(examples: list[Any]) -> Iterator[str]:
    for ex in examples:
        if isinstance(ex, QAExample):
            yield ex.question
            yield ex.context
        else:
            yield ex.text
            yield ex.text_pair or ""


def _teacher_start(
    config: StudyConfig,
    spec: TeacherTrainConfig,
    task: Task,
    num_labels: int,
    train_examples: list[Any],
) -> tuple[Any, PreTrainedModel]:
    """Tokenizer and initial model: a pretrained checkpoint, or a random BERT from ``arch``."""
    extra: dict[str, Any] = {} if task.kind == "qa" else {"num_labels": num_labels}
    torch.manual_seed(spec.seed)  # the random init (and any new head) is part of the recipe
    if spec.init is not None:
        init = config.resolve(spec.init) or spec.init
        tokenizer = load_tokenizer(init, "teacher.train.init")
        try:
            model = model_class(task.kind).from_pretrained(init, **extra)
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"teacher.train.init '{init}' cannot be loaded ({exc})"
            ) from None
        return tokenizer, model
    tokenizer = task.offline_tokenizer(config.data) if hasattr(task, "offline_tokenizer") else None
    if tokenizer is None and spec.vocab_from_data:
        tokenizer = build_tokenizer(frequent_words(_texts(train_examples), spec.vocab_from_data))
    if tokenizer is None:
        source = config.resolve(config.student_source) or config.student_source
        tokenizer = load_tokenizer(source, "student source (tokenizer for the new teacher)")
    allowed = set(BertConfig().to_dict())
    unknown = sorted(set(spec.arch) - allowed)
    if unknown:
        raise ConfigError(
            f"{config.source_file}: teacher.train.arch has unknown key "
            f"'{unknown[0]}'; use BertConfig fields such as hidden_size, "
            "num_hidden_layers, num_attention_heads, intermediate_size"
        )
    arch = {"max_position_embeddings": max(512, config.data.max_seq_length), **spec.arch}
    bert = BertConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id or 0, **arch, **extra
    )
    cls = BertForQuestionAnswering if task.kind == "qa" else BertForSequenceClassification
    return tokenizer, cls(bert)
