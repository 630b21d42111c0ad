"""What an exported trial's model card states beyond its ``nas.json``: the model class, the
study's data settings, the hub dataset and base model (hub ids only), the student source's
license, the label names, and the tokenizer length the export writes.

Everything here reads files already on disk (the export folder, a local source folder, the
Hugging Face cache); nothing is downloaded.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml

from nas.config import DataConfig
from nas.errors import ConfigError
from nas.results.model_card import CLASSIFIER_CLASS, HUB_IDS, QA_CLASS
from nas.study import config_snapshot

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # name or org/name
_LABELS = re.compile(r"labels (\[.*\])\s*$")  # how a classification task ends its description


def model_class(config: Mapping[str, Any]) -> str:
    """The ``transformers`` auto class that loads the checkpoint, from its ``architectures``."""
    names = config.get("architectures") or []
    architectures = " ".join(str(n) for n in names) if isinstance(names, list) else str(names)
    if "ForQuestionAnswering" in architectures:
        return QA_CLASS
    if "ForSequenceClassification" in architectures:
        return CLASSIFIER_CLASS
    return "AutoModel"


def study_data(study: optuna.Study) -> tuple[dict[str, Any], bool]:
    """The study's ``data`` settings (DataConfig's defaults under its config snapshot), and
    whether the study has a snapshot at all."""
    settings = dataclasses.asdict(DataConfig())
    config = config_snapshot(study)
    data = config.get("data") if config is not None else None
    if isinstance(data, dict):
        settings.update(data)
    return settings, isinstance(data, dict)


def hub_id(value: Any) -> str | None:
    """``value`` when it names a hub repository (never a local path), else None.

    Study paths are resolved against the study file, so a value that is not absolute and does
    not start with ``.`` or ``~`` is one the config kept as a hub name (``config.resolve_path``).
    """
    if not isinstance(value, str) or value.startswith((".", "~")) or Path(value).is_absolute():
        return None
    return value if HUB_ID.fullmatch(value) else None


def hub_dataset(task_name: Any, data: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """``(hub id, config, test split)`` of the data a study read from the hub; None when it
    read local files or generated its data."""
    from nas.tasks import get_task

    if data.get("train_file"):
        return None
    try:
        task = get_task(str(task_name))
    except ConfigError:
        return None
    hub = data.get("hub_name") or task.hub_name
    if not hub:
        return None
    if task.kind == "qa":  # nas.tasks.squad_io.load_hub: the validation split is the test split
        return HUB_IDS.get(str(hub), str(hub)), None, "validation"
    name, _, config = str(hub).partition(":")  # as ClassificationTask._hub_target reads it
    own = getattr(task, "hub_config", None) if name == task.hub_name else None
    split = getattr(task, "hub_splits", ("train", "validation"))[1]
    return HUB_IDS.get(name, name), config or own, split


def source_license(source: Any) -> str | None:
    """The license a checkpoint declares: its README.md front matter, else its config.json;
    a local folder, or a hub id found in the local Hugging Face cache."""
    readme = _source_file(source, "README.md")
    if readme is not None:
        text = readme.read_text(errors="replace")
        end = text.find("\n---", 3)
        if text.startswith("---") and end > 0:
            try:
                meta = yaml.safe_load(text[3:end])
            except yaml.YAMLError:
                meta = None
            if isinstance(meta, dict) and isinstance(meta.get("license"), str):
                return str(meta["license"])
    config = _source_file(source, "config.json")
    if config is not None:
        try:
            value = yaml.safe_load(config.read_text(errors="replace"))  # JSON is YAML
        except yaml.YAMLError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("license"), str):
            return str(value["license"])
    return None


def _source_file(source: Any, name: str) -> Path | None:
    if not isinstance(source, str) or not source:
        return None
    if Path(source).is_absolute() or Path(source).is_dir():
        path = Path(source) / name
        return path if path.is_file() else None
    if hub_id(source) is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(source, name)
    except ValueError:  # not a valid repo id for the hub
        return None
    return Path(cached) if isinstance(cached, str) else None


def label_names(
    record: Mapping[str, Any], data: Mapping[str, Any], task_name: Any, n_labels: int
) -> tuple[str, ...]:
    """The classification labels in logit order: those the run's data description lists (what
    it trained with), else ``data.label_names``, else the task's own; () when none has
    ``n_labels`` names."""
    from nas.tasks import get_task

    found = _LABELS.search(str(record.get("data") or ""))
    candidates: list[Any] = []
    if found:
        with contextlib.suppress(ValueError, SyntaxError):
            candidates.append(ast.literal_eval(found.group(1)))
    candidates.append(data.get("label_names"))
    with contextlib.suppress(ConfigError):
        candidates.append(getattr(get_task(str(task_name)), "default_label_names", None))
    for names in candidates:
        if isinstance(names, list | tuple) and len(names) == n_labels and n_labels > 0:
            return tuple(str(n) for n in names)
    return ()


def max_length(
    data: Mapping[str, Any], has_study_data: bool, config: Mapping[str, Any]
) -> tuple[int | None, str]:
    """The tokenizer's ``model_max_length`` to export, and where it comes from in words: the
    study's ``data.max_seq_length`` (what the student was trained and scored at), capped by the
    model's ``max_position_embeddings``; the latter alone when the study records no length."""
    positions = config.get("max_position_embeddings")
    positions = positions if isinstance(positions, int) and positions > 0 else None
    seq = data.get("max_seq_length") if has_study_data else None
    seq = seq if isinstance(seq, int) and seq > 0 else None
    if seq is not None:
        allow = f"; its position embeddings allow {positions}" if positions else ""
        if positions is not None and seq > positions:
            return (
                positions,
                f"the study's data.max_seq_length {seq}, capped at the model's {positions} "
                "positions",
            )
        return (
            seq,
            f"the study's data.max_seq_length, the length nas trained and scored it at{allow}",
        )
    if positions is not None:
        return (
            positions,
            "the model's max_position_embeddings (the study records no data.max_seq_length)",
        )
    return None, "neither data.max_seq_length nor max_position_embeddings is known"
