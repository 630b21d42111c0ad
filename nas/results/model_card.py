"""The model card (``README.md``) of an exported trial: Hugging Face front matter (pipeline tag,
base model, datasets, license, ``model-index`` with the test-split metrics), the metrics nas
recorded, and a runnable inference snippet that decides as nas does.

The front matter follows https://huggingface.co/docs/hub/model-cards (the ``model-index``
schema of huggingface/hub-docs ``modelcard.md``): each result names a task ``type``, a dataset
``type`` (hub id) and ``name``, and metrics with ``type`` and ``value``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from nas.family_shapes import FAMILY_FILE, FAMILY_TITLES
from nas.tasks import NULL_SCORE_THRESHOLD

PROVENANCE = "nas.json"
QA_CLASS = "AutoModelForQuestionAnswering"
CLASSIFIER_CLASS = "AutoModelForSequenceClassification"
# A bilstm/cnn/bow student: not a transformers model; nas.students.load_family reads its folder.
FAMILY_CLASS = "nas.students.load_family"
PIPELINE_TAGS = {
    QA_CLASS: "question-answering",
    CLASSIFIER_CLASS: "text-classification",
    FAMILY_CLASS: "text-classification",
}
TASK_NAMES = {
    "question-answering": "Question Answering",
    "text-classification": "Text Classification",
}
# Names nas passes to datasets.load_dataset -> the dataset's hub id (the short names redirect).
HUB_IDS = {"squad_v2": "rajpurkar/squad_v2", "glue": "nyu-mll/glue", "imdb": "stanfordnlp/imdb"}
PRETTY = {
    "rajpurkar/squad_v2": "SQuAD v2",
    "nyu-mll/glue": "GLUE",
    "stanfordnlp/imdb": "IMDB",
    "dair-ai/emotion": "Emotion",
}
# nas metric -> (model-index metric type, shown name)
METRIC_TYPES = {
    "exact": ("exact_match", "Exact match"),
    "f1": ("f1", "F1"),
    "accuracy": ("accuracy", "Accuracy"),
    "macro_f1": ("f1", "Macro F1"),
    "mcc": ("matthews_correlation", "Matthews correlation"),
}
# nas.tasks.squad_v2.predict answers "" when null score - best span score exceeds
# NULL_SCORE_THRESHOLD (0: a no-answer probability above 0.5); the snippet applies that bound.
QA_EXAMPLE = (
    "Where is the Eiffel Tower?",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, completed in 1889.",
)
TEXT_EXAMPLE = "A warm, funny and moving film."


@dataclass(frozen=True)
class CardFacts:
    """What a card states beyond the trial's record."""

    model_class: str  # the transformers auto class that loads the folder, or FAMILY_CLASS
    path: str  # the folder the snippet loads (relative: never an absolute local path)
    data: Mapping[str, Any]  # the study's data settings (DataConfig fields)
    dataset: tuple[str, str | None, str] | None  # (hub id, config, test split); None: local
    base_model: str | None  # a hub id, or None
    license: str | None  # the student source's license, or None when it declares none
    label_names: tuple[str, ...]  # classification labels in logit order; () if unknown
    max_length: int | None  # the tokenizer's model_max_length as exported
    max_length_from: str  # where that length comes from, in words
    onnx: str | None = None  # the folder's ONNX graph file (nas export --onnx), or None


def model_card(record: Mapping[str, Any], facts: CardFacts) -> str:
    """A Hugging Face model card (``README.md``) for one exported trial.

    Args:
        record: The trial's completed ``nas.json`` (local paths already redacted).
        facts: What the export found out about the folder, the study and the source.

    Returns:
        Markdown with YAML front matter.
    """
    metrics = record.get("metrics") or {}
    lines = [
        "---",
        yaml.safe_dump(front_matter(record, facts), sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        *_header(record, facts),
        *_section("Objectives (selection split)", "metric", record.get("values") or {}),
        *_section("Task metrics (selection split)", "metric", metrics.get("task") or {}),
        *_section(
            "Task metrics (test split: data no trial saw)",
            "metric",
            record.get("test_metrics") or {"(not scored yet)": "nas study front NAME --test"},
        ),
        *_held_out_lines(record),
        *_section("Trial parameters", "parameter", record.get("trial_params") or {}),
        *_usage(facts),
        *_provenance_lines(record, facts),
    ]
    return "\n".join(lines)


def front_matter(record: Mapping[str, Any], facts: CardFacts) -> dict[str, Any]:
    """The card's YAML metadata; keys whose value nas does not know are left out."""
    tag = PIPELINE_TAGS.get(facts.model_class)
    family = facts.model_class == FAMILY_CLASS
    # a family student is plain PyTorch (safetensors) and ONNX, not a transformers model
    meta: dict[str, Any] = {} if family else {"library_name": "transformers"}
    if tag:
        meta["pipeline_tag"] = tag
    if facts.license:
        meta["license"] = facts.license
    if facts.base_model:
        meta["base_model"] = facts.base_model
    if facts.dataset:
        meta["datasets"] = [facts.dataset[0]]
    meta["tags"] = ["distillation", "nas", str(record.get("task"))]
    if family:
        meta["tags"] += [str(record.get("family")), *(["onnx"] if facts.onnx else [])]
    index = model_index(record, facts)
    if index:
        meta["model-index"] = index
    return meta


def model_index(record: Mapping[str, Any], facts: CardFacts) -> list[dict[str, Any]]:
    """``model-index`` with the trial's test-split metrics; [] when it was not scored there."""
    test = record.get("test_metrics") or {}
    tag = PIPELINE_TAGS.get(facts.model_class)
    metrics = [
        {"type": METRIC_TYPES[k][0], "value": float(v), "name": f"{METRIC_TYPES[k][1]} (test)"}
        for k, v in test.items()
        if k in METRIC_TYPES
    ]
    if not metrics or tag is None:
        return []
    return [
        {
            "name": f"{record.get('study')}-trial-{record.get('trial')}",
            "results": [
                {
                    "task": {"type": tag, "name": TASK_NAMES[tag]},
                    "dataset": _dataset_entry(record, facts),
                    "metrics": metrics,
                }
            ],
        }
    ]


def _dataset_entry(record: Mapping[str, Any], facts: CardFacts) -> dict[str, Any]:
    limit = facts.data.get("max_test_samples")
    first = f", first {limit}" if limit else ""
    if facts.dataset is None:  # local files or generated data: nas's own test split
        task = str(record.get("task"))
        return {"type": task, "name": f"{task} (local data, nas test split{first})"}
    hub_id, config, split = facts.dataset
    pretty = PRETTY.get(hub_id, hub_id) + (f" {config}" if config else "")
    entry: dict[str, Any] = {"type": hub_id, "name": f"{pretty} ({split}{first})"}
    if config:
        entry["config"] = config
    entry["split"] = split
    return entry


def _header(record: Mapping[str, Any], facts: CardFacts) -> list[str]:
    role = " (the study's baseline)" if record.get("baseline") else ""
    summary = {
        "task": record.get("task"),
        "teacher": record.get("teacher"),
        "student source": record.get("student_source"),
        "data": record.get("data"),
        "student family": record.get("family") or "distilbert",
        "parameters": _count(record.get("n_params")),
        "batch-1 latency": _latency(record),
        "feasible": "yes" if record.get("feasible") else "no",
        "license": facts.license or "unknown: the student source declares none; set one",
    }
    lines = [
        f"# {record.get('study')}: trial {record.get('trial')}",
        "",
        f"A {_title(record)} student distilled from `{record.get('teacher')}` by nas, trial "
        f"{record.get('trial')} of study `{record.get('study')}`{role}.",
        "",
    ]
    if not record.get("feasible"):
        missed = {k: v for k, v in (record.get("constraints") or {}).items() if v > 0}
        shown = ", ".join(f"{k} missed by {v:.4g}" for k, v in missed.items())
        lines += [
            f"**Infeasible:** this trial misses the study's thresholds ({shown}); it is not on "
            "the study's Pareto front and was exported on request (`--trials`).",
            "",
        ]
    return [*lines, *_table(("item", "value"), summary), ""]


def _title(record: Mapping[str, Any]) -> str:
    family = str(record.get("family") or "distilbert")
    return FAMILY_TITLES.get(family, family)


def _latency(record: Mapping[str, Any]) -> str:
    """The trial's median batch-1 inference latency and where it was measured."""
    ms = record.get("latency_ms")
    if not isinstance(ms, int | float):
        return "not measured"
    device = record.get("latency_device") or "the trial's device"
    return f"{ms:.3g} ms (median of batch-1 forward passes on {device}, as the trial measured)"


def _section(title: str, key: str, rows: Mapping[str, Any]) -> list[str]:
    return [f"## {title}", "", *_table((key, "value"), rows), ""]


def _table(header: tuple[str, str], rows: Mapping[str, Any]) -> list[str]:
    cells = [f"| {k} | {_cell(v)} |" for k, v in rows.items()]
    return [f"| {header[0]} | {header[1]} |", "| --- | --- |", *cells]


def _cell(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _count(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else str(value)


def _held_out_lines(record: Mapping[str, Any]) -> list[str]:
    """The teacher's row and the confirmed spread, when the study has them."""
    lines: list[str] = []
    teacher = record.get("teacher_metrics") or {}
    if teacher:
        names = sorted(set(teacher.get("selection", {})) & set(teacher.get("test", {})))
        rows = {n: f"{teacher['selection'][n]:.4g} / {teacher['test'][n]:.4g}" for n in names}
        lines += _section("Teacher (selection / test)", "metric", rows)
    confirmed = record.get("confirmed")
    if confirmed:
        rows = {}
        for split in ("selection", "test"):
            for name, stats in (confirmed.get(split) or {}).items():
                if stats:
                    mean, spread, n = stats
                    rows[f"{name} ({split})"] = f"{mean:.4g} ± {spread:.2g} ({n} seeds)"
        lines += _section("Re-trained with new seeds", "metric", rows)
    return lines


def _usage(facts: CardFacts) -> list[str]:
    length = (
        f"The tokenizer's `model_max_length` is {facts.max_length}: {facts.max_length_from}."
        if facts.max_length
        else f"The tokenizer's `model_max_length` is as saved ({facts.max_length_from})."
    )
    if facts.model_class == QA_CLASS:
        how = (
            "The snippet decodes answers as nas scored them: doc-stride windows, the best span "
            "among each window's top start/end logits, and no answer when the null score (the "
            "[CLS] start + end logits, lowest over windows) minus the best span score exceeds "
            f"{NULL_SCORE_THRESHOLD} (a no-answer probability above 0.5). transformers 5 has "
            "no question-answering pipeline, and a plain argmax would answer every question."
        )
        code = _qa_snippet(facts)
    elif facts.model_class == CLASSIFIER_CLASS:
        how = "The snippet truncates as nas did and maps the top logit to its label name."
        code = _classifier_snippet(facts)
    elif facts.model_class == FAMILY_CLASS:
        how = (
            "This student is not a transformers model: nas rebuilds it from "
            f"`{FAMILY_FILE}` (family, shape, sizes, labels) and `model.safetensors` (no "
            "pickle). It reads the same WordPiece ids as the teacher; the snippet truncates as "
            "nas did and maps the top logit to its label name."
        )
        code = _family_snippet(facts)
    else:
        how, code = "", _load_snippet(facts)
    lines = ["## How to use", "", *([how, ""] if how else []), length, "",
             "```python", *code, "```", ""]  # fmt: skip
    return lines + _onnx_usage(facts)


def _onnx_usage(facts: CardFacts) -> list[str]:
    """The same decision with onnxruntime on the folder's ONNX graph: no torch, no nas."""
    if facts.onnx is None or facts.model_class not in PIPELINE_TAGS:
        return []
    if facts.model_class == FAMILY_CLASS:
        return [
            "### With onnxruntime",
            "",
            f"`{facts.onnx}` takes `input_ids` and `attention_mask` (int64, batch and sequence "
            "axes dynamic) and returns `logits`. It needs only `pip install onnxruntime "
            "tokenizers`: no torch, no transformers, no nas; it decides as the snippet above.",
            "",
            "```python",
            *_family_snippet(facts, facts.onnx),
            "```",
            "",
        ]
    qa = facts.model_class == QA_CLASS
    outputs = "`start_logits` and `end_logits` (batch, sequence)" if qa else "`logits`"
    code = _qa_snippet(facts, facts.onnx) if qa else _classifier_snippet(facts, facts.onnx)
    return [
        "### With onnxruntime",
        "",
        f"`{facts.onnx}` takes `input_ids` and `attention_mask` (int64, batch and sequence "
        f"axes dynamic) and returns {outputs}. It needs `pip install onnxruntime "
        "transformers` (the tokenizer) and no torch; it decides as the snippet above.",
        "",
        "```python",
        *code,
        "```",
        "",
    ]


def _load_snippet(facts: CardFacts) -> list[str]:
    return [
        f"from transformers import {facts.model_class}, AutoTokenizer",
        "",
        f'model = {facts.model_class}.from_pretrained("{facts.path}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{facts.path}")',
    ]


def _model_line(facts: CardFacts) -> str:
    where = "this folder" if "/" in facts.path else "this folder, from the export folder"
    return f'MODEL = "{facts.path}"  # {where} (or its hub id once uploaded)'


def _qa_snippet(facts: CardFacts, onnx: str | None = None) -> list[str]:
    """The decode as nas scores; ``onnx``: the graph file, run with onnxruntime."""
    d = facts.data
    question, context = QA_EXAMPLE
    if onnx is None:
        imports = ["import torch", f"from transformers import {QA_CLASS}, AutoTokenizer"]
        load = [f"model = {QA_CLASS}.from_pretrained(MODEL).eval()"]
        run = [
            "    with torch.no_grad():",
            "        out = model(input_ids=enc['input_ids'],",
            "                    attention_mask=enc['attention_mask'])",
            "    start_logits, end_logits = out.start_logits.numpy(), out.end_logits.numpy()",
        ]
    else:
        imports = ["import onnxruntime", "from transformers import AutoTokenizer"]
        load = [f"session = onnxruntime.InferenceSession(f'{{MODEL}}/{onnx}')"]
        run = [
            "    inputs = {k: enc[k].astype(np.int64) for k in ('input_ids', 'attention_mask')}",
            "    start_logits, end_logits = session.run(['start_logits', 'end_logits'], inputs)",
        ]
    tensors = "'pt'" if onnx is None else "'np'"
    return [
        "import numpy as np",
        *imports,
        "",
        _model_line(facts),
        f"MAX_LENGTH, STRIDE = {d['max_seq_length']}, {d['doc_stride']}  # windows as nas scored",
        f"N_BEST, MAX_ANSWER = {d['n_best']}, {d['max_answer_length']}  # candidates, span tokens",
        f"THRESHOLD = {NULL_SCORE_THRESHOLD}  # no answer when null score - best span > this",
        "tokenizer = AutoTokenizer.from_pretrained(MODEL)",
        *load,
        "specials = tokenizer.num_special_tokens_to_add(pair=True)",
        f"MAX_QUERY = min({d['max_query_length']}, MAX_LENGTH - specials - STRIDE - 1)",
        "",
        "",
        "def answer(question, context):",
        '    """The answer ("" for no answer) and null score - best span score."""',
        "    question = question.lstrip()",
        "    q = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)",
        "    if len(q['input_ids']) > MAX_QUERY:  # questions are cut after MAX_QUERY tokens",
        "        question = question[: q['offset_mapping'][MAX_QUERY - 1][1]]",
        "    enc = tokenizer(question, context, truncation='only_second', max_length=MAX_LENGTH,",
        "                    stride=STRIDE, return_overflowing_tokens=True, padding=True,",
        f"                    return_offsets_mapping=True, return_tensors={tensors})",
        *run,
        "    null, best, span = np.inf, -np.inf, (0, 0)",
        "    for w in range(len(enc['input_ids'])):",
        "        n = int(enc['attention_mask'][w].sum())  # the window's tokens, no padding",
        "        start = start_logits[w, :n].astype(np.float64)",
        "        end = end_logits[w, :n].astype(np.float64)",
        "        offsets = enc['offset_mapping'][w].tolist()",
        "        in_context = [s == 1 for s in enc.sequence_ids(w)]",
        "        null = min(null, start[0] + end[0])",
        "        for i in np.argsort(start)[::-1][:N_BEST]:",
        "            for j in np.argsort(end)[::-1][:N_BEST]:",
        "                if (in_context[i] and in_context[j] and i <= j < i + MAX_ANSWER",
        "                        and offsets[j][1] > offsets[i][0] and start[i] + end[j] > best):",
        "                    best, span = start[i] + end[j], (offsets[i][0], offsets[j][1])",
        "    diff = null - best",
        "    return ('' if diff > THRESHOLD else context[span[0] : span[1]]), diff",
        "",
        "",
        f"QUESTION = {question!r}",
        f"CONTEXT = {context!r}",
        "text, diff = answer(QUESTION, CONTEXT)",
        "print(f'answer: {text!r}' if text else 'answer: no answer',",
        "      f'(null - best span score {diff:.3f}, threshold {THRESHOLD})')",
    ]


def _classifier_snippet(facts: CardFacts, onnx: str | None = None) -> list[str]:
    """Truncate as nas did, take the top logit's label; ``onnx``: with onnxruntime."""
    if onnx is None:
        imports = ["import torch", f"from transformers import {CLASSIFIER_CLASS}, AutoTokenizer"]
        load = [f"model = {CLASSIFIER_CLASS}.from_pretrained(MODEL).eval()"]
        tensors = "'pt'"
        run = [
            "    with torch.no_grad():",
            "        logits = model(input_ids=enc['input_ids'],",
            "                       attention_mask=enc['attention_mask'])",
            "    return model.config.id2label[int(logits.logits[0].argmax())]",
        ]
    else:
        imports = ["import numpy as np", "import onnxruntime",
                   "from transformers import AutoConfig, AutoTokenizer"]  # fmt: skip
        load = [
            f"session = onnxruntime.InferenceSession(f'{{MODEL}}/{onnx}')",
            "id2label = AutoConfig.from_pretrained(MODEL).id2label",
        ]
        tensors = "'np'"
        run = [
            "    inputs = {k: enc[k].astype(np.int64) for k in ('input_ids', 'attention_mask')}",
            "    [logits] = session.run(['logits'], inputs)",
            "    return id2label[int(logits[0].argmax())]",
        ]
    return [
        *imports,
        "",
        _model_line(facts),
        f"MAX_LENGTH = {facts.data['max_seq_length']}  # nas truncated inputs to this",
        "tokenizer = AutoTokenizer.from_pretrained(MODEL)",
        *load,
        "",
        "",
        "def classify(text, text_pair=None):",
        '    """The label name of the top logit."""',
        "    enc = tokenizer(text, text_pair, truncation=True, max_length=MAX_LENGTH,",
        f"                    return_tensors={tensors})",
        *run,
        "",
        "",
        f"TEXT = {TEXT_EXAMPLE!r}",
        "print('label:', classify(TEXT))",
    ]


def _family_snippet(facts: CardFacts, onnx: str | None = None) -> list[str]:
    """A family student's decision: with nas and torch, or ``onnx`` with onnxruntime and the
    ``tokenizers`` package alone (the folder's ``tokenizer.json``)."""
    if onnx is None:
        imports = ["import json", "from pathlib import Path", "", "import torch",
                   "from transformers import AutoTokenizer", "", "from nas.students import "
                   "load_family"]  # fmt: skip
        load = [
            "tokenizer = AutoTokenizer.from_pretrained(MODEL)",
            f"model = load_family(Path(MODEL))  # {FAMILY_FILE} + model.safetensors",
        ]
        run = [
            "    enc = tokenizer(text, text_pair, truncation=True, max_length=MAX_LENGTH,",
            "                    return_tensors='pt')",
            "    with torch.no_grad():",
            "        logits = model(enc['input_ids'], enc['attention_mask'])",
            "    return labels[int(logits[0].argmax())]",
        ]
    else:
        imports = ["import json", "from pathlib import Path", "", "import numpy as np",
                   "import onnxruntime", "from tokenizers import Tokenizer"]  # fmt: skip
        load = [
            "tokenizer = Tokenizer.from_file(f'{MODEL}/tokenizer.json')",
            "tokenizer.enable_truncation(MAX_LENGTH)",
            f"session = onnxruntime.InferenceSession(f'{{MODEL}}/{onnx}')",
        ]
        run = [
            "    enc = tokenizer.encode(text, text_pair)",
            "    inputs = {'input_ids': np.array([enc.ids], dtype=np.int64),",
            "              'attention_mask': np.array([enc.attention_mask], dtype=np.int64)}",
            "    [logits] = session.run(['logits'], inputs)",
            "    return labels[int(logits[0].argmax())]",
        ]
    return [
        *imports,
        "",
        _model_line(facts),
        f"MAX_LENGTH = {facts.data['max_seq_length']}  # nas truncated inputs to this",
        *load,
        f"labels = json.loads(Path(MODEL, '{FAMILY_FILE}').read_text())['labels']",
        "",
        "",
        "def classify(text, text_pair=None):",
        '    """The label name of the top logit."""',
        *run,
        "",
        "",
        f"TEXT = {TEXT_EXAMPLE!r}",
        "print('label:', classify(TEXT))",
    ]


def _provenance_lines(record: Mapping[str, Any], facts: CardFacts) -> list[str]:
    labels = f"- labels (logit order): {', '.join(facts.label_names)}" if facts.label_names else ""
    changes = [f"- changed on export: {c}" for c in record.get("export_changes") or []]
    return [
        "## Provenance",
        "",
        f"- study: `{record.get('study')}` in `{record.get('storage')}`, "
        f"trial {record.get('trial')}",
        f"- constraints (<= 0 feasible): {record.get('constraints') or 'none'}",
        *([labels] if labels else []),
        f"- trained with nas {record.get('nas_version', '?')}, python "
        f"{record.get('python', '?')}, torch {record.get('torch', '?')}",
        f"- exported by {record.get('exported_by')} at {record.get('exported_at')}",
        *changes,
        f"- full record: `{PROVENANCE}`",
        "",
    ]
