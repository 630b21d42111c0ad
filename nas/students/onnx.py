"""A saved student folder (``config.json`` + safetensors weights, as ``nas export`` writes it,
or a bilstm/cnn/bow student's ``nas_family.json`` + safetensors, as ``save_family`` writes it) as
an ONNX graph ``model.onnx`` beside the weights, checked against PyTorch with onnxruntime.

The graph takes ``input_ids`` and ``attention_mask`` (int64, ``(batch, sequence)``, both axes
dynamic) and returns the head's outputs: ``logits`` ``(batch, labels)`` for a classifier,
``start_logits`` and ``end_logits`` ``(batch, sequence)`` for extractive QA; a family student
returns ``logits``, its LSTMs written as ONNX ``LSTM`` nodes (:mod:`nas.students.onnx_lstm`:
torch.export cannot keep the sequence axis dynamic through ``nn.LSTM``). It is written with
torch's default exporter (``torch.onnx.export(..., dynamo=True)``, torch.export + onnxscript):
the TorchScript exporter (``dynamo=False``) still runs in torch 2.13 but warns that it is
deprecated since 2.9, so a graph nas ships does not rest on it. The weights live inside the one
file (no external data: a DistilBERT-base student is ~270 MB, far below ONNX's 2 GB limit).

Needs the ``onnx`` extra (``onnxscript`` for the exporter, ``onnxruntime`` for the check).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import CheckpointError, NasError
from nas.students.families import CONFIG_FILE as FAMILY_FILE
from nas.students.families import is_family_folder, load_family

ONNX_FILE = "model.onnx"
OPSET = 20  # torch 2.13's default ai.onnx opset, stated so a torch upgrade cannot change it
INPUTS = ("input_ids", "attention_mask")
# the head (the end of the transformers class name) -> the graph's outputs, in order
HEADS = {
    "ForSequenceClassification": ("logits",),
    "ForQuestionAnswering": ("start_logits", "end_logits"),
}
ATOL = 1e-4  # the largest |ONNX - PyTorch| output difference an export accepts
INSTALL = "pip install 'nas-distill[onnx]'"
_NEEDED = ("onnxscript", "onnxruntime")
_FIX = "export it without --onnx, or export other trials"


class OnnxExportError(NasError):
    """A folder cannot be exported to ONNX: not a student folder, a model class the graph
    cannot take, the onnx extra missing, or a graph that disagrees with PyTorch."""


@dataclass(frozen=True)
class OnnxGraph:
    """What :func:`export_onnx` wrote: recorded in the folder's ``nas.json``."""

    file: str  # the graph's file name, in the student folder
    opset: int  # the ai.onnx opset version
    exporter: str  # how it was written, e.g. "torch.onnx.export(dynamo=True), torch 2.13.0"
    inputs: tuple[str, ...]  # int64 (batch, sequence) each
    outputs: tuple[str, ...]  # the head's outputs, in the graph's order
    max_abs_diff: float  # largest |ONNX - PyTorch| on the check batches (<= ATOL)

    def record(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "opset": self.opset,
            "exporter": self.exporter,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "dynamic_axes": {"batch": 0, "sequence": 1},
            "max_abs_diff_vs_torch": self.max_abs_diff,
        }


def check_onnx_available() -> None:
    """Raise :class:`OnnxExportError` naming the fix when the onnx extra is not installed."""
    missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        raise OnnxExportError(
            f"ONNX export needs {' and '.join(missing)} (the onnx extra), which is not "
            f"installed; run {INSTALL}, or export without --onnx"
        )


def export_onnx(folder: Path, opset: int = OPSET, where: str | None = None) -> OnnxGraph:
    """Write ``folder/model.onnx`` from the student saved in ``folder`` and check it.

    Args:
        folder: A student folder: ``config.json`` naming a ``...ForSequenceClassification`` or
            ``...ForQuestionAnswering`` architecture, and its safetensors weights; or a family
            student's ``nas_family.json`` and ``model.safetensors`` (:func:`save_family`).
        opset: The ai.onnx opset version to target.
        where: How errors name the folder (e.g. ``trial 3``); default: its path.

    Returns:
        What was written, with the largest output difference from PyTorch found by running
        the graph in onnxruntime on a batch of 3 sequences of different lengths (padded) and
        on a batch of 1.

    Raises:
        OnnxExportError: ``folder`` is not a student folder, its class has no ONNX head here,
            the onnx extra is missing, the exporter fails, or the graph differs by > ATOL.
    """
    folder = Path(folder)
    where = where or str(folder)
    check_onnx_available()
    model, outputs = _load(folder, where)
    path = folder / ONNX_FILE
    try:
        _write(model, outputs, path, opset)
    except Exception as exc:  # noqa: BLE001 - torch.export/onnxscript errors: one line each
        path.unlink(missing_ok=True)
        raise OnnxExportError(
            f"{where}: {type(model).__name__} cannot be exported to ONNX "
            f"({_first_line(exc, folder)}); "
            f"{_FIX}"
        ) from None
    try:
        diff = _check(model, outputs, path, where)
    except OnnxExportError:
        path.unlink(missing_ok=True)  # a graph that does not match PyTorch is not left behind
        raise
    return OnnxGraph(
        file=ONNX_FILE,
        opset=opset,
        exporter=f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
        inputs=INPUTS,
        outputs=outputs,
        max_abs_diff=diff,
    )


def _load(folder: Path, where: str) -> tuple[torch.nn.Module, tuple[str, ...]]:
    """The folder's model in eval mode and its head's output names."""
    if is_family_folder(folder):
        try:
            return load_family(folder), ("logits",)
        except CheckpointError as exc:
            raise OnnxExportError(
                f"{where}: the family student does not load ({_first_line(exc, folder)}); {_FIX}"
            ) from None
    config = folder / "config.json"
    weights = sorted(folder.glob("*.safetensors"))
    if not folder.is_dir() or not config.is_file() or not weights:
        raise OnnxExportError(
            f"{where} is not a nas export of a student (it needs config.json and "
            f"model.safetensors, or {FAMILY_FILE} and model.safetensors); pass a trial-N folder "
            "that nas export wrote"
        )
    try:
        architectures = json.loads(config.read_text()).get("architectures") or []
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise OnnxExportError(
            f"{where}: config.json is not a JSON object; pass a trial-N folder that nas export "
            "wrote"
        ) from None
    name = str(architectures[0]) if architectures else "(none)"
    outputs = next((out for head, out in HEADS.items() if name.endswith(head)), None)
    if outputs is None:
        heads = ", ".join(f"*{h}" for h in HEADS)
        raise OnnxExportError(
            f"{where}: model class {name} has no ONNX export in nas (it exports {heads}); {_FIX}"
        )
    import transformers

    auto = (
        transformers.AutoModelForQuestionAnswering
        if outputs == HEADS["ForQuestionAnswering"]
        else transformers.AutoModelForSequenceClassification
    )
    try:
        model = auto.from_pretrained(str(folder))
    except Exception as exc:  # noqa: BLE001 - damaged weights or config: one line
        raise OnnxExportError(
            f"{where}: {name} does not load ({_first_line(exc, folder)}); the checkpoint is "
            "damaged: "
            f"{_FIX}"
        ) from None
    return model.eval(), outputs


class _Outputs(torch.nn.Module):
    """The model as a function of the two inputs, returning its head's tensors as a tuple."""

    def __init__(self, model: torch.nn.Module, outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.outputs = model, outputs

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[Any, ...]:
        return tuple(_run(self.model, self.outputs, input_ids, attention_mask).values())


def _run(
    model: torch.nn.Module, outputs: tuple[str, ...], ids: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The model's outputs by name (a family student returns its logits tensor alone)."""
    out = model(input_ids=ids, attention_mask=mask)
    if isinstance(out, torch.Tensor):
        return {outputs[0]: out}
    return {name: out[name] for name in outputs}


def _write(model: torch.nn.Module, outputs: tuple[str, ...], path: Path, opset: int) -> None:
    longest = int(getattr(_config(model), "max_position_embeddings", 512))
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=longest)
    ids = torch.full((2, min(8, longest)), 1, dtype=torch.long)  # sizes > 1: not specialised
    axes = {0: batch, 1: sequence}
    from nas.students.onnx_lstm import TRANSLATIONS, has_lstm, with_onnx_lstms  # onnxscript

    translations = None
    if has_lstm(model):  # a bilstm student: its LSTMs as ONNX LSTM nodes
        model, translations = with_onnx_lstms(model), TRANSLATIONS
    with _quiet():
        program = torch.onnx.export(
            _Outputs(model, outputs),
            (ids, torch.ones_like(ids)),
            input_names=list(INPUTS),
            output_names=list(outputs),
            opset_version=opset,
            dynamo=True,
            dynamic_shapes={"input_ids": axes, "attention_mask": axes},
            external_data=False,
            verbose=False,
            custom_translation_table=translations,
        )
        if program is None:
            raise RuntimeError("torch.onnx.export returned no program")
        _check_dynamic(program.model_proto)
        program.save(str(path), external_data=False)


def _check_dynamic(proto: Any) -> None:
    """Raise when the exporter fixed an input axis (torch.onnx.export falls back to a fixed
    size when tracing specialises one, with no error)."""
    for value in proto.graph.input:
        for axis, dim in zip(
            ("batch", "sequence"), value.type.tensor_type.shape.dim, strict=False
        ):
            if not dim.dim_param:
                raise RuntimeError(
                    f"the exporter fixed the {axis} axis of {value.name} at {dim.dim_value}"
                )


def _check(model: torch.nn.Module, outputs: tuple[str, ...], path: Path, where: str) -> float:
    """The largest |ONNX - PyTorch| over a padded batch of 3 lengths and a batch of 1."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for ids, mask in check_batches(_config(model)):
        with torch.no_grad():
            expected = _run(model, outputs, ids, mask)
        feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        try:
            got = session.run(list(outputs), feed)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's shape errors: one line
            raise OnnxExportError(
                f"{where}: onnxruntime cannot run the ONNX graph on a batch of shape "
                f"{tuple(ids.shape)} ({_first_line(exc)}); {_FIX}, and report this model class"
            ) from None
        for name, value in zip(outputs, got, strict=True):
            worst = max(worst, float(np.abs(expected[name].numpy() - value).max()))
    if not worst <= ATOL:
        raise OnnxExportError(
            f"{where}: the ONNX graph's outputs differ from PyTorch's by {worst:.3g} "
            f"(more than {ATOL}); {_FIX}, and report this model class"
        )
    return worst


def _config(model: torch.nn.Module) -> Any:
    """What :func:`check_batches` reads: a transformers config, or a family student itself
    (its ``vocab_size``; pad id 0, the teacher WordPiece's ``[PAD]``; no position limit)."""
    return getattr(model, "config", model)


def check_batches(config: Any, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Inputs a graph is checked on: 3 sequences of lengths 13, 7 and 3 padded to 13, and one
    sequence of 5 (token ids drawn from the vocabulary, padding with the pad id)."""
    generator = torch.Generator().manual_seed(seed)
    vocab, pad = int(config.vocab_size), int(getattr(config, "pad_token_id", 0) or 0)
    longest = int(getattr(config, "max_position_embeddings", 512))
    batches = []
    for lengths in ((13, 7, 3), (5,)):
        width = min(max(lengths), longest)
        ids = torch.randint(0, vocab, (len(lengths), width), generator=generator)
        mask = torch.zeros_like(ids)
        for row, n in enumerate(lengths):
            mask[row, : min(n, width)] = 1
        batches.append((ids.masked_fill(mask == 0, pad), mask))
    return batches


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's progress lines and known warnings off (its errors still raise)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _first_line(exc: BaseException, folder: Path | None = None) -> str:
    """The error's first line (200 characters at most), ``folder`` named by its name only."""
    text = str(exc).strip()
    if folder is not None:
        text = text.replace(str(folder), folder.name)
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
