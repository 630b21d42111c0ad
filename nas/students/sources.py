"""Source checkpoints: loading DistilBERT/BERT weights under DistilBERT parameter names.

This module owns everything students are sliced *from*: :class:`SourceModel` (float32 tensors
named as in DistilBERT), :func:`load_source` (hub name or local folder, cached per process,
:func:`clear_source_cache`), :func:`source_from_model` (an already loaded model), the checks
that a checkpoint is a supported DistilBERT/BERT encoder, and the BERT -> DistilBERT name
mapping. It also defines the parameter-name helpers (:func:`layer_prefix`, ``EMB``) that
:mod:`nas.students.build` slices with.

A BERT source is renamed to DistilBERT's layout and its segment-0 token-type embedding is folded
into the word embeddings (DistilBERT has no segments); BERT's pooler/classifier are dropped
(tanh pooler vs DistilBERT's ReLU pre_classifier).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.errors import CheckpointError

CHECKPOINT_FIX = (
    "expected a DistilBERT or BERT checkpoint folder with config.json and model.safetensors; "
    "hub names need network access"
)
EMB = "distilbert.embeddings."
LINEARS_IN = ("attention.q_lin", "attention.k_lin", "attention.v_lin", "ffn.lin1")
LINEARS_OUT = ("attention.out_lin", "ffn.lin2")
NORMS = ("sa_layer_norm", "output_layer_norm")
_LAYER_PARAMS = tuple(
    f"{module}.{kind}"
    for module in (*LINEARS_IN, *LINEARS_OUT, *NORMS)
    for kind in ("weight", "bias")
)
_BERT_LAYER_RENAMES = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}


def layer_prefix(index: int) -> str:
    """Parameter-name prefix of DistilBERT layer ``index``."""
    return f"distilbert.transformer.layer.{index}."


@dataclass(frozen=True, eq=False)
class SourceModel:
    """A checkpoint to slice students from, as float32 tensors under DistilBERT parameter names.

    ``tensors`` holds the embeddings and every layer (BERT names mapped, token-type row 0 folded
    into the word embeddings) plus the heads the checkpoint really has: ``qa_outputs.*`` and,
    for DistilBERT classifiers only, ``pre_classifier.*``/``classifier.*``. Never mutate them:
    sources are cached and shared by every trial of the process.
    """

    name: str
    model_type: str  # "distilbert" or "bert"
    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    vocab_size: int
    max_positions: int
    pad_token_id: int
    activation: str
    tensors: Mapping[str, torch.Tensor]

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def num_labels(self) -> int | None:
        """Labels of the source's DistilBERT classification head, None without one."""
        weight = self.tensors.get("classifier.weight")
        return None if weight is None else int(weight.shape[0])

    @property
    def has_qa_head(self) -> bool:
        return "qa_outputs.weight" in self.tensors


def _config_values(config: Any) -> dict[str, Any]:
    names: tuple[str, ...]
    if config.model_type == "distilbert":
        names = ("dim", "n_layers", "n_heads", "hidden_dim", "activation")
    else:
        names = ("hidden_size", "num_hidden_layers", "num_attention_heads")
        names += ("intermediate_size", "hidden_act")
    dim, n_layers, n_heads, ffn_dim, activation = (getattr(config, n) for n in names)
    return {
        "dim": dim,
        "n_layers": n_layers,
        "n_heads": n_heads,
        "ffn_dim": ffn_dim,
        "activation": activation,
        "vocab_size": config.vocab_size,
        "max_positions": config.max_position_embeddings,
        "pad_token_id": config.pad_token_id if config.pad_token_id is not None else 0,
    }


def _check_supported(config: Any, name: str) -> None:
    model_type = getattr(config, "model_type", None)
    if model_type not in ("distilbert", "bert"):
        raise CheckpointError(
            f"{name}: model_type {model_type!r} is not supported; {CHECKPOINT_FIX}"
        )
    bad = [
        flag
        for flag, ok in (
            ("is_decoder", not getattr(config, "is_decoder", False)),
            ("add_cross_attention", not getattr(config, "add_cross_attention", False)),
            (
                "position_embedding_type",
                getattr(config, "position_embedding_type", "absolute") == "absolute",
            ),
            ("activation", isinstance(_config_values(config)["activation"], str)),
        )
        if not ok
    ]
    if bad:
        raise CheckpointError(
            f"{name}: unsupported BERT variant ({', '.join(bad)}); {CHECKPOINT_FIX}"
        )


def _distilbert_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        key = key.removeprefix("distilbert.")
        if key.startswith(("embeddings.", "transformer.")):
            out["distilbert." + key] = value
        elif key.startswith(("qa_outputs.", "pre_classifier.", "classifier.")):
            out[key] = value
    return out


def _bert_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map BERT names to DistilBERT's; fold token-type row 0 into the word embeddings.

    DistilBERT has no segment embeddings, so every student token gets BERT's segment-0 vector:
    the student reproduces BERT exactly on ``token_type_ids == 0`` and approximately elsewhere.
    BERT's pooler/classifier (tanh pooler) do not fit DistilBERT's ReLU pre_classifier and are
    dropped.
    """
    out = {}
    for key, value in state.items():
        key = key.removeprefix("bert.")
        if key.startswith("embeddings.") and "token_type" not in key:
            out["distilbert." + key] = value
        elif key.startswith("encoder.layer."):
            index, rest = key.removeprefix("encoder.layer.").split(".", 1)
            module, kind = rest.rsplit(".", 1)
            if module in _BERT_LAYER_RENAMES:
                out[f"{layer_prefix(int(index))}{_BERT_LAYER_RENAMES[module]}.{kind}"] = value
        elif key.startswith("qa_outputs."):
            out[key] = value
    token_types = next(  # (types, dim)
        (v for k, v in state.items() if k.endswith("embeddings.token_type_embeddings.weight")),
        None,
    )
    word_key = EMB + "word_embeddings.weight"
    if token_types is not None and word_key in out:
        out[word_key] = out[word_key] + token_types[0]  # (vocab, dim)
    return out


def source_from_model(
    model: Any, name: str = "<in-memory>", skip: Collection[str] = ()
) -> SourceModel:
    """Make a :class:`SourceModel` from a loaded DistilBERT/BERT model (any head or none).

    Args:
        model: a ``transformers`` DistilBERT or BERT model.
        name: how errors name the model.
        skip: state-dict keys to leave out (weights the checkpoint did not have).

    The tensors share storage with ``model`` when it is float32: do not keep training it.

    Raises:
        CheckpointError: not a DistilBERT/BERT encoder, or encoder weights are missing.
    """
    config = model.config
    _check_supported(config, name)
    skipped = set(skip)
    state = {
        key: value.detach().to(torch.float32)
        for key, value in model.state_dict().items()
        if key not in skipped
    }
    prefixed = config.model_type == "distilbert"
    tensors = _distilbert_tensors(state) if prefixed else _bert_tensors(state)
    values = _config_values(config)
    needed = [EMB + p for p in ("word_embeddings.weight", "position_embeddings.weight")]
    needed += [EMB + "LayerNorm." + kind for kind in ("weight", "bias")]
    needed += [layer_prefix(i) + p for i in range(values["n_layers"]) for p in _LAYER_PARAMS]
    missing = [key for key in needed if key not in tensors]
    if missing:
        raise CheckpointError(
            f"{name}: encoder weights {missing[:4]} are missing; {CHECKPOINT_FIX}"
        )
    return SourceModel(name=name, model_type=config.model_type, tensors=tensors, **values)


def _auto_class(config: Any) -> Any:
    import transformers

    architecture = (getattr(config, "architectures", None) or [""])[0]
    for suffix in ("ForQuestionAnswering", "ForSequenceClassification"):
        if architecture.endswith(suffix):
            return getattr(transformers, "AutoModel" + suffix)
    return transformers.AutoModel


@functools.lru_cache(maxsize=4)
def _load_cached(key: str) -> SourceModel:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(key)
    except Exception as exc:  # transformers raises OSError, ValueError, EnvironmentError...
        raise CheckpointError(
            f"cannot read a model config from {key!r} ({exc}); {CHECKPOINT_FIX}"
        ) from exc
    _check_supported(config, key)
    try:
        model, info = _auto_class(config).from_pretrained(key, output_loading_info=True)
    except Exception as exc:  # a missing or corrupt weights file raises OSError/SafetensorError
        raise CheckpointError(
            f"cannot read model weights from {key!r} ({exc}); {CHECKPOINT_FIX}"
        ) from exc
    return source_from_model(model, name=key, skip=info.get("missing_keys", ()))


def load_source(name_or_path: str | Path) -> SourceModel:
    """Read a DistilBERT or BERT checkpoint (hub name or local folder) to slice students from.

    Loaded through ``AutoConfig``/``AutoModel*.from_pretrained`` with the checkpoint's own head
    class (QA, sequence classification, else the bare encoder). Cached per process on the
    resolved path (``clear_source_cache()`` after rewriting a checkpoint in place).

    Raises:
        CheckpointError: missing, unreadable, or not a DistilBERT/BERT encoder.
    """
    path = Path(name_or_path).expanduser()
    return _load_cached(str(path.resolve()) if path.exists() else str(name_or_path))


def clear_source_cache() -> None:
    """Forget every source loaded by :func:`load_source` in this process."""
    _load_cached.cache_clear()
