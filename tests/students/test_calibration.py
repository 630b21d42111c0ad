"""Calibration: the source's activations on training features, computed once and cached."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import DistilBertConfig, DistilBertModel

import nas.students.calibration as calibration
from nas.config import CalibrationConfig
from nas.errors import ConfigError
from nas.students.calibration import (
    ActivationStats,
    calibration_ids,
    calibration_stats,
    compute_stats,
)
from nas.students.sources import SourceModel, source_from_model
from nas.tasks.base import Features

VOCAB = 100


@pytest.fixture(autouse=True)
def fresh_memory() -> Iterator[None]:
    """Every test starts without the per-process cache."""
    calibration._MEMORY.clear()
    yield
    calibration._MEMORY.clear()


@pytest.fixture(scope="module")
def source() -> SourceModel:
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    return source_from_model(DistilBertModel(config))


def features(count: int, seed: int = 0) -> Features:
    """``count`` random token rows of 5 to 20 tokens."""
    rng = np.random.default_rng(seed)
    rows = [rng.integers(1, VOCAB, size=int(rng.integers(5, 21))) for _ in range(count)]
    starts = np.cumsum([0, *(len(r) for r in rows)]).astype(np.int64)
    ids = np.concatenate(rows).astype(np.int32)
    return Features(ids, np.zeros_like(ids, dtype=np.int8), starts, np.zeros(count))


def test_padding_does_not_change_the_statistics(source: SourceModel) -> None:
    rows = calibration_ids(features(6), CalibrationConfig())
    together = compute_stats(source, rows, batch_size=6)  # one padded batch
    alone = [compute_stats(source, [row]) for row in rows]  # no padding at all
    weights = torch.tensor([float(s.n_tokens) for s in alone])
    assert together.n_tokens == int(weights.sum()) == sum(len(r) for r in rows)
    for part in ("hidden", "ffn", "heads"):
        want = sum(w * _flat(s, part) for w, s in zip(weights, alone, strict=True)) / weights.sum()
        torch.testing.assert_close(_flat(together, part), want)


def _flat(stats: ActivationStats, part: str) -> torch.Tensor:
    value = getattr(stats, part)
    return value if isinstance(value, torch.Tensor) else torch.cat(value)


def test_a_channel_with_large_layernorm_outputs_ranks_first(source: SourceModel) -> None:
    tensors = dict(source.tensors)
    for key in [k for k in tensors if k.endswith(("LayerNorm.weight", "layer_norm.weight"))]:
        tensors[key] = tensors[key].clone()
        tensors[key][5] *= 10.0  # channel 5 carries ten times more, in every LayerNorm
    loud = SourceModel(**{**source.__dict__, "tensors": tensors})
    stats = compute_stats(loud, calibration_ids(features(8), CalibrationConfig()))
    assert int(stats.hidden.argmax()) == 5
    assert stats.hidden[5] > 5 * stats.hidden.median()


def test_statistics_are_cached_on_disk_by_source_and_calibration_ids(
    source: SourceModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = CalibrationConfig(n_features=10)
    first = calibration_stats(source, features(40), config, tmp_path)
    assert first.n_features == 10 and first.key
    folder = tmp_path / "calibration" / first.key
    assert (folder / "stats.safetensors").is_file()
    calibration._MEMORY.clear()

    def fail(*_: object, **__: object) -> None:
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(calibration, "compute_stats", fail)
    again = calibration_stats(source, features(40), config, tmp_path)  # read back from disk
    assert again.key == first.key and again.n_tokens == first.n_tokens
    for part in ("hidden", "ffn", "heads"):
        torch.testing.assert_close(_flat(again, part), _flat(first, part))
    monkeypatch.undo()
    other = calibration_stats(source, features(40), CalibrationConfig(n_features=10, seed=1))
    assert other.key != first.key  # other calibration features: another entry
    tensors = {k: v * 1.5 if "lin1" in k else v for k, v in source.tensors.items()}
    changed = SourceModel(**{**source.__dict__, "tensors": tensors})
    assert calibration_stats(changed, features(40), config).key != first.key


def test_unset_n_features_takes_256_or_every_feature(source: SourceModel) -> None:
    assert len(calibration_ids(features(40), CalibrationConfig())) == 40
    assert len(calibration_ids(features(300), CalibrationConfig())) == 256
    rows = calibration_ids(features(40), CalibrationConfig(max_tokens=7))
    assert max(len(r) for r in rows) == 7


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (CalibrationConfig(n_features=41), "calibration.n_features = 41 but the train split has"),
        (CalibrationConfig(n_features=0), "calibration.n_features = 0 must be an integer >= 1"),
        (CalibrationConfig(max_tokens=0), "calibration.max_tokens = 0 must be an integer >= 1"),
    ],
)
def test_settings_that_cannot_be_met_are_config_errors(
    source: SourceModel, config: CalibrationConfig, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        calibration_stats(source, features(40), config, where="studies/x.yaml")
    message = str(info.value)
    assert message.startswith("studies/x.yaml: ")
    if config.n_features == 41:
        assert "at most 40" in message


def test_statistics_of_another_source_are_refused(source: SourceModel) -> None:
    stats = compute_stats(source, calibration_ids(features(4), CalibrationConfig()))
    torch.manual_seed(1)
    config = DistilBertConfig(vocab_size=VOCAB, dim=48, n_layers=2, n_heads=2, hidden_dim=64)
    other = source_from_model(DistilBertModel(config))
    with pytest.raises(ValueError, match="do not fit source"):
        stats.check_fits(other)
