"""ONNX export of saved students: the graph's outputs match PyTorch's on real tokenized text
(a padded batch of 3 different lengths and a batch of 1), its axes are dynamic, and a folder
that is not a student or a class without an ONNX head is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from support.cli_run import assert_usage_error, run_nas
from support.stored_study import stored_classifier, stored_study
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DistilBertConfig,
    DistilBertForQuestionAnswering,
    DistilBertModel,
)

from nas.students import ONNX_FILE, OPSET, OnnxExportError, export_onnx

TEXTS = ["a warm, funny and moving film that i would see again", "a bad movie", "good"]
QUESTIONS = ["what is it", "where is the film", "who"]


@pytest.fixture
def classifier_dir(tmp_path: Path, tiny_tokenizer_dir: Path) -> Path:
    """The stored classifier's checkpoint folder (weights, config, tokenizer)."""
    stored_classifier(tmp_path, tiny_tokenizer_dir)
    return tmp_path / "ckpt-clf"


@pytest.fixture
def qa_dir(tmp_path: Path, tiny_tokenizer_dir: Path) -> Path:
    """A tiny random-init DistilBERT QA student saved with its tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    torch.manual_seed(1)
    config = DistilBertConfig(
        vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64, pad_token_id=0
    )
    folder = tmp_path / "qa"
    DistilBertForQuestionAnswering(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def onnx_vs_torch(folder: Path, model: torch.nn.Module, enc: dict, names: list[str]) -> float:
    """The largest |ONNX - PyTorch| over ``names`` for the tokenized batch ``enc``."""
    session = onnxruntime.InferenceSession(str(folder / ONNX_FILE))
    feed = {k: enc[k].numpy() for k in ("input_ids", "attention_mask")}
    got = session.run(names, feed)
    with torch.no_grad():
        expected = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    pairs = zip(names, got, strict=True)
    return max(float(np.abs(expected[n].numpy() - g).max()) for n, g in pairs)


def test_classifier_logits_match_pytorch_with_dynamic_axes(classifier_dir: Path) -> None:
    graph = export_onnx(classifier_dir)
    assert graph.outputs == ("logits",) and graph.opset == OPSET and graph.max_abs_diff <= 1e-4
    proto = onnx.load(str(classifier_dir / ONNX_FILE))
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask"]
    for value in proto.graph.input:  # both axes symbolic, not sizes fixed at export
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"] and not any(
            d.dim_value for d in dims
        )
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {OPSET}
    tokenizer = AutoTokenizer.from_pretrained(str(classifier_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(classifier_dir)).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert len(set(lengths)) == 3, lengths  # three lengths: padding inside the batch
    assert onnx_vs_torch(classifier_dir, model, batch, ["logits"]) <= 1e-4
    one = tokenizer(TEXTS[2:], return_tensors="pt")  # batch 1, another sequence length
    assert onnx_vs_torch(classifier_dir, model, one, ["logits"]) <= 1e-4


def test_qa_start_end_logits_match_pytorch(qa_dir: Path) -> None:
    graph = export_onnx(qa_dir)
    assert graph.outputs == ("start_logits", "end_logits")
    tokenizer = AutoTokenizer.from_pretrained(str(qa_dir))
    model = AutoModelForQuestionAnswering.from_pretrained(str(qa_dir)).eval()
    batch = tokenizer(QUESTIONS, TEXTS, padding=True, return_tensors="pt")
    assert len(set(batch["attention_mask"].sum(dim=1).tolist())) == 3
    names = ["start_logits", "end_logits"]
    assert onnx_vs_torch(qa_dir, model, batch, names) <= 1e-4
    record = graph.record()
    assert record["file"] == ONNX_FILE and record["outputs"] == names
    assert record["dynamic_axes"] == {"batch": 0, "sequence": 1}


def test_a_folder_that_is_no_student_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "nas.json").write_text("{}")
    with pytest.raises(OnnxExportError, match="is not a nas export of a student") as info:
        export_onnx(tmp_path)
    assert "\n" not in str(info.value) and not (tmp_path / ONNX_FILE).exists()


def test_a_model_class_without_an_onnx_head_is_one_error(tmp_path: Path) -> None:
    config = DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    DistilBertModel(config).save_pretrained(str(tmp_path))
    with pytest.raises(OnnxExportError, match="model class DistilBertModel has no ONNX") as info:
        export_onnx(tmp_path)
    assert "*ForSequenceClassification" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / ONNX_FILE).exists()


def test_export_onnx_of_a_damaged_student_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    _, url, _ = stored_study(tmp_path)  # its model.safetensors is 1,024 bytes of no tensors
    out = tmp_path / "out"
    result = run_nas("export", "stored", "--out", str(out), "--storage", url, "--onnx")
    assert_usage_error(result, "--onnx: trial-", "does not load", "without --onnx")
    assert ".out.new" not in result.stderr  # the folder as the user will know it
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_record_is_json(classifier_dir: Path) -> None:
    record = export_onnx(classifier_dir).record()
    assert json.loads(json.dumps(record)) == record


def test_a_missing_onnx_extra_names_the_install(
    monkeypatch: pytest.MonkeyPatch, classifier_dir: Path
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name)
    )
    with pytest.raises(
        OnnxExportError, match=r"needs onnxscript .*pip install 'nas-distill\[onnx\]'"
    ):
        export_onnx(classifier_dir)
    assert not (classifier_dir / ONNX_FILE).exists()


def test_a_graph_whose_exporter_fixed_an_axis_is_refused_and_not_left_behind(
    classifier_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.onnx.export may specialise an axis without an error; the guard catches it."""
    from types import SimpleNamespace

    real = torch.onnx.export

    def fixing_batch(*args, **kwargs):  # type: ignore[no-untyped-def]
        program = real(*args, **kwargs)
        proto = program.model_proto
        proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2  # clears dim_param
        return SimpleNamespace(model_proto=proto, save=program.save)

    monkeypatch.setattr(torch.onnx, "export", fixing_batch)
    with pytest.raises(OnnxExportError, match=r"fixed the batch axis of input_ids at 2"):
        export_onnx(classifier_dir)
    assert not (classifier_dir / ONNX_FILE).exists()
