"""ONNX export of bilstm/cnn/bow students (``nas_family.json`` folders): for each family the
graph's logits match PyTorch's on batches of other sizes and lengths than the export and the
check used (the axes are dynamic), padding changes no logit, and the graph runs with
onnxruntime and the folder's tokenizer alone, without nas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from transformers import AutoTokenizer

from nas.family_shapes import BiLSTMShape, BowShape, CNNShape, FamilyShape
from nas.students import ONNX_FILE, OnnxExportError, export_onnx
from nas.students.families import build_family, save_family

VOCAB = 200
SHAPES: dict[str, FamilyShape] = {
    "bilstm-1-last": BiLSTMShape(16, 16, n_layers=1, pooling="last", fc_dim=16),
    "bilstm-2-max": BiLSTMShape(16, 16, n_layers=2, pooling="max", fc_dim=16),
    "bilstm-2-mean": BiLSTMShape(16, 16, n_layers=2, pooling="mean", fc_dim=16),
    "cnn": CNNShape(16, filter_widths=(2, 3), n_filters=16),
    "bow": BowShape(16),
    "bow-hidden": BowShape(16, hidden_dim=16),
}
# (batch, width, lengths): none is the export's (2, 8) or the check's (3, 13) / (1, 5)
BATCHES = ((4, 21, (21, 9, 1, 4)), (1, 2, (2,)), (6, 4, (4, 3, 2, 1, 4, 2)))


def saved(folder: Path, shape: FamilyShape, vocab: int = VOCAB) -> torch.nn.Module:
    model = build_family(shape, vocab, num_labels=3, seed=0).eval()
    save_family(model, folder)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each family saved with save_family and exported once (the export costs ~1-3 s)."""
    root = tmp_path_factory.mktemp("families")
    for name, shape in SHAPES.items():
        saved(root / name, shape)
        graph = export_onnx(root / name)
        assert graph.outputs == ("logits",) and graph.max_abs_diff <= 1e-4
    return {name: root / name for name in SHAPES}


def padded(batch: int, width: int, lengths: tuple[int, ...], seed: int) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, width), generator=generator)
    mask = (torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).long()
    return ids.masked_fill(mask == 0, 0), mask


def onnx_logits(session: onnxruntime.InferenceSession, ids: torch.Tensor, mask: torch.Tensor):
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    return session.run(["logits"], feed)[0]


@pytest.mark.parametrize("name", list(SHAPES))
def test_family_logits_match_pytorch_on_other_shapes(name: str, exported: dict) -> None:
    from nas.students.families import load_family

    folder = exported[name]
    proto = onnx.load(str(folder / ONNX_FILE))
    assert [i.name for i in proto.graph.input] == ["input_ids", "attention_mask"]
    for value in proto.graph.input:  # symbolic axes, no size fixed at export
        assert [d.dim_param for d in value.type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    if name.startswith("bilstm"):  # the LSTMs are ONNX LSTM nodes, not an unrolled loop
        assert sum(n.op_type == "LSTM" for n in proto.graph.node) == 2 * SHAPES[name].n_layers
    model = load_family(folder)
    session = onnxruntime.InferenceSession(str(folder / ONNX_FILE))
    for seed, (batch, width, lengths) in enumerate(BATCHES):
        ids, mask = padded(batch, width, lengths, seed)
        got = onnx_logits(session, ids, mask)
        with torch.no_grad():
            expected = model(ids, mask).numpy()
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        # padding changes no logit: each row alone, unpadded, gives the same logits
        for row, n in enumerate(lengths):
            alone = onnx_logits(session, ids[row : row + 1, :n], mask[row : row + 1, :n])
            np.testing.assert_allclose(alone[0], got[row], atol=1e-4, rtol=0)


STANDALONE = """
import json, sys
import numpy as np, onnxruntime
from transformers import AutoTokenizer
folder = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(folder)
session = onnxruntime.InferenceSession(f"{folder}/model.onnx")
enc = tokenizer(json.loads(sys.argv[2]), padding=True, return_tensors="np")
logits = session.run(["logits"], {k: enc[k] for k in ("input_ids", "attention_mask")})[0]
assert not [m for m in sys.modules if m == "nas" or m.startswith("nas.")]
print(json.dumps({"logits": logits.tolist(), "names": [i.name for i in session.get_inputs()]}))
"""


def test_a_family_graph_runs_with_onnxruntime_and_its_tokenizer_alone(
    tmp_path: Path, tiny_tokenizer_dir: Path
) -> None:
    """A trial folder as the runner writes it (weights, nas_family.json, the tokenizer)."""
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    folder = tmp_path / "trial"
    model = saved(folder, SHAPES["bilstm-2-mean"], vocab=len(tokenizer))
    tokenizer.save_pretrained(str(folder))
    export_onnx(folder)
    texts = ["a warm, funny and moving film that i would see again", "a bad movie", "good"]
    script = tmp_path / "standalone.py"
    script.write_text(STANDALONE)
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(folder), json.dumps(texts)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["names"] == ["input_ids", "attention_mask"]  # no token_type_ids
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    assert len(set(enc["attention_mask"].sum(dim=1).tolist())) == 3  # padded batch
    with torch.no_grad():
        expected = model(enc["input_ids"], enc["attention_mask"]).numpy()
    np.testing.assert_allclose(np.array(out["logits"]), expected, atol=1e-4, rtol=0)


def test_a_damaged_family_folder_is_one_error(tmp_path: Path) -> None:
    saved(tmp_path, SHAPES["bow"])
    (tmp_path / "nas_family.json").write_text(json.dumps({"family": "bow"}))
    with pytest.raises(OnnxExportError, match="the family student does not load") as info:
        export_onnx(tmp_path, where="trial 4")
    message = str(info.value)
    assert message.startswith("trial 4: ") and "without --onnx" in message
    assert "\n" not in message and not (tmp_path / ONNX_FILE).exists()


def test_an_lstm_traced_by_torch_alone_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the ONNX LSTM translation the graph torch.export makes of a stacked LSTM does
    not run at other lengths (torch 2.13): one error, nothing written."""
    import nas.students.onnx_lstm as onnx_lstm

    saved(tmp_path, SHAPES["bilstm-2-max"])
    monkeypatch.setattr(onnx_lstm, "has_lstm", lambda model: False)
    with pytest.raises(OnnxExportError) as info:
        export_onnx(tmp_path, where="trial 5")
    message = str(info.value)
    assert message.startswith("trial 5: ") and "ONNX" in message
    assert "without --onnx" in message and "\n" not in message
    assert not (tmp_path / ONNX_FILE).exists()
