"""Cost model: exact parameter counts, training-memory estimates, per-part breakdown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import DistilBertConfig, DistilBertForQuestionAnswering, DistilBertModel

from nas.errors import InvalidConfig
from nas.params import StudentShape
from nas.students.build import build_student, count_parameters
from nas.students.cost import (
    MemoryEstimate,
    describe_student,
    estimate_training_memory,
    parameter_count,
    student_report,
)
from nas.students.sources import SourceModel, load_source, source_from_model

VOCAB, POSITIONS = 200, 64


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Tiny models run faster on one thread (two threads on a busy machine can crawl)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_source() -> SourceModel:
    torch.manual_seed(0)
    tiny: dict[str, Any] = {"dim": 64, "n_layers": 4, "n_heads": 4, "hidden_dim": 256}
    config = DistilBertConfig(vocab_size=VOCAB, max_position_embeddings=POSITIONS, **tiny)
    return source_from_model(DistilBertForQuestionAnswering(config))


def test_distilbert_base_shape_has_66_364_418_parameters(tmp_path: Path) -> None:
    torch.manual_seed(0)
    DistilBertModel(DistilBertConfig()).save_pretrained(tmp_path)  # random init, vocab 30522
    source = load_source(tmp_path)
    assert (source.vocab_size, source.max_positions, source.dim) == (30522, 512, 768)
    params = {"n_layers": 6, "n_heads": 12, "hidden_size": 768, "ffn_dim": 3072}
    student = build_student(params, source, "qa")
    assert count_parameters(student) == 66_364_418
    shape = StudentShape.from_params(params)
    assert parameter_count(shape, 30522, 512, "qa") == 66_364_418
    parts = describe_student(student)
    assert parts[0] == ("embeddings", (30522, 512, 768), 23_835_648)
    assert parts[-1] == ("head", (768, 2), 1538)
    assert sum(part.params for part in parts) == 66_364_418


SHAPES = [
    StudentShape(n_layers=1, n_heads=1, hidden_size=8, ffn_dim=1),
    StudentShape(n_layers=2, n_heads=2, hidden_size=32, ffn_dim=96),
    StudentShape(n_layers=3, n_heads=3, hidden_size=48, ffn_dim=100),
    StudentShape(n_layers=4, n_heads=4, hidden_size=64, ffn_dim=256),
    StudentShape(n_layers=6, n_heads=8, hidden_size=96, ffn_dim=512),  # larger than the source
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("task_kind", "num_labels"), [("qa", 2), ("classification", 5)])
def test_parameter_count_matches_built_students(
    tiny_source: SourceModel,
    shape: StudentShape,
    task_kind: str,
    num_labels: int,
    single_thread: None,
) -> None:
    student = build_student(shape, tiny_source, task_kind, num_labels)
    expected = count_parameters(student)
    assert parameter_count(shape, VOCAB, POSITIONS, task_kind, num_labels) == expected
    assert sum(part.params for part in describe_student(student)) == expected


def test_describe_student_names_every_part(tiny_source: SourceModel, single_thread: None) -> None:
    shape = StudentShape(n_layers=2, n_heads=3, hidden_size=48, ffn_dim=100)
    student = build_student(shape, tiny_source, "classification", num_labels=3)
    parts = {part.name: part for part in describe_student(student)}
    assert list(parts) == [
        "embeddings",
        "layer.0.attention",
        "layer.0.ffn",
        "layer.1.attention",
        "layer.1.ffn",
        "head",
    ]
    assert parts["embeddings"].shape == (VOCAB, POSITIONS, 48)
    assert parts["layer.1.attention"] == (
        "layer.1.attention",
        (3, 16, 48),
        4 * (48 * 48 + 48) + 96,
    )
    assert parts["layer.0.ffn"] == ("layer.0.ffn", (48, 100), 48 * 100 + 100 + 100 * 48 + 48 + 96)
    assert parts["head"] == ("head", (48, 48, 3), 48 * 48 + 48 + 48 * 3 + 3)
    memory = estimate_training_memory(shape, VOCAB, POSITIONS, "classification", 3, 8, 32)
    report = student_report(student, memory)
    assert f"{count_parameters(student):,}" in report.splitlines()[-2]
    assert "estimated training memory: weights" in report


def test_memory_components_follow_the_parameter_count() -> None:
    shape = StudentShape(n_layers=6, n_heads=12, hidden_size=768, ffn_dim=3072)
    p = 66_364_418
    fp32 = estimate_training_memory(shape, 30522, 512, "qa", 2, batch_size=32, seq_len=384)
    assert (fp32.weights, fp32.gradients, fp32.optimizer) == (4 * p, 4 * p, 8 * p)
    parts = fp32.weights + fp32.gradients + fp32.optimizer + fp32.activations
    assert fp32.total == parts == fp32.as_dict()["total"]
    amp = estimate_training_memory(shape, 30522, 512, "qa", 2, 32, 384, amp=True)
    assert amp.weights == 6 * p and amp.optimizer == fp32.optimizer
    assert amp.activations < 0.6 * fp32.activations
    eager = estimate_training_memory(shape, 30522, 512, "qa", 2, 32, 384, attention="eager")
    assert eager.activations > fp32.activations
    # The seq^2 attention tensors: doubling the sequence more than doubles eager activations.
    longer = estimate_training_memory(shape, 30522, 512, "qa", 2, 32, 768, attention="eager")
    assert longer.activations > 2.2 * eager.activations
    assert "GiB" in fp32.human() and fp32.human().startswith("weights 253.2 MiB")


def saved_activation_bytes(model: torch.nn.Module, ids: torch.Tensor) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves in one QA training forward."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    positions = torch.zeros(ids.shape[0], dtype=torch.long)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, start_positions=positions, end_positions=positions).loss.backward()
    return sum(saved.values())


@pytest.mark.parametrize("shape", SHAPES[1:4], ids=str)
def test_activation_estimate_matches_saved_tensors_on_cpu(
    tiny_source: SourceModel, shape: StudentShape, single_thread: None
) -> None:
    student = build_student(shape, tiny_source, "qa").train()
    student.set_attn_implementation("eager")
    batch, seq = 4, 48
    measured = saved_activation_bytes(student, torch.randint(0, VOCAB, (batch, seq)))
    estimate = estimate_training_memory(
        shape, VOCAB, POSITIONS, "qa", 2, batch, seq, attention="eager", mask_bytes=4
    )
    assert abs(estimate.activations - measured) <= 0.01 * measured, (estimate, measured)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"attention": "flash"}, "attention='flash'"),
        ({"task_kind": "ner"}, "task_kind='ner'"),
        ({"num_labels": 3}, "num_labels=3"),
    ],
)
def test_bad_memory_arguments_are_rejected(kwargs: dict[str, object], needle: str) -> None:
    args: dict[str, object] = {
        "shape": StudentShape(2, 2, 32, 64),
        "vocab_size": VOCAB,
        "max_positions": POSITIONS,
        "task_kind": "qa",
        "num_labels": 2,
        "batch_size": 4,
        "seq_len": 16,
    }
    with pytest.raises(InvalidConfig, match=needle):
        estimate_training_memory(**{**args, **kwargs})  # type: ignore[arg-type]


def test_memory_estimate_is_a_frozen_value() -> None:
    estimate = MemoryEstimate(weights=1, gradients=2, optimizer=3, activations=4)
    assert estimate.total == 10
    assert (
        estimate.human()
        == "weights 1 B, gradients 2 B, optimizer 3 B, activations 4 B, total 10 B"
    )
    with pytest.raises(AttributeError):
        estimate.weights = 5  # type: ignore[misc]


def test_a_family_students_memory_estimate_counts_its_exact_parameters() -> None:
    from nas.students import (
        BiLSTMShape,
        BowShape,
        build_family,
        count_parameters,
        estimate_family_memory,
    )

    for shape in (BiLSTMShape(16, 24, n_layers=2, fc_dim=32), BowShape(16, hidden_dim=8)):
        model = build_family(shape, 300, 3, seed=0)
        short = estimate_family_memory(shape, 300, 3, batch_size=8, seq_len=10)
        assert short.weights == 4 * count_parameters(model)  # fp32, every parameter
        assert short.optimizer == 2 * short.weights and short.gradients == short.weights
        longer = estimate_family_memory(shape, 300, 3, batch_size=8, seq_len=20)
        assert longer.activations == 2 * short.activations  # per token
    lstm = estimate_family_memory(BiLSTMShape(16, 24), 300, 3, 8, 10)
    bow = estimate_family_memory(BowShape(16), 300, 3, 8, 10)
    assert lstm.activations > 10 * bow.activations  # gates and states of every position


def test_teacher_in_loop_memory_by_hand() -> None:
    from nas.students.cost import teacher_in_loop_memory

    teacher = StudentShape(n_layers=2, n_heads=2, hidden_size=8, ffn_dim=16)
    got = teacher_in_loop_memory(teacher, 1000, 4, 3, 5, attention="eager")
    tokens = 3 * 5
    kept = 3 * tokens * 8 * 4 + 3 * 2 * tokens * 8 * 4 + 3 * 2 * 5 * 5 * 4  # states, qkv, scores
    projection = 4 * 8 + 8
    assert got.as_dict() == {
        "weights": 1000 * 4 + 4 * projection,
        "gradients": 4 * projection,
        "optimizer": 8 * projection,
        "activations": kept,
        "total": 4000 + 16 * projection + kept,
    }
    same_width = teacher_in_loop_memory(teacher, 1000, 8, 3, 5, amp=True, relations=False)
    assert same_width.as_dict() == {
        "weights": 2000, "gradients": 0, "optimizer": 0,
        "activations": 3 * tokens * 8 * 2, "total": 2000 + 3 * tokens * 8 * 2,
    }  # fmt: skip
