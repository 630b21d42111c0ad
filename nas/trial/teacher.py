"""The teacher: loading it, checking its tokenizer, and its logits computed once and cached.

Logits are cached under ``<cache_dir>/logits/<fingerprint>/logits.npy``, where the fingerprint
covers the sha256 of the teacher's files (or a hub name's resolved revision) and the tokenized
features (which already encode the data, the tokenizer, the max length and the stride). Every
trial and every process on the node memory-maps the same file; a file lock makes concurrent
workers compute it once.

A teacher nas trains records its recipe in ``teacher.json`` (``teacher_recipe``); when the study's
``teacher.train`` or data no longer match it, ``ensure_teacher`` trains it again.
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

from nas.cache import cached_folder, file_digest, file_lock, fingerprint, write_folder_atomically
from nas.config import DataConfig, StudyConfig, TeacherTrainConfig
from nas.errors import CheckpointError, ConfigError, teacher_out_of_memory
from nas.layer_plan import TeacherShape
from nas.tasks import Features, QAExample, Splits, Task, TaskKind, build_tokenizer, frequent_words
from nas.trial.loop import (
    catch_out_of_memory,
    inject_teacher_oom_fault,
    predict,
    resolve_device,
    train,
)

Progress = Callable[[str], None]
Loaded = tuple[Task, Splits, DataConfig]  # what nas.trial.data.load_splits returns
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt")
_RECORD = "teacher.json"  # nas's own notes on a teacher it trained; not part of its identity
# Fields of the study's `training` section that train_teacher reads too.
_TRAINING_FIELDS = ("max_steps", "grad_clip", "length_grouped")


def model_class(kind: TaskKind) -> Any:
    return AutoModelForQuestionAnswering if kind == "qa" else AutoModelForSequenceClassification


_LOAD_HINT = (
    "give a fine-tuned checkpoint folder (config.json + model.safetensors) or a hub name, "
    "or train one with `nas teacher train STUDY.yaml`"
)


def _cannot_load(path: str, exc: Exception) -> CheckpointError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(f"teacher '{path}' cannot be loaded ({first}); {_LOAD_HINT}")


def load_teacher(path: str, kind: TaskKind, num_labels: int) -> PreTrainedModel:
    """A fine-tuned teacher from a hub name or folder; errors name the path and the fix."""
    try:
        config = AutoConfig.from_pretrained(path)
        model = model_class(kind).from_pretrained(path)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise _cannot_load(path, exc) from None
    if kind == "classification" and config.num_labels != num_labels:
        raise CheckpointError(
            f"teacher '{path}' has {config.num_labels} labels but the task has {num_labels}; "
            "use a teacher fine-tuned on this task's label set"
        )
    return model


def teacher_shape(path: str) -> TeacherShape:
    """The teacher's depth, width and family, from its config (no weights loaded)."""
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise _cannot_load(path, exc) from exc
    return TeacherShape.from_config(config.to_dict(), path)


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


def check_teacher_labels(path: str, kind: TaskKind, label_names: tuple[str, ...]) -> None:
    """The teacher's ``id2label`` must be the task's label order (a cheap read of config.json).

    Generic names (LABEL_0, LABEL_1, ...) say nothing about the order and are accepted; another
    number of labels, other names or the same names in another order are errors.
    """
    if kind != "classification":
        return
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        raise _cannot_load(path, exc) from None
    id2label = {int(i): str(name) for i, name in (config.id2label or {}).items()}
    teacher = [id2label.get(i, f"LABEL_{i}") for i in range(len(id2label))]
    task = list(label_names)
    if len(teacher) != len(task):
        raise CheckpointError(
            f"teacher '{path}' has {len(teacher)} labels {teacher} but the task has "
            f"{len(task)} {task}; use a teacher fine-tuned on this task's label set"
        )
    if teacher == [f"LABEL_{i}" for i in range(len(teacher))]:
        return  # generic names: nothing to compare
    fold = [name.casefold() for name in teacher], [name.casefold() for name in task]
    if fold[0] == fold[1]:
        return
    if sorted(fold[0]) == sorted(fold[1]):
        raise CheckpointError(
            f"teacher '{path}' orders its labels {teacher} but the task orders them {task}; "
            f"set data.label_names: {teacher} in the study to use the teacher's order, or fix "
            "id2label/label2id in the teacher's config.json"
        )
    raise CheckpointError(
        f"teacher '{path}' has labels {teacher} but the task has {task}; use a teacher "
        "fine-tuned on this task's labels, or set data.label_names to the teacher's names"
    )


def checkpoint_identity(path: str) -> str:
    """What identifies a checkpoint's weights, whatever its folder's name or file times.

    A folder: the sha256 of each file's bytes (memoised per process, see ``file_digest``). A hub
    name: its revision in the local hub cache, else the name marked unresolved.
    """
    folder = Path(path)
    if not folder.is_dir():
        return _hub_identity(path)
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in _WEIGHT_SUFFIXES and f.name != _RECORD:
            h.update(f"{f.name}:{file_digest(f)}\n".encode())
    return f"files:{h.hexdigest()}"


def _hub_identity(name: str) -> str:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json")
    except (ValueError, OSError):  # not a valid repo id
        found = None
    if isinstance(found, str):  # <cache>/models--org--name/snapshots/<commit>/config.json
        return f"hub:{name}@{Path(found).parent.name}"
    return f"hub:{name}:unresolved"


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
    key = fingerprint(checkpoint_identity(teacher_path), features_digest(features), kind)

    def build(tmp: Path) -> None:
        if progress:
            progress(
                f"teacher logits: one pass of {teacher_path} over {len(features)} features "
                "(cached for every trial)"
            )
        model = load_teacher(teacher_path, kind, num_labels)
        inject_teacher_oom_fault("pass")
        device_ = resolve_device(device)
        logits = predict(
            model, features, kind, pad_id, batch_size, device_, progress, what="teacher pass"
        )
        np.save(tmp / "logits.npy", logits)
        meta = {"teacher": teacher_path, "kind": kind, "features": len(features)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))

    what = f"the teacher pass of {teacher_path} at batch size {batch_size}"
    oom = teacher_out_of_memory(what, "training.eval_batch_size")
    folder = cached_folder(
        cache_dir / "logits" / key,
        "logits.npy",
        lambda tmp: catch_out_of_memory(lambda: build(tmp), oom),  # no folder is left on OOM
    )
    return np.load(folder / "logits.npy", mmap_mode="r")


# ----------------------------------------------------------------------------- teacher training


def ensure_teacher(
    config: StudyConfig, progress: Progress | None = None, loaded: Loaded | None = None
) -> str:
    """The teacher's path; trains it when the study says how and it is missing or stale.

    Without ``teacher.train`` the teacher is the user's and is used as it is; so is a folder
    without ``teacher.json``. A folder nas trained (it has ``teacher.json``) whose recipe differs
    from the study's is trained again into the same folder, which stays whole until the new
    teacher replaces it; unless it was trained for another study and lies outside this study's
    cache: nas does not overwrite that one, and says so. ``loaded`` is what
    ``nas.trial.data.load_splits(config)`` returned, when the caller has it.
    """
    path = config.paths.teacher
    folder = Path(path)
    if config.teacher.train is None:
        return path
    if folder.is_dir() and not (folder / _RECORD).is_file():
        return path  # a user-given teacher: nothing says how it was made
    if loaded is None:
        from nas.trial.data import load_splits  # data imports tasks; keep this module light

        loaded = load_splits(config)
    recipe = teacher_recipe(config, *loaded)
    with file_lock(folder.parent / f"{folder.name}.lock"):
        if not folder.is_dir():
            train_teacher(config, folder, progress, loaded)
            return path
        reason = _stale_reason(config, folder, recipe)
        if reason is not None:
            if progress:
                progress(f"{reason}: retraining into {folder}")
            train_teacher(config, folder, progress, loaded)
    return path


def teacher_recipe(
    config: StudyConfig, task: Task, splits: Splits, data: DataConfig
) -> dict[str, Any]:
    """What a teacher nas trains is made from, flat and JSON-ready (compared key by key)."""
    from nas.trial.data import examples_digest

    spec = config.teacher.train
    if spec is None:
        raise ConfigError(f"{config.source_file}: teacher.train is not set; add it to train one")
    recipe: dict[str, Any] = {}
    for key, value in dataclasses.asdict(spec).items():
        if key == "arch":
            recipe.update({f"arch.{k}": v for k, v in sorted(value.items())})
        elif key == "keep_best" and not value:
            continue  # teachers recorded before the option existed stay current
        else:
            recipe[key] = value
    init = config.paths.teacher_init
    recipe["init_weights"] = checkpoint_identity(init) if init is not None else None
    if spec.init is None and not hasattr(task, "offline_tokenizer") and not spec.vocab_from_data:
        recipe["tokenizer"] = f"student_source {config.student_source}"  # see _teacher_start
    recipe.update(
        {
            "task": task.name,
            "train_examples": examples_digest(splits.train),
            "label_names": list(splits.label_names),
            "max_seq_length": data.max_seq_length,
            "doc_stride": data.doc_stride,
            "max_query_length": data.max_query_length,
        }
    )
    recipe.update({f"training.{k}": getattr(config.training, k) for k in _TRAINING_FIELDS})
    back: dict[str, Any] = json.loads(json.dumps(recipe))  # as teacher.json gives them back
    return back


def recipe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key old -> new`` for each difference, in the new recipe's order."""
    keys = [*new, *(k for k in old if k not in new)]
    return [
        f"{k} {_shown(old.get(k, 'unset'))} -> {_shown(new.get(k, 'unset'))}"
        for k in keys
        if old.get(k, "unset") != new.get(k, "unset")
    ]


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and len(value) > 24:
        return value[:16] + "..."  # digests
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _stale_reason(config: StudyConfig, folder: Path, recipe: dict[str, Any]) -> str | None:
    """Why the teacher in ``folder`` must be trained again, or None when it is current."""
    try:
        record = json.loads((folder / _RECORD).read_text())
    except (OSError, ValueError):
        record = {}
    old = record.get("recipe") if isinstance(record, dict) else None
    changes = recipe_changes(old, recipe) if isinstance(old, dict) else None
    if changes == []:
        return None
    what = "; ".join(changes) if changes else "no recipe fingerprint recorded"
    cache = Path(config.cache_dir).resolve()
    trained_for = record.get("study") if isinstance(record, dict) else None
    if trained_for != config.name and not folder.resolve().is_relative_to(cache):
        raise ConfigError(
            f"{config.source_file}: teacher.path {folder} was trained by nas for study "
            f"'{trained_for}' with another recipe than this study's teacher.train ({what}); "
            "delete that folder to train this study's teacher into it, or remove teacher.train "
            "from the study to use that teacher as it is"
        )
    if changes is None:
        return f"teacher {folder / _RECORD} has no recipe fingerprint recorded"
    return f"teacher recipe changed ({what})"


def train_teacher(
    config: StudyConfig, out: Path, progress: Progress | None = None, loaded: Loaded | None = None
) -> dict[str, float]:
    """Fine-tune a teacher on the study's task and save it (model, tokenizer, teacher.json)."""
    from nas.trial.data import encoded, load_splits  # data imports tasks; keep this module light

    spec = config.teacher.train
    if spec is None:
        raise ConfigError(f"{config.source_file}: teacher.train is not set; add it to train one")
    task, splits, data = loaded or load_splits(config)
    num_labels = task.num_labels(splits)
    tokenizer, model = _teacher_start(
        config, spec, task, num_labels, splits.train, splits.label_names
    )
    cache = Path(config.cache_dir)
    train_f = encoded(task, splits.train, tokenizer, data, cache)
    eval_f = encoded(task, splits.eval, tokenizer, data, cache)
    if progress:
        n = sum(p.numel() for p in model.parameters())
        progress(
            f"teacher: training a {n:,}-parameter {model.config.model_type} on "
            f"{len(splits.train)} {task.name} examples"
        )
    pad_id = tokenizer.pad_token_id or 0
    batch, device = config.training.eval_batch_size, resolve_device(config.training.device)

    def score() -> dict[str, float]:
        logits = predict(model, eval_f, task.kind, pad_id, batch, device)
        return task.evaluate(splits.eval, eval_f, logits, data)

    best = _BestEpoch(task.primary_metric, progress)

    def fit() -> None:
        inject_teacher_oom_fault("train")
        on_epoch = (lambda epoch: best.offer(epoch, score(), model)) if spec.keep_best else None
        train(  # on the hard labels: the teacher has no teacher
            model,
            train_f,
            spec,
            config.training,
            task.kind,
            pad_id,
            seed=spec.seed,
            progress=progress,
            on_epoch=on_epoch,
            what="teacher training",
        )

    what = f"training the teacher at batch size {spec.batch_size}"
    setting = "teacher.train.batch_size"
    if spec.keep_best:
        what += f" (scoring each epoch at batch size {batch})"
        setting += " (or training.eval_batch_size)"
    catch_out_of_memory(fit, teacher_out_of_memory(what, setting))
    if spec.keep_best:
        metrics = best.restore(model)
    else:
        what = f"evaluating the teacher at batch size {batch}"
        metrics = catch_out_of_memory(
            score, teacher_out_of_memory(what, "training.eval_batch_size")
        )
    record = {
        "study": config.name,
        "task": task.name,
        "data": splits.description,
        "train": dataclasses.asdict(spec),
        "recipe": teacher_recipe(config, task, splits, data),  # ensure_teacher compares it
        "metrics": metrics,
    }
    if spec.keep_best:
        record["best_epoch"] = best.record()

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "teacher.json").write_text(json.dumps(record, indent=2))

    write_folder_atomically(out, write)
    if progress:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
        progress(f"teacher saved to {out}: {shown}")
    return metrics


class _BestEpoch:
    """``teacher.train.keep_best``: the selection score of every epoch and the best one's
    weights (a copy on the CPU: one model's worth of memory)."""

    def __init__(self, metric: str, progress: Progress | None) -> None:
        self.metric, self.progress = metric, progress
        self.scores: list[float] = []
        self.epoch = 0
        self.metrics: dict[str, float] = {}
        self.state: dict[str, torch.Tensor] = {}

    def offer(self, epoch: int, metrics: dict[str, float], model: torch.nn.Module) -> None:
        score = float(metrics[self.metric])
        self.scores.append(score)
        if not self.state or score > float(self.metrics[self.metric]):
            self.epoch, self.metrics = epoch, metrics
            self.state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
        if self.progress:
            self.progress(
                f"teacher epoch {epoch}: {self.metric} {score:.2f} on the selection split "
                f"(best {float(self.metrics[self.metric]):.2f}, epoch {self.epoch})"
            )

    def restore(self, model: torch.nn.Module) -> dict[str, float]:
        """Load the best epoch's weights into ``model``; its selection metrics."""
        if not self.state:
            raise ConfigError("teacher.train.keep_best: training ran no epoch to keep")
        model.load_state_dict(self.state)
        return self.metrics

    def record(self) -> dict[str, Any]:
        """For teacher.json: which epoch was kept, and every epoch's score."""
        scores = [round(s, 4) for s in self.scores]
        return {"epoch": self.epoch, "metric": self.metric, "scores": scores}


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
    label_names: tuple[str, ...] = (),
) -> tuple[Any, PreTrainedModel]:
    """Tokenizer and initial model: a pretrained checkpoint, or a random BERT from ``arch``."""
    extra: dict[str, Any] = {} if task.kind == "qa" else {"num_labels": num_labels}
    if task.kind == "classification" and len(label_names) == num_labels:
        extra["id2label"] = dict(enumerate(label_names))  # the saved config names the labels
        extra["label2id"] = {name: i for i, name in enumerate(label_names)}
    torch.manual_seed(spec.seed)  # the random init (and any new head) is part of the recipe
    if spec.init is not None:
        init = config.paths.teacher_init
        assert init is not None  # set exactly when spec.init is
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
        source = config.paths.student_source
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
