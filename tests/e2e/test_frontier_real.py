"""The front, report and export of a finished study on real data (SST-2 sentences)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.cli_run import run_nas
from support.real_study import NAME, RealStudy

from nas.params import shape_label
from nas.study import test_scores as scores_on_test  # not collected as a test


def test_front_table_equals_best_trials(real_study: RealStudy) -> None:
    study = real_study.study()
    best = sorted(study.best_trials, key=lambda t: t.values[1])
    assert best, "the real study should have a feasible front"
    result = run_nas("study", "front", NAME, "--storage", real_study.url, "--json")
    assert result.returncode == 0, result.stderr
    front = json.loads(result.stdout)
    assert front["metric"] == "accuracy"
    assert [(p["trial"], p["metric"], p["params"]) for p in front["front"]] == [
        (t.number, t.values[0], t.values[1]) for t in best
    ]
    baseline = next(t for t in study.trials if t.user_attrs.get("baseline"))
    assert front["baseline"]["trial"] == baseline.number
    for p in front["front"]:
        assert p["delta_metric"] == pytest.approx(p["metric"] - baseline.values[0])
        assert p["delta_params_pct"] == pytest.approx(
            100 * (p["params"] - baseline.values[1]) / baseline.values[1]
        )
    text = run_nas("study", "front", NAME, "--storage", real_study.url).stdout
    for t in best:  # the student, accuracy to 4 decimals (selection, then test), params in
        # millions, then the batch-1 latency every trial measures
        test = scores_on_test(real_study.study())[t.number]["accuracy"]
        label = re.escape(shape_label(t.params))
        row = (
            rf"\b{t.number}( b)?\s+{label}\s+{t.values[0]:.4f}\s+{test:.4f}\s+"
            rf"{t.values[1] / 1e6:.3f}M\s+{t.user_attrs['latency_ms']:.2f} ms"
        )
        assert re.search(row, text), (row, text)
    assert re.search(r"^teacher\s+0\.\d{4}\s+0\.\d{4}$", text, re.MULTILINE), text
    assert "keep the baseline's size, maximize accuracy: trial" in text


def test_report_of_the_real_study_holds_its_front(real_study: RealStudy, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = run_nas("study", "report", NAME, "--storage", real_study.url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    best = sorted(real_study.study().best_trials, key=lambda t: t.values[1])
    match = re.search(r'"name":"Pareto front \(feasible\): \d+"', page.replace(", ", ","))
    assert match, "the front trace is in the report"
    table = page[page.index("<pre id='front-table'>") : page.index("</pre>")]
    for t in best:
        assert f"{t.values[0]:.4f}" in table and f"{t.values[1] / 1e6:.3f}M" in table
    assert "accuracy = 0.55 from threshold" in page
    # the teacher's word-order sensitivity, measured once when the study started
    from nas.study import wos_record

    wos = wos_record(real_study.study())
    assert 0 < wos["correct"] <= wos["examples"] and wos["wos"] == (100 - wos["p"]) / 50
    assert f"teacher word-order sensitivity: WOS {wos['wos']:.2f}" in real_study.run_stderr
    assert f"WOS {wos['wos']:.2f}: accuracy {wos['p']:.1f} %" in page


def test_exported_student_reproduces_the_recorded_accuracy(
    real_study: RealStudy, tmp_path: Path
) -> None:
    """Reload each exported front student with plain transformers and its own tokenizer, and
    evaluate it with nas's evaluation: the study's accuracy comes back exactly."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nas.config import load_study
    from nas.trial.loop import predict, resolve_device
    from nas.trial.run import prepare

    out = tmp_path / "frontier"
    result = run_nas("export", NAME, "--out", str(out), "--storage", real_study.url)
    assert result.returncode == 0, result.stderr
    prepared = prepare(load_study(real_study.study_file))
    device = resolve_device(prepared.config.training.device)
    front = real_study.study().best_trials
    accuracies = set()
    for trial in front:
        folder = out / f"trial-{trial.number}"
        model = AutoModelForSequenceClassification.from_pretrained(str(folder))
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        features = prepared.task.encode(prepared.splits.eval, tokenizer, prepared.data)
        logits = predict(model, features, "classification", tokenizer.pad_token_id, 64, device)
        scores = prepared.task.evaluate(prepared.splits.eval, features, logits, prepared.data)
        assert scores["accuracy"] == pytest.approx(trial.user_attrs["metric:accuracy"], abs=1e-9)
        assert scores["mcc"] == pytest.approx(trial.user_attrs["metric:mcc"], abs=1e-9)
        accuracies.add(round(scores["accuracy"], 6))
    # different students score differently, so a mixed-up export would not pass by chance
    assert len(front) == 1 or len(accuracies) > 1
