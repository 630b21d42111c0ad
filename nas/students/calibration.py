"""Calibration: what the source computes on a few training features, to rank what students keep.

Weight norms are a poor guide to a pretrained transformer's channels: its weights are small
exactly where a channel's activations are large (issue #10). So :mod:`nas.students.build` ranks by
activations measured here, once per study:

* **hidden channels** by the mean absolute LayerNorm output (the embeddings LayerNorm and both
  LayerNorms of every layer, averaged): what the residual stream carries;
* **FFN neurons** by the mean absolute activation after the FFN nonlinearity (the ranking then
  multiplies it by the norm of the neuron's ``lin2`` column: what it writes back);
* **heads** by the mean norm of each head's contribution to the residual stream (its context
  vectors through its ``out_lin`` block).

The source runs as the full-size DistilBERT copy a student is sliced from (BERT segments folded
in, no token-type ids), so the statistics describe what the student's copied weights compute.
Means are over the non-padding tokens of ``CalibrationConfig.n_features`` training features, a
seeded choice, each cut to its first ``max_tokens`` tokens. The statistics are cached on disk
under ``<cache_dir>/calibration/<fingerprint>/`` (source content + calibration token ids), and
per process, so every trial of a study reuses one pass.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nas.cache import cached_folder, fingerprint
from nas.config import CalibrationConfig
from nas.errors import ConfigError
from nas.progress import Ticker
from nas.students.sources import SourceModel

if TYPE_CHECKING:
    from nas.tasks import Features

__all__ = [
    "ActivationStats",
    "calibration_ids",
    "calibration_stats",
    "compute_stats",
    "source_digest",
]

Progress = Callable[[str], None]
_VERSION = "1"  # bump when the statistics change meaning: old cache entries are then ignored
_STATS_FILE = "stats.safetensors"
DEFAULT_FEATURES = 256  # calibration features when ``CalibrationConfig.n_features`` is unset
_MEMORY: dict[str, ActivationStats] = {}


@dataclass(frozen=True, eq=False)
class ActivationStats:
    """Mean absolute activations of a source over calibration tokens."""

    hidden: torch.Tensor  # (dim,) mean |LayerNorm output|, averaged over the 2L + 1 LayerNorms
    ffn: tuple[torch.Tensor, ...]  # per source layer (ffn_dim,) mean |activation(lin1 x)|
    heads: tuple[torch.Tensor, ...]  # per source layer (n_heads,) mean ||head output @ out_lin||
    n_features: int
    n_tokens: int
    key: str = ""  # the cache fingerprint (source content + calibration token ids)

    def describe(self) -> str:
        return (
            f"activation ranking over {self.n_tokens:,} tokens of {self.n_features} calibration "
            "features"
        )

    def check_fits(self, source: SourceModel) -> None:
        """Raise ValueError unless these statistics were measured on a source of this shape."""
        ok = (
            self.hidden.shape == (source.dim,)
            and len(self.ffn) == source.n_layers
            and all(f.shape == (source.ffn_dim,) for f in self.ffn)
            and all(h.shape == (source.n_heads,) for h in self.heads)
        )
        if not ok:
            raise ValueError(
                f"calibration statistics of shape dim {tuple(self.hidden.shape)}, "
                f"{len(self.ffn)} layers do not fit source {source.name} (dim {source.dim}, "
                f"{source.n_layers} layers, ffn {source.ffn_dim}); compute them on this source"
            )


def calibration_ids(
    features: Features, config: CalibrationConfig, where: str = "calibration"
) -> list[np.ndarray]:
    """The token ids of the calibration features: a seeded choice, each cut to ``max_tokens``.

    ``n_features`` unset takes ``DEFAULT_FEATURES`` (256) or every feature when there are fewer.

    Raises:
        ConfigError: a setting below 1, or more features asked for than the split has
            (``where``, the study file, names where the setting came from).
    """
    for key, default in (("n_features", "unset (256)"), ("max_tokens", "128")):
        value = getattr(config, key)
        if value is None and key == "n_features":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"{where}: calibration.{key} = {value!r} must be an integer >= 1 (default "
                f"{default})"
            )
    n = len(features)
    wanted = min(DEFAULT_FEATURES, n) if config.n_features is None else config.n_features
    if wanted > n:
        raise ConfigError(
            f"{where}: calibration.n_features = {wanted} but the train split has only {n} "
            f"features; set calibration.n_features to at most {n}, or leave it unset"
        )
    if n == 0:
        raise ConfigError(f"{where}: the train split has no features to calibrate on")
    rng = np.random.default_rng(config.seed)
    chosen = np.sort(rng.choice(n, size=wanted, replace=False))
    starts = features.starts
    return [
        np.asarray(features.ids[starts[i] : min(starts[i + 1], starts[i] + config.max_tokens)])
        for i in chosen
    ]


def source_digest(source: SourceModel) -> str:
    """A content key of the source: every tensor's name, shape, sum and sum of squares."""
    h = hashlib.sha256(source.activation.encode())
    for name in sorted(source.tensors):
        value = source.tensors[name].double()
        h.update(f"{name}{tuple(value.shape)}{value.sum().item():.10e}".encode())
        h.update(f"{value.square().sum().item():.10e}".encode())
    return h.hexdigest()


def _ids_digest(ids: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for row in ids:
        h.update(np.asarray(row, dtype=np.int64).tobytes())
        h.update(b"\x1d")
    return h.hexdigest()


def _encoder(source: SourceModel) -> Any:
    """The source as a full-size ``DistilBertModel`` (what a same-shape student computes)."""
    from transformers import DistilBertModel

    from nas.students.build import StudentShape, student_config  # students imports this module

    shape = StudentShape(source.n_layers, source.n_heads, source.dim, source.ffn_dim)
    model = DistilBertModel(student_config(shape, source, "qa"))  # the head is not built
    state = {k.removeprefix("distilbert."): v for k, v in source.tensors.items()}
    state = {k: v for k, v in state.items() if k.startswith(("embeddings.", "transformer."))}
    missing, _ = model.load_state_dict(state, strict=False)
    assert not [k for k in missing if not k.endswith("position_ids")], missing
    return model.eval()


def compute_stats(
    source: SourceModel,
    ids: list[np.ndarray],
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    progress: Progress | None = None,
) -> ActivationStats:
    """Run ``ids`` (token id rows) through the source and average absolute activations."""
    if not ids:
        raise ValueError("compute_stats needs at least one calibration feature")
    model = _encoder(source).to(device)
    dim, layers = source.dim, model.transformer.layer
    sums: dict[str, torch.Tensor] = {}
    mask: list[torch.Tensor] = []  # the current batch's (batch, seq, 1) float mask

    def add(name: str, value: torch.Tensor) -> None:  # value (batch, seq, k) -> (k,)
        total = (value.abs() * mask[0]).sum(dim=(0, 1)).double().cpu()
        sums[name] = sums[name] + total if name in sums else total

    def record(name: str) -> Callable[..., None]:
        return lambda _module, _inputs, out: add(name, out)

    def heads_of(i: int) -> Callable[..., None]:
        weight = layers[i].attention.out_lin.weight  # (dim, inner)
        hd = source.head_dim

        def hook(_module: Any, inputs: tuple[torch.Tensor, ...]) -> None:
            context = inputs[0]  # (batch, seq, inner) concatenated head outputs
            parts = [
                (context[..., h * hd : (h + 1) * hd] @ weight[:, h * hd : (h + 1) * hd].T).norm(
                    dim=-1, keepdim=True
                )  # (batch, seq, 1)
                for h in range(source.n_heads)
            ]
            add(f"heads.{i}", torch.cat(parts, dim=-1))

        return hook

    handles = [model.embeddings.LayerNorm.register_forward_hook(record("ln.emb"))]
    for i, layer in enumerate(layers):
        handles.append(layer.sa_layer_norm.register_forward_hook(record(f"ln.{i}.sa")))
        handles.append(layer.output_layer_norm.register_forward_hook(record(f"ln.{i}.out")))
        handles.append(layer.ffn.activation.register_forward_hook(record(f"ffn.{i}")))
        handles.append(layer.attention.out_lin.register_forward_pre_hook(heads_of(i)))
    order = sorted(range(len(ids)), key=lambda r: -len(ids[r]))  # less padding per batch
    tokens = 0
    ticker = Ticker(progress, "calibration", math.ceil(len(order) / batch_size), "batches")
    try:
        with torch.no_grad(), ticker:
            for start in range(0, len(order), batch_size):
                rows = [ids[r] for r in order[start : start + batch_size]]
                width = max(len(r) for r in rows)
                batch = torch.full((len(rows), width), source.pad_token_id, dtype=torch.long)
                attention = torch.zeros((len(rows), width), dtype=torch.long)
                for j, row in enumerate(rows):
                    batch[j, : len(row)] = torch.as_tensor(np.asarray(row, dtype=np.int64))
                    attention[j, : len(row)] = 1
                mask[:] = [attention[..., None].float().to(device)]
                tokens += int(attention.sum())
                model(input_ids=batch.to(device), attention_mask=attention.to(device))
                ticker.update()
    finally:
        for handle in handles:
            handle.remove()
    norms = [sums["ln.emb"]] + [
        sums[f"ln.{i}.{k}"] for i in range(len(layers)) for k in ("sa", "out")
    ]
    assert norms[0].shape == (dim,)
    return ActivationStats(
        hidden=(torch.stack(norms).mean(dim=0) / tokens).float(),
        ffn=tuple((sums[f"ffn.{i}"] / tokens).float() for i in range(len(layers))),
        heads=tuple((sums[f"heads.{i}"] / tokens).float() for i in range(len(layers))),
        n_features=len(ids),
        n_tokens=tokens,
    )


def _save(stats: ActivationStats, folder: Path) -> None:
    from safetensors.torch import save_file

    tensors = {"hidden": stats.hidden}
    tensors.update({f"ffn.{i}": f for i, f in enumerate(stats.ffn)})
    tensors.update({f"heads.{i}": h for i, h in enumerate(stats.heads)})
    meta = {"n_features": stats.n_features, "n_tokens": stats.n_tokens, "key": stats.key}
    (folder / "calibration.json").write_text(json.dumps(meta, indent=2))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / _STATS_FILE))


def _load(folder: Path) -> ActivationStats:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / _STATS_FILE))
    meta = json.loads((folder / "calibration.json").read_text())
    n_layers = sum(1 for k in tensors if k.startswith("ffn."))
    return ActivationStats(
        hidden=tensors["hidden"],
        ffn=tuple(tensors[f"ffn.{i}"] for i in range(n_layers)),
        heads=tuple(tensors[f"heads.{i}"] for i in range(n_layers)),
        n_features=int(meta["n_features"]),
        n_tokens=int(meta["n_tokens"]),
        key=str(meta["key"]),
    )


def calibration_stats(
    source: SourceModel,
    features: Features,
    config: CalibrationConfig,
    cache_dir: Path | None = None,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    where: str = "calibration",
    progress: Progress | None = None,
) -> ActivationStats:
    """Activation statistics of ``source`` on calibration features chosen from ``features``.

    Computed once per (source content, calibration token ids): cached in this process and, with
    ``cache_dir``, on disk under ``cache_dir/calibration/<fingerprint>``.

    Raises:
        ConfigError: ``config`` asks for more features than ``features`` has.
    """
    ids = calibration_ids(features, config, where)
    key = fingerprint(_VERSION, source_digest(source), _ids_digest(ids))
    if key in _MEMORY:
        return _MEMORY[key]

    def compute() -> ActivationStats:
        if progress:
            progress(f"calibration: running the source over {len(ids)} train features")
        stats = compute_stats(source, ids, device, batch_size, progress)
        return ActivationStats(**{**stats.__dict__, "key": key})

    if cache_dir is None:
        stats = compute()
    else:
        folder = Path(cache_dir) / "calibration" / key
        cached_folder(folder, _STATS_FILE, lambda tmp: _save(compute(), tmp))
        stats = _load(folder)
    stats.check_fits(source)
    _MEMORY[key] = stats
    if progress:
        progress(f"slicing: {stats.describe()}")
    return stats
