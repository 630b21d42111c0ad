"""Students: slicing DistilBERT/BERT checkpoints into stock DistilBERT models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForQuestionAnswering,
    DistilBertConfig,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    RobertaConfig,
)

from nas.errors import CheckpointError, InvalidConfig
from nas.students import (
    SourceModel,
    StudentShape,
    build_student,
    count_parameters,
    hidden_importance,
    layer_map,
    layer_prefix,
    load_source,
    source_from_model,
    student_config,
    top_map,
)

VOCAB, POSITIONS, MARKER = 200, 64, 4
TINY: dict[str, Any] = {"dim": 64, "n_layers": 4, "n_heads": 4, "hidden_dim": 256}
SOURCE_PARAMS = {"n_layers": 4, "n_heads": 4, "hidden_size": 64, "ffn_dim": 256}


def marker_batch(gen: torch.Generator, n: int = 16, seq: int = 24) -> tuple[torch.Tensor, ...]:
    """Random tokens with one MARKER; the answer span is the marker's position."""
    ids = torch.randint(MARKER + 1, VOCAB, (n, seq), generator=gen)  # (n, seq)
    pos = torch.randint(1, seq, (n,), generator=gen)  # (n,)
    ids[torch.arange(n), pos] = MARKER
    ids[:, 0] = 2
    return ids, pos


@pytest.fixture(scope="module", autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny models run faster on one thread; two threads on a busy machine can be 50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def distil_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DistilBERT QA source fine-tuned a few steps to find the marker (a trained state)."""
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=VOCAB, max_position_embeddings=POSITIONS, **TINY)
    model = DistilBertForQuestionAnswering(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(15):
        ids, pos = marker_batch(gen)
        loss = model(input_ids=ids, start_positions=pos, end_positions=pos).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5, f"the tiny source did not learn the marker task (loss {loss.item()})"
    folder = tmp_path_factory.mktemp("distil_qa")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT QA source whose segment embeddings matter (std 0.5)."""
    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=VOCAB,
        max_position_embeddings=POSITIONS,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=256,
    )
    model = BertForQuestionAnswering(config)
    with torch.no_grad():
        model.bert.embeddings.token_type_embeddings.weight.normal_(0.0, 0.5)
    folder = tmp_path_factory.mktemp("bert_qa")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def distil_source(distil_dir: Path) -> SourceModel:
    return load_source(distil_dir)


def reference(folder: Path) -> torch.nn.Module:
    return AutoModelForQuestionAnswering.from_pretrained(folder).eval()


def padded_batch(seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, VOCAB, (3, 17), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[0, 11:] = 0
    return ids, mask


def test_same_shape_distilbert_student_reproduces_source(distil_dir: Path) -> None:
    source, student = reference(distil_dir), build_student(SOURCE_PARAMS, distil_dir, "qa")
    assert student.training
    student.eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        want = source(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        got = student(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    torch.testing.assert_close(got.start_logits, want.start_logits)
    torch.testing.assert_close(got.end_logits, want.end_logits)
    for got_h, want_h in zip(got.hidden_states, want.hidden_states, strict=True):
        torch.testing.assert_close(got_h, want_h)


def test_same_shape_bert_student_matches_on_segment_zero(bert_dir: Path) -> None:
    source, student = reference(bert_dir), build_student(SOURCE_PARAMS, bert_dir, "qa").eval()
    assert isinstance(student, DistilBertForQuestionAnswering)
    ids, mask = padded_batch()
    with torch.no_grad():
        want = source(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
        got = student(input_ids=ids, attention_mask=mask)
        other = source(input_ids=ids, attention_mask=mask, token_type_ids=torch.ones_like(ids))
    torch.testing.assert_close(got.start_logits, want.start_logits)
    torch.testing.assert_close(got.end_logits, want.end_logits)
    # Segment 1 is not folded in: the match above is the folding, not an accident.
    assert not torch.allclose(got.start_logits, other.start_logits, atol=1e-3)


def qa_kl(
    want: tuple[torch.Tensor, torch.Tensor], model: torch.nn.Module, ids: torch.Tensor
) -> float:
    """KL(reference || model) of start and end softmaxes over positions, batch mean."""
    with torch.no_grad():
        got = model.eval()(input_ids=ids)
    total = 0.0
    for w, g in zip(want, (got.start_logits, got.end_logits), strict=True):
        log_w, log_g = F.log_softmax(w, dim=-1), F.log_softmax(g, dim=-1)  # (batch, seq)
        total += F.kl_div(log_g, log_w, log_target=True, reduction="batchmean").item()
    return total / 2


@pytest.mark.parametrize(
    "params",
    [
        {"n_layers": 2, "n_heads": 2, "hidden_size": 32, "ffn_dim": 96},  # head_dim 16 kept
        {"n_layers": 3, "n_heads": 4, "hidden_size": 48, "ffn_dim": 128},  # head_dim 16 -> 12
    ],
)
def test_sliced_student_starts_closer_than_random(
    distil_dir: Path, distil_source: SourceModel, params: dict[str, int]
) -> None:
    ids, _ = marker_batch(torch.Generator().manual_seed(123), n=32)
    with torch.no_grad():
        out = reference(distil_dir)(input_ids=ids)
    source = (out.start_logits, out.end_logits)
    shape = StudentShape.from_params(params)
    sliced, random, shuffled = [], [], []
    for seed in range(3):
        student = build_student(params, distil_source, "qa", seed=seed)
        sliced.append(qa_kl(source, student, ids))
        torch.manual_seed(seed)
        fresh = DistilBertForQuestionAnswering(student_config(shape, distil_source, "qa"))
        random.append(qa_kl(source, fresh, ids))
        # Control: embeddings whose channels disagree with the layers' lose the advantage.
        perm = torch.randperm(shape.hidden_size, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            words: Any = student.get_input_embeddings().weight  # (vocab, dim)
            words.copy_(words[:, perm])
        shuffled.append(qa_kl(source, student, ids))
    mean = [sum(values) / len(values) for values in (sliced, random, shuffled)]
    assert mean[0] < 0.25 * mean[1], f"sliced KL {mean[0]:.3f} vs random-init {mean[1]:.3f}"
    assert mean[0] < 0.5 * mean[2], f"sliced KL {mean[0]:.3f} vs shuffled {mean[2]:.3f}"


def test_layer_map_is_evenly_spaced() -> None:
    assert layer_map(6, 3) == (0, 2, 5)
    assert layer_map(12, 6) == (0, 2, 4, 6, 8, 11)
    assert layer_map(4, 2) == (0, 3)
    assert layer_map(4, 1) == (0,)
    assert layer_map(4, 4) == (0, 1, 2, 3)
    assert layer_map(4, 6) == (0, 1, 2, 3, None, None)


def test_fewer_layers_copy_the_mapped_source_layers(distil_source: SourceModel) -> None:
    student = build_student({**SOURCE_PARAMS, "n_layers": 2}, distil_source, "qa")
    params = dict(student.named_parameters())
    for student_layer, source_layer in enumerate((0, 3)):
        for suffix in ("attention.q_lin.weight", "ffn.lin2.bias", "output_layer_norm.weight"):
            torch.testing.assert_close(
                params[layer_prefix(student_layer) + suffix],
                distil_source.tensors[layer_prefix(source_layer) + suffix],
                rtol=0,
                atol=0,
            )


def test_layers_beyond_the_source_are_initialized(distil_source: SourceModel) -> None:
    student = build_student({**SOURCE_PARAMS, "n_layers": 6}, distil_source, "qa", seed=0)
    params = dict(student.named_parameters())
    source_q = [
        distil_source.tensors[layer_prefix(i) + "attention.q_lin.weight"] for i in range(4)
    ]
    torch.testing.assert_close(params[layer_prefix(3) + "attention.q_lin.weight"], source_q[3])
    for layer in (4, 5):
        q = params[layer_prefix(layer) + "attention.q_lin.weight"]
        assert all(not torch.allclose(q, s) for s in source_q)
        assert abs(q.std().item() - 0.02) < 0.004  # DistilBERT's initializer_range
        assert torch.equal(params[layer_prefix(layer) + "attention.q_lin.bias"], torch.zeros(64))
        assert torch.equal(params[layer_prefix(layer) + "sa_layer_norm.weight"], torch.ones(64))
    out = student(input_ids=padded_batch()[0])
    assert out.start_logits.shape == (3, 17) and torch.isfinite(out.start_logits).all()


def scaled_source(source: SourceModel, weak: slice, factor: float) -> SourceModel:
    """A copy of ``source`` whose hidden channels ``weak`` are scaled everywhere by ``factor``."""
    tensors = dict(source.tensors)
    for key, value in tensors.items():
        if key.endswith("word_embeddings.weight") or key.endswith("position_embeddings.weight"):
            value = value.clone()
            value[:, weak] *= factor
        elif "LayerNorm.weight" in key or "layer_norm.weight" in key:
            value = value.clone()
            value[weak] *= factor
        tensors[key] = value
    return SourceModel(**{**source.__dict__, "tensors": tensors})


def test_weak_hidden_channels_are_dropped_everywhere(distil_source: SourceModel) -> None:
    source = scaled_source(distil_source, slice(0, 16), 0.01)
    assert sorted(hidden_importance(source).argsort()[:16].tolist()) == list(range(16))
    student = build_student({**SOURCE_PARAMS, "hidden_size": 48}, source, "qa")
    params, t = dict(student.named_parameters()), source.tensors
    kept = slice(16, 64)
    for key in ("embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"):
        torch.testing.assert_close(params["distilbert." + key], t["distilbert." + key][:, kept])
    torch.testing.assert_close(params["qa_outputs.weight"], t["qa_outputs.weight"][:, kept])
    p = layer_prefix(2)
    torch.testing.assert_close(params[p + "ffn.lin1.weight"], t[p + "ffn.lin1.weight"][:, kept])
    torch.testing.assert_close(params[p + "ffn.lin2.weight"], t[p + "ffn.lin2.weight"][kept])
    torch.testing.assert_close(params[p + "sa_layer_norm.bias"], t[p + "sa_layer_norm.bias"][kept])


def test_strong_heads_are_copied_as_whole_blocks(distil_dir: Path) -> None:
    model = AutoModelForQuestionAnswering.from_pretrained(distil_dir)
    with torch.no_grad():
        for layer in model.distilbert.transformer.layer:
            for head in (0, 2):  # rows / columns head * 16 ... head * 16 + 15
                rows = slice(head * 16, head * 16 + 16)
                for lin in (layer.attention.q_lin, layer.attention.k_lin, layer.attention.v_lin):
                    lin.weight[rows] *= 3.0
                layer.attention.out_lin.weight[:, rows] *= 3.0
    source = source_from_model(model)
    student = build_student({**SOURCE_PARAMS, "n_heads": 2, "hidden_size": 32}, source, "qa")
    hidden = top_map(hidden_importance(source), 32).src
    heads = torch.cat([torch.arange(0, 16), torch.arange(32, 48)])  # heads 0 and 2, in order
    params, p = dict(student.named_parameters()), layer_prefix(1)
    for lin in ("q_lin", "k_lin", "v_lin"):
        want = source.tensors[f"{p}attention.{lin}.weight"][heads][:, hidden]  # (32, 32)
        torch.testing.assert_close(params[f"{p}attention.{lin}.weight"], want)
    want = source.tensors[p + "attention.out_lin.weight"][hidden][:, heads]
    torch.testing.assert_close(params[p + "attention.out_lin.weight"], want)


def test_classification_head_is_sliced_or_initialized(tmp_path: Path) -> None:
    torch.manual_seed(3)
    config = DistilBertConfig(vocab_size=VOCAB, max_position_embeddings=POSITIONS, **TINY)
    config.num_labels = 3
    DistilBertForSequenceClassification(config).save_pretrained(tmp_path)
    source = load_source(tmp_path)
    assert source.num_labels == 3 and not source.has_qa_head
    student = build_student(SOURCE_PARAMS, source, "classification", num_labels=3)
    assert isinstance(student, DistilBertForSequenceClassification)
    torch.testing.assert_close(student.classifier.weight, source.tensors["classifier.weight"])
    other: Any = build_student(SOURCE_PARAMS, source, "classification", num_labels=5, seed=0)
    assert other.classifier.weight.shape == (5, 64)
    assert torch.equal(other.pre_classifier.bias, torch.zeros(64))  # initialized, not copied


def test_saved_student_reloads_with_auto_classes(
    distil_source: SourceModel, tmp_path: Path
) -> None:
    params = {"n_layers": 2, "n_heads": 3, "hidden_size": 48, "ffn_dim": 100}
    student = build_student(params, distil_source, "qa", seed=0).eval()
    student.save_pretrained(tmp_path / "qa")
    reloaded = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "qa").eval()
    assert type(reloaded) is DistilBertForQuestionAnswering
    ids, mask = padded_batch()
    with torch.no_grad():
        want, got = (
            student(input_ids=ids, attention_mask=mask),
            reloaded(input_ids=ids, attention_mask=mask),
        )
    torch.testing.assert_close(got.start_logits, want.start_logits, rtol=0, atol=0)
    classifier = build_student(params, distil_source, "classification", num_labels=4).eval()
    classifier.save_pretrained(tmp_path / "cls")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls").eval()
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(input_ids=ids).logits, classifier(input_ids=ids).logits
        )


def test_seed_makes_initialization_reproducible(distil_source: SourceModel) -> None:
    params = {**SOURCE_PARAMS, "n_layers": 5, "hidden_size": 96, "n_heads": 6}
    state = torch.random.get_rng_state()
    a, b = (build_student(params, distil_source, "qa", seed=11) for _ in range(2))
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    for (name, x), y in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(x, y), name
    assert count_parameters(a) == sum(p.numel() for p in b.parameters())


def test_sources_are_cached_per_path(distil_dir: Path) -> None:
    assert load_source(distil_dir) is load_source(str(distil_dir) + "/")


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"n_layers": 2, "n_heads": 5, "hidden_size": 768, "ffn_dim": 64}, "n_heads=5"),
        ({"n_layers": 0, "n_heads": 4, "hidden_size": 64, "ffn_dim": 64}, "n_layers=0"),
        ({"n_layers": 2, "n_heads": 4, "hidden_size": 64}, "ffn_dim"),
        ({"n_layers": 2.5, "n_heads": 4, "hidden_size": 64, "ffn_dim": 64}, "n_layers=2.5"),
    ],
)
def test_invalid_shapes_are_rejected(params: dict[str, float], needle: str) -> None:
    with pytest.raises(InvalidConfig, match=needle) as info:
        StudentShape.from_params({**params, "temperature": 2.0})
    if needle == "n_heads=5":
        assert "hidden_size=768" in str(info.value)
        suggested = str(info.value).rsplit("such as ", 1)[1].split(", ")
        assert len(suggested) == 4 and all(768 % int(h) == 0 for h in suggested)


def test_shape_ignores_other_params_and_accepts_integral_values() -> None:
    shape = StudentShape.from_params(
        {"n_layers": 3.0, "n_heads": 4, "hidden_size": 64, "ffn_dim": 128, "lr": 1e-4}
    )
    assert shape == StudentShape(n_layers=3, n_heads=4, hidden_size=64, ffn_dim=128)


def test_wrong_task_is_rejected(distil_source: SourceModel) -> None:
    with pytest.raises(InvalidConfig, match="task_kind='ner'"):
        build_student(SOURCE_PARAMS, distil_source, "ner")
    with pytest.raises(InvalidConfig, match="num_labels=3"):
        build_student(SOURCE_PARAMS, distil_source, "qa", num_labels=3)


def test_unreadable_checkpoints_raise_checkpoint_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    no_weights = tmp_path / "no_weights"
    DistilBertConfig(**TINY).save_pretrained(no_weights)
    garbage = tmp_path / "garbage"
    DistilBertConfig(**TINY).save_pretrained(garbage)
    (garbage / "model.safetensors").write_bytes(b"not a safetensors file" * 10)
    roberta = tmp_path / "roberta"
    RobertaConfig().save_pretrained(roberta)
    for folder in (empty, no_weights, garbage, roberta, tmp_path / "missing"):
        with pytest.raises(CheckpointError) as info:
            load_source(folder)
        message = str(info.value)
        assert folder.name in message and "config.json and model.safetensors" in message
    assert "model_type 'roberta'" in str(
        pytest.raises(CheckpointError, load_source, roberta).value
    )


@pytest.mark.parametrize(
    "architecture",
    [
        "DistilBertForMaskedLM",
        "DistilBertModel",
        "BertForMaskedLM",
        "BertForSequenceClassification",
    ],
)
def test_pretraining_and_other_head_checkpoints_are_sources(
    architecture: str, tmp_path: Path
) -> None:
    import transformers

    cls = getattr(transformers, architecture)
    if architecture.startswith("Distil"):
        config: Any = DistilBertConfig(vocab_size=VOCAB, max_position_embeddings=POSITIONS, **TINY)
    else:
        config = BertConfig(
            vocab_size=VOCAB,
            max_position_embeddings=POSITIONS,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
        )
    torch.manual_seed(5)
    model = cls(config)
    model.save_pretrained(tmp_path)
    source = load_source(tmp_path)
    assert not source.has_qa_head and source.num_labels is None  # BERT heads are not DistilBERT's
    base = model.base_model
    words = base.embeddings.word_embeddings.weight
    if architecture.startswith("Bert"):
        words = words + base.embeddings.token_type_embeddings.weight[0]
    torch.testing.assert_close(
        source.tensors["distilbert.embeddings.word_embeddings.weight"], words
    )
    student = build_student({**SOURCE_PARAMS, "hidden_size": 32, "n_heads": 2}, source, "qa")
    assert torch.isfinite(student(input_ids=padded_batch()[0]).start_logits).all()


def test_larger_heads_copy_source_rows_into_their_first_slots(
    distil_source: SourceModel,
) -> None:
    params = {"n_layers": 1, "n_heads": 2, "hidden_size": 64, "ffn_dim": 256}  # head_dim 32 > 16
    student = build_student(params, distil_source, "qa", seed=0)
    attention: Any = student.get_submodule("distilbert.transformer.layer.0.attention")
    p = layer_prefix(0) + "attention."
    q, out = distil_source.tensors[p + "q_lin.weight"], distil_source.tensors[p + "out_lin.weight"]
    # Student head h holds a whole source head in rows h * 32 ... h * 32 + 15.
    copied = torch.cat([attention.q_lin.weight[0:16], attention.q_lin.weight[32:48]])  # (32, 64)
    scale = 2**0.5  # sqrt(32 / 16): q keeps the source's logit scale
    blocks = [q[h * 16 : h * 16 + 16] * scale for h in range(4)]
    matches = [any(torch.allclose(c, b) for b in blocks) for c in copied.split(16)]
    assert matches == [True, True]
    fresh = attention.q_lin.weight[16:32]
    assert all(not torch.allclose(fresh, b) for b in blocks)
    assert abs(fresh.std().item() - 0.02) < 0.005
    out_blocks = [out[:, h * 16 : h * 16 + 16] for h in range(4)]
    assert any(torch.allclose(attention.out_lin.weight[:, 32:48], b) for b in out_blocks)
    assert torch.isfinite(student(input_ids=padded_batch()[0]).start_logits).all()
