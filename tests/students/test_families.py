"""The small student families: exact counts, shapes, padding invariance, learning, PCA, saving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nas.errors import CheckpointError, InvalidConfig
from nas.students import (
    BiLSTMShape,
    BowShape,
    CNNShape,
    build_family,
    count_family_parameters,
    family_shape,
    load_family,
    pca_reduce,
    save_family,
)

SHAPES = [
    BiLSTMShape(embedding_dim=8, hidden_size=6, n_layers=2, pooling="last", fc_dim=5),
    BiLSTMShape(embedding_dim=8, hidden_size=6, n_layers=1, pooling="max", fc_dim=5),
    BiLSTMShape(embedding_dim=8, hidden_size=6, n_layers=1, pooling="mean", fc_dim=5),
    CNNShape(embedding_dim=8, filter_widths=(2, 3, 5), n_filters=4),
    BowShape(embedding_dim=8, hidden_dim=7),
    BowShape(embedding_dim=8, hidden_dim=0),
]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: one thread (two threads on a busy 2-core machine ran 60x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_counts_equal_hand_formulas() -> None:
    # The seeds' 80K MLP: V=5000, E=16, one hidden layer of 16, 6 Emotion labels:
    # 5000*16 embeddings + (16*16 + 16) hidden + (16*6 + 6) classifier = 80,374.
    bow = BowShape(embedding_dim=16, hidden_dim=16)
    assert count_family_parameters(bow, 5000, 6) == 80_000 + 272 + 102 == 80_374
    assert _numel(build_family(bow, 5000, 6, seed=0)) == 80_374
    # BiLSTM, 2 layers, E=300, h=150 per direction, fc 200, 2 labels, V=10,000:
    # layer 1: 2 directions * (4*150*(300 + 150) + 8*150); layer 2 reads 300 -> same count.
    lstm = BiLSTMShape(embedding_dim=300, hidden_size=150, n_layers=2, fc_dim=200)
    per_layer = 2 * (4 * 150 * (300 + 150) + 8 * 150)
    hand = 10_000 * 300 + 2 * per_layer + (300 * 200 + 200) + (200 * 2 + 2)
    assert count_family_parameters(lstm, 10_000, 2) == hand == 4_145_402
    assert _numel(build_family(lstm, 10_000, 2, seed=0)) == hand
    # The same layer in nn.LSTM(bidirectional=True) has exactly these parameters.
    assert _numel(torch.nn.LSTM(300, 150, bidirectional=True)) == per_layer
    # Kim CNN: widths 3, 4, 5, 100 filters each, E=300, 2 labels, V=10,000.
    cnn = CNNShape(embedding_dim=300, filter_widths=(3, 4, 5), n_filters=100)
    hand = 10_000 * 300 + sum(100 * 300 * w + 100 for w in (3, 4, 5)) + (300 * 2 + 2)
    assert count_family_parameters(cnn, 10_000, 2) == hand == 3_360_902
    assert _numel(build_family(cnn, 10_000, 2, seed=0)) == hand


@pytest.mark.parametrize("shape", SHAPES, ids=repr)
def test_counts_and_shapes_and_padding_invariance(shape: object) -> None:
    model = build_family(shape, 50, 3, seed=1).eval()  # type: ignore[arg-type]
    assert _numel(model) == count_family_parameters(shape, 50, 3)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(0)
    lengths = [1, 4, 9]
    ids = torch.zeros(3, 9, dtype=torch.long)
    mask = torch.zeros(3, 9, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1, 50, (n,), generator=g)
        mask[row, :n] = 1
    logits = model(ids, mask)
    assert logits.shape == (3, 3)
    # extra padding (and garbage ids under the padding) changes nothing
    padded_ids = torch.cat([ids, torch.randint(1, 50, (3, 6), generator=g)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(3, 6, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(padded_ids, padded_mask), logits, atol=1e-5, rtol=1e-5)
    # each row alone, unpadded, gives its row of the batch
    for row, n in enumerate(lengths):
        alone = model(ids[row : row + 1, :n], mask[row : row + 1, :n])
        torch.testing.assert_close(alone, logits[row : row + 1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["bilstm", "cnn", "bow"])
def test_a_tiny_family_learns_a_separable_task(family: str) -> None:
    # label 1 iff the sentence holds a token of 10..19 (bag-of-words separable)
    g = torch.Generator().manual_seed(0)
    n, seq, vocab = 192, 6, 40
    ids = torch.randint(20, vocab, (n, seq), generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    where = torch.randint(0, seq, (n,), generator=g)
    ids[labels == 1, where[labels == 1]] = torch.randint(10, 20, (int(labels.sum()),), generator=g)
    mask = torch.ones_like(ids)
    extra = {"bilstm": {"hidden_size": 8, "fc_dim": 8}, "cnn": {"n_filters": 8}, "bow": {}}
    shape = family_shape(family, {"embedding_dim": 8, **extra[family]})
    model = build_family(shape, vocab, 2, seed=0)
    torch.manual_seed(0)  # dropout
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    train, test = slice(0, 128), slice(128, n)
    for _ in range(100):
        loss = torch.nn.functional.cross_entropy(model(ids[train], mask[train]), labels[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    accuracy = (model(ids[test], mask[test]).argmax(-1) == labels[test]).float().mean().item()
    assert accuracy >= 0.9, f"{family}: held-out accuracy {accuracy:.2f} (chance 0.5)"


def test_pca_keeps_more_variance_than_a_random_projection() -> None:
    g = torch.Generator().manual_seed(0)
    # anisotropic: a few strong directions, as word embeddings have
    scales = torch.logspace(1, -1, 32)
    matrix = torch.randn(500, 32, generator=g) * scales + 3.0
    reduced = pca_reduce(matrix, 8)
    assert reduced.shape == (500, 8)
    q, _ = torch.linalg.qr(torch.randn(32, 8, generator=g))  # a random orthonormal projection
    centred = matrix - matrix.mean(0)
    random_variance = (centred @ q).var(0).sum()
    assert reduced.var(0).sum() > 2 * random_variance
    # the top-8 principal variance is what the eigenvalues of the covariance say
    eig = torch.linalg.eigvalsh(torch.cov(centred.T)).flip(0)
    torch.testing.assert_close(reduced.var(0).sum(), eig[:8].sum(), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(pca_reduce(matrix, 32), matrix)
    with pytest.raises(InvalidConfig, match="embedding_dim=64 is wider"):
        pca_reduce(matrix, 64)


def test_source_embeddings_and_freezing() -> None:
    source = torch.randn(30, 12)
    shape = BowShape(embedding_dim=4)
    model = build_family(shape, 30, 2, embeddings=source, freeze=True, seed=0)
    torch.testing.assert_close(model.embedding.weight, pca_reduce(source, 4))
    assert not model.embedding.weight.requires_grad
    assert _numel(model) == count_family_parameters(shape, 30, 2)  # frozen ones counted
    with pytest.raises(InvalidConfig, match="31 rows but vocab_size=30"):
        build_family(shape, 30, 2, embeddings=torch.randn(31, 12))


@pytest.mark.parametrize("shape", SHAPES[::2] + SHAPES[3:4], ids=repr)
def test_save_load_round_trip(shape: object, tmp_path: Path) -> None:
    model = build_family(shape, 40, 4, seed=3, freeze=True).eval()  # type: ignore[arg-type]
    save_family(model, tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "model.safetensors",
        "nas_family.json",
    ]
    loaded = load_family(tmp_path / "s")
    assert loaded.shape == model.shape and not loaded.embedding.weight.requires_grad
    ids = torch.randint(0, 40, (2, 7))
    mask = torch.ones_like(ids)
    torch.testing.assert_close(loaded(ids, mask), model(ids, mask), atol=0, rtol=0)


def test_bad_input_names_the_value(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="n_layers=3 must be 1 or 2"):
        BiLSTMShape(embedding_dim=8, hidden_size=4, n_layers=3)
    with pytest.raises(InvalidConfig, match="pooling='first'"):
        BiLSTMShape(embedding_dim=8, hidden_size=4, pooling="first")
    with pytest.raises(InvalidConfig, match="filter_widths=\\(\\)"):
        CNNShape(embedding_dim=8, filter_widths=())
    with pytest.raises(InvalidConfig, match="unknown parameter 'hidden_size'"):
        family_shape("bow", {"embedding_dim": 8, "hidden_size": 3})
    with pytest.raises(InvalidConfig, match="family='gru'"):
        family_shape("gru", {})
    with pytest.raises(CheckpointError, match="no nas_family.json"):
        load_family(tmp_path)
