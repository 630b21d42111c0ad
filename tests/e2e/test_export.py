"""``nas export`` end to end: one real study run, then its trials exported and checked."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from support.cli_run import REPO, assert_usage_error, run_nas
from support.stored_study import (
    MODEL_BYTES,
    SST2_SOURCE,
    stored_classifier,
    stored_model,
    stored_study,
)

from nas.results.card_facts import hub_dataset, source_license
from nas.results.export import (
    ExportError,
    export_trials,
    redact_paths,
    resolve_artifact_root,
    select_trials,
)
from nas.results.model_card import QA_EXAMPLE, TEXT_EXAMPLE
from nas.study.artifacts import ChecksumError, is_verifiable
from nas.study.record import is_feasible, named_constraints
from nas.study.record import test_scores as scores_on_test  # not collected as a test


@dataclass(frozen=True)
class Searched:
    """A finished tiny study: its config file, storage URL and artifact root."""

    study_file: Path
    url: str
    artifacts: Path

    def study(self) -> optuna.Study:
        return optuna.load_study(study_name="tiny", storage=self.url)


_SEARCHED: list[Searched] = []  # the study runs once per test session (about 15 s)


@pytest.fixture
def searched(tiny_study) -> Searched:  # type: ignore[no-untyped-def]
    """The tiny study of ``tiny_study(n_trials=3)``, run once; later tests reuse it read-only
    (its tmp folder stays until the session ends) and export into their own tmp_path."""
    if not _SEARCHED:
        study_file = tiny_study(n_trials=3)
        url = f"sqlite:///{study_file.parent / 'nas.db'}"
        result = run_nas("study", "run", str(study_file), "--storage", url)
        assert result.returncode == 0, result.stderr[-3000:]
        _SEARCHED.append(Searched(study_file, url, study_file.parent / "artifacts"))
    return _SEARCHED[0]


def export(searched: Searched, out: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_nas("export", "tiny", "--out", str(out), "--storage", searched.url, *args)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary folders an export may have left beside its output."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_front_export_writes_folders_and_index(searched: Searched, tmp_path: Path) -> None:
    out = tmp_path / "frontier"
    result = export(searched, out)  # --front is the default
    assert result.returncode == 0, result.stderr
    assert "infeasible" not in result.stderr  # the front is feasible: no warning
    study = searched.study()
    front = study.best_trials
    assert front, "the tiny study should have a feasible front"
    index = json.loads((out / "index.json").read_text())
    rows, csv_rows = index["trials"], read_csv(out / "index.csv")
    assert len(rows) == len(csv_rows) == len(front)
    assert index["objectives"] == {"exact": "maximize", "params": "minimize"}
    by_number = {t.number: t for t in front}
    for row, csv_row in zip(rows, csv_rows, strict=True):
        trial = by_number[row["trial"]]
        assert [row[n] for n in study.metric_names] == trial.values
        assert [float(csv_row[n]) for n in study.metric_names] == trial.values
        assert row["n_params"] == trial.user_attrs["params"] == int(csv_row["n_params"])
        assert row["baseline"] is bool(trial.user_attrs.get("baseline"))
        assert row["feasible"] is True and csv_row["feasible"] == "True"
        assert {k: row[k] for k in trial.params} == trial.params and len(trial.params) == 11
        assert is_verifiable(trial)  # the run recorded every file's sha256
        folder = out / row["folder"]
        assert folder.name == f"trial-{trial.number}"
        files = set(trial.user_attrs["checkpoint_files"]) | {"README.md"}
        assert {p.name for p in folder.iterdir()} == files
        record = json.loads((folder / "nas.json").read_text())
        assert record["study"] == "tiny" and record["trial"] == trial.number
        assert record["values"] == dict(zip(study.metric_names, trial.values, strict=True))
        assert record["constraints"] == named_constraints(trial) and record["feasible"] is True
        assert record["storage"] == "sqlite:///<local>/nas.db" and record["exported_at"]
        card = (folder / "README.md").read_text()
        assert "AutoModelForQuestionAnswering.from_pretrained(MODEL)" in card
        assert f"trial {trial.number}" in card and "learning_rate" in card
        # the study finished, so its front was scored on the test split: the card says so
        test = scores_on_test(study)[trial.number]
        assert record["test_metrics"] == test and record["teacher_metrics"]["test"]
        assert "Task metrics (test split: data no trial saw)" in card
        assert f"| exact | {test['exact']:.6g} |" in card and "Teacher (selection / test)" in card
    assert leftovers(tmp_path) == []


def test_exported_student_loads_and_reproduces_its_metric(
    searched: Searched, tmp_path: Path
) -> None:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from nas.config import load_study
    from nas.students.build import count_parameters
    from nas.trial.loop import predict, resolve_device
    from nas.trial.run import prepare

    out = tmp_path / "frontier"
    assert export(searched, out).returncode == 0
    prepared = prepare(load_study(searched.study_file))
    device = resolve_device(prepared.config.training.device)
    for trial in searched.study().best_trials:
        folder = out / f"trial-{trial.number}"
        model = AutoModelForQuestionAnswering.from_pretrained(str(folder))
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        assert count_parameters(model) == trial.user_attrs["params"]
        logits = predict(
            model,
            prepared.eval_features,
            "qa",
            tokenizer.pad_token_id,
            prepared.config.training.eval_batch_size,
            device,
        )
        scores = prepared.task.evaluate(
            prepared.splits.eval, prepared.eval_features, logits, prepared.data
        )
        assert scores["exact"] == pytest.approx(trial.user_attrs["metric:exact"], abs=1e-6)
        assert scores["f1"] == pytest.approx(trial.user_attrs["metric:f1"], abs=1e-6)


def test_trials_selects_the_given_trials(searched: Searched, tmp_path: Path) -> None:
    out = tmp_path / "chosen"
    result = export(searched, out, "--trials", "2,1")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["trial-1", "trial-2"]
    rows = json.loads((out / "index.json").read_text())["trials"]
    assert [row["trial"] for row in rows] == [2, 1]
    study = searched.study()
    for row in rows:
        assert row["exact"] == study.trials[row["trial"]].values[0]


@pytest.mark.parametrize(
    ("value", "fragment"), [("1,99", "no trial 99"), ("1;2", "'1;2' is not a comma")]
)
def test_bad_trial_numbers_are_usage_errors(
    searched: Searched, tmp_path: Path, value: str, fragment: str
) -> None:
    result = export(searched, tmp_path / "out", "--trials", value)
    assert_usage_error(result, fragment)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_existing_out_is_kept_unless_force(searched: Searched, tmp_path: Path) -> None:
    out = tmp_path / "frontier"
    assert export(searched, out).returncode == 0
    (out / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert_usage_error(export(searched, out), str(out), "exists", "--force")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # a file of the user's in the export: --force refuses, naming it, and keeps everything
    refused = export(searched, out, "--force", "--trials", "1")
    assert_usage_error(refused, "not a previous nas export", "notes.txt")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (out / "notes.txt").unlink()
    forced = export(searched, out, "--force", "--trials", "1")
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in out.iterdir()) == ["index.csv", "index.json", "trial-1"]
    assert leftovers(tmp_path) == []


def _forced(searched: Searched, out: Path, root: Path | None = None) -> None:
    study = searched.study()
    export_trials(study, select_trials(study, [0]), out, root, searched.url, force=True)


def test_force_replaces_only_a_previous_export(
    searched: Searched, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--force never deletes a folder nas did not write, the current folder or one above
    it, nor the folders holding the study's storage or checkpoints."""
    from nas.results.export import ExportError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    with pytest.raises(ExportError, match=r"not a previous nas export \(it holds keep.txt\)"):
        _forced(searched, mine)
    assert (mine / "keep.txt").read_text() == "precious"
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ExportError, match="is not a folder"):
        _forced(searched, tmp_path / "a-file")
    work = tmp_path / "work" / "sub"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for out in (Path("."), work.parent, Path("..")):
        with pytest.raises(ExportError, match="current folder or one above it"):
            _forced(searched, out)
    assert work.is_dir()
    db_folder = Path(searched.url.removeprefix("sqlite:///")).parent
    for out in (db_folder, searched.artifacts):  # the storage's folder, the checkpoints
        with pytest.raises(ExportError, match="which the study needs"):
            _forced(searched, out, searched.artifacts)
    assert searched.study().trials  # the study and its files are still there


def test_missing_artifact_names_the_trial_and_writes_nothing(
    searched: Searched, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts-copy"
    shutil.copytree(searched.artifacts, artifacts, ignore=shutil.ignore_patterns("staging"))
    trial = searched.study().trials[2]
    (artifacts / trial.user_attrs["checkpoint_files"]["model.safetensors"]).unlink()
    out = tmp_path / "out"
    result = export(searched, out, "--trials", "1,2", "--artifact-root", str(artifacts))
    assert_usage_error(result, "trial 2", "model.safetensors", str(artifacts))
    assert not out.exists() and leftovers(tmp_path) == []
    # a forced export that fails leaves the previous export as it was
    assert export(searched, out, "--trials", "1").returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    forced = export(searched, out, "--force", "--trials", "2", "--artifact-root", str(artifacts))
    assert_usage_error(forced, "trial 2")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert leftovers(tmp_path) == []


def test_storage_password_is_masked(searched: Searched, tmp_path: Path) -> None:
    study = searched.study()
    url = "postgresql://nas:s3cret@db.example:5432/nas"
    export_trials(study, select_trials(study, [0]), tmp_path / "out", searched.artifacts, url)
    written = [p.read_text() for p in (tmp_path / "out").rglob("*.json")]
    written += [(tmp_path / "out" / "trial-0" / "README.md").read_text()]
    assert all("s3cret" not in text for text in written)
    record = json.loads((tmp_path / "out" / "trial-0" / "nas.json").read_text())
    assert record["storage"] == "postgresql://nas:***@db.example:5432/nas"


def in_memory_study() -> optuna.Study:
    study = optuna.create_study(study_name="mem", directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[50.0, 1000.0]))  # no checkpoint_files
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    return study


def test_selecting_a_failed_trial_is_an_error() -> None:
    with pytest.raises(ExportError, match=r"trial 1 of study 'mem' is FAIL, not COMPLETE"):
        select_trials(in_memory_study(), [0, 1])


def test_a_trial_without_checkpoint_is_an_error(tmp_path: Path) -> None:
    study = in_memory_study()
    with pytest.raises(ExportError, match=r"trial 0 of study 'mem' has no checkpoint.*/nowhere"):
        export_trials(study, study.trials[:1], tmp_path / "out", Path("/nowhere"), "sqlite://")
    assert list(tmp_path.iterdir()) == []


def test_artifact_root_comes_from_flag_then_trial_then_config_then_default() -> None:
    study = in_memory_study()
    plain = study.trials[0]
    assert resolve_artifact_root(None, study, plain).url == str(Path(".nas/artifacts").resolve())
    study.set_user_attr("config", {"artifact_root": "/data/artifacts"})
    assert resolve_artifact_root(None, study, plain).url == "/data/artifacts"
    recorded = optuna.trial.create_trial(
        values=[1.0, 2.0], user_attrs={"artifact_root": "s3://bucket/ckpt/"}
    )
    root = resolve_artifact_root(None, study, recorded)
    assert (root.url, root.bucket, root.prefix) == ("s3://bucket/ckpt", "bucket", "ckpt/")
    flag = resolve_artifact_root("elsewhere", study, recorded)
    assert flag.url == str(Path("elsewhere").resolve()) and flag.bucket is None


# ----------------------------------------------------------------------------- verification


def test_a_changed_checkpoint_names_the_trial_and_file_and_writes_nothing(tmp_path: Path) -> None:
    study, url, root = stored_study(tmp_path)
    model = stored_model(study, root, 1)
    model.write_bytes(MODEL_BYTES[:1000])  # truncated
    with pytest.raises(ChecksumError, match=r"trial 1 of study 'stored': checkpoint file "):
        export_trials(study, study.trials, tmp_path / "out", None, url)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    flipped = bytearray(MODEL_BYTES)
    flipped[511] ^= 0x01
    model.write_bytes(bytes(flipped))  # one bit flipped, same size
    result = run_nas("export", "stored", "--out", str(tmp_path / "out"), "--storage", url,
                     "--trials", "0,1")  # fmt: skip
    assert_usage_error(result, "trial 1", "model.safetensors", "sha256", "not the file")
    assert "cannot be verified" not in result.stderr
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    rows = export_trials(study, study.trials[:1], tmp_path / "out", None, url)  # intact
    assert (tmp_path / "out" / "trial-0" / "model.safetensors").read_bytes() == MODEL_BYTES
    assert [row["trial"] for row in rows] == [0]


def test_an_older_study_exports_with_one_warning_and_its_total_size_checked(
    tmp_path: Path,
) -> None:
    study, url, root = stored_study(tmp_path, older=True)
    assert not is_verifiable(study.trials[0])
    out = tmp_path / "out"
    result = run_nas("export", "stored", "--out", str(out), "--storage", url, "--trials", "0")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "cannot be verified" in line]
    assert len(warnings) == 1 and "trial(s) 0 " in warnings[0], result.stderr
    assert (out / "trial-0" / "model.safetensors").read_bytes() == MODEL_BYTES
    stored_model(study, root, 0).write_bytes(MODEL_BYTES[:1000])
    with pytest.raises(ChecksumError, match=r"trial 0 .*total \d+ bytes, \d+ recorded"):
        export_trials(study, study.trials[:1], tmp_path / "again", None, url)
    assert not (tmp_path / "again").exists() and leftovers(tmp_path) == []


def test_a_config_json_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    study, url, _ = stored_study(tmp_path, older=True)  # trial 1 stored "not json {"
    with pytest.raises(ExportError, match=r"^trial 1: its config.json is not valid JSON") as err:
        export_trials(study, study.trials[1:], tmp_path / "out", None, url)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- model cards


def card_of(folder: Path):  # type: ignore[no-untyped-def]
    """The folder's README.md parsed by huggingface_hub (which checks the model-index)."""
    from huggingface_hub import ModelCard

    return ModelCard((folder / "README.md").read_text())


def snippet(folder: Path, which: int = 0) -> str:
    """A python code block of the folder's model card: 0 the transformers one, 1 the
    onnxruntime one (there only when the folder has model.onnx)."""
    text = (folder / "README.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```$", text, re.S | re.M)
    assert len(blocks) == 1 + (folder / "model.onnx").is_file(), text
    return blocks[which]


def local_texts(out: Path) -> list[str]:
    return [p.read_text() for p in out.rglob("*") if p.suffix in (".md", ".json")]


def test_qa_cards_carry_hub_metadata_test_metrics_and_no_local_paths(
    searched: Searched, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    study = searched.study()
    complete = [t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    out = tmp_path / "cards"
    export_trials(study, select_trials(study, complete), out, None, searched.url)
    base = str(tmp_path_factory.getbasetemp())  # the study file, storage, cache, artifacts
    assert all(base not in text and str(REPO) not in text for text in local_texts(out))
    index = json.loads((out / "index.json").read_text())
    assert index["storage"] == "sqlite:///<local>/nas.db"
    assert index["artifact_roots"] == ["<local>/artifacts"]
    for number in complete:
        folder, trial = out / f"trial-{number}", study.trials[number]
        card, text = card_of(folder), (folder / "README.md").read_text()
        meta = card.data.to_dict()
        assert meta["pipeline_tag"] == "question-answering"
        assert meta["tags"] == ["distillation", "nas", "synthetic_qa"]
        # a local source (the tiny teacher) and generated data: no hub ids, no license claimed
        assert not {"base_model", "datasets", "license"} & set(meta)
        assert "unknown: the student source declares none" in text
        tokenizer = json.loads((folder / "tokenizer_config.json").read_text())
        assert tokenizer["model_max_length"] == 64  # data.max_seq_length, not 1e30
        assert "model_max_length 1e+30 -> 64" in text
        assert f'MODEL = "trial-{number}"' in snippet(folder)  # relative to the export
        record = json.loads((folder / "nas.json").read_text())
        assert record["teacher"] == record["student_source"] == "<local>/tiny"
        assert record["study_file"] == "<local>/tiny.yaml"
        test = scores_on_test(study).get(number)
        if test is None:  # not on the front: never scored on the test split
            assert card.data.eval_results is None and "(not scored yet)" in text
        else:
            results = card.data.eval_results
            assert {(r.metric_type, r.metric_value) for r in results} == {
                ("exact_match", test["exact"]),
                ("f1", test["f1"]),
            }
            assert {(r.task_type, r.dataset_type) for r in results} == {
                ("question-answering", "synthetic_qa")
            }
        assert ("**Infeasible:**" in text) is (not is_feasible(trial))


def test_an_infeasible_classifier_exports_with_one_warning_and_hub_ids(
    tmp_path: Path, tiny_tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nas.cli import main

    study, url = stored_classifier(tmp_path, tiny_tokenizer_dir)
    out = tmp_path / "out"
    assert main(["export", "clf", "--out", str(out), "--storage", url, "--trials", "0"]) == 0
    stderr = capsys.readouterr().err
    warnings = [line for line in stderr.splitlines() if "infeasible" in line]
    assert len(warnings) == 1 and "trial 0: accuracy>=0.9 by 0.4" in warnings[0], stderr
    folder = out / "trial-0"
    card, text = card_of(folder), (folder / "README.md").read_text()
    assert "**Infeasible:**" in text and "accuracy>=0.9 missed by 0.4" in text
    meta = card.data.to_dict()
    assert meta["pipeline_tag"] == "text-classification"
    assert meta["base_model"] == SST2_SOURCE and meta["datasets"] == ["nyu-mll/glue"]
    [result_] = {
        (r.dataset_type, r.dataset_config, r.dataset_split) for r in card.data.eval_results
    }
    assert result_ == ("nyu-mll/glue", "sst2", "validation")
    assert {(r.metric_type, r.metric_value) for r in card.data.eval_results} == {
        ("accuracy", 0.5),
        ("f1", 0.4),
        ("matthews_correlation", 0.1),
    }
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == 24
    record = json.loads((folder / "nas.json").read_text())
    assert record["study_file"] == "<local>/clf.yaml" and "<local>/train.csv" in record["data"]
    assert all(str(tmp_path) not in t for t in local_texts(out))


_DRIVER = """
import json, math, os, sys
results = []
for run in json.loads(open(sys.argv[1]).read()):
    os.chdir(run["cwd"])
    ns = {"__name__": "__main__"}
    exec(run["code"], ns)  # the card's snippet, as written: it prints its own example
    calls = [ns[run["function"]](*args) for args in run["inputs"]]
    if run["forced"]:  # never 'no answer': the best span itself
        ns["THRESHOLD"] = math.inf
        calls += [ns[run["function"]](*args) for args in run["forced"]]
    results.append(calls)
print("RESULTS", json.dumps(results))
"""


def test_card_snippets_decide_as_nas_does(
    searched: Searched, tmp_path: Path, tiny_tokenizer_dir: Path
) -> None:
    """The snippets of a QA card and of a classification card (transformers, and onnxruntime on
    the exported model.onnx), run as written in a subprocess, give nas's own answers,
    no-answer probabilities and labels for the same inputs."""
    from nas.students import export_onnx

    def onnx(folder: Path) -> dict:
        return export_onnx(folder).record()

    qa_out, clf_out = tmp_path / "qa", tmp_path / "clf-out"
    study = searched.study()
    export_trials(study, select_trials(study, [0]), qa_out, None, searched.url, convert=onnx)
    (tmp_path / "clf").mkdir()
    clf_study, clf_url = stored_classifier(tmp_path / "clf", tiny_tokenizer_dir)
    export_trials(clf_study, clf_study.trials, clf_out, None, clf_url, convert=onnx)
    for out in (qa_out, clf_out):  # model.onnx listed with its digest in nas.json and index
        digest = hashlib.sha256((out / "trial-0" / "model.onnx").read_bytes()).hexdigest()
        record = json.loads((out / "trial-0" / "nas.json").read_text())
        index = json.loads((out / "index.json").read_text())
        assert record["files"]["model.onnx"]["sha256"] == digest
        assert index["files"]["trial-0"] == record["files"]
        assert set(record["files"]) == {p.name for p in (out / "trial-0").iterdir()} - {
            "nas.json",
            "README.md",
        }
        assert record["onnx"]["opset"] == 20 and record["onnx"]["max_abs_diff_vs_torch"] <= 1e-4
        code = snippet(out / "trial-0", 1)
        assert "onnxruntime.InferenceSession" in code
        assert "import torch" not in code and "nas" not in re.findall(r"import (\w+)", code)
    qa_examples, nas_qa, forced_qa = _nas_qa(searched, qa_out / "trial-0")
    texts = [TEXT_EXAMPLE, "good film", "a bad movie", "i feel joy", "what is it"]
    nas_labels = _nas_labels(clf_out / "trial-0", texts)
    runs = [
        {"cwd": str(qa_out), "code": snippet(qa_out / "trial-0"), "function": "answer",
         "inputs": [(e.question, e.context) for e in qa_examples],
         "forced": [(e.question, e.context) for e in qa_examples]},
        {"cwd": str(clf_out), "code": snippet(clf_out / "trial-0"), "function": "classify",
         "inputs": [(t,) for t in texts], "forced": []},
    ]  # fmt: skip
    runs += [{**run, "code": snippet(Path(run["cwd"]) / "trial-0", 1)} for run in runs]
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    (tmp_path / "driver.py").write_text(_DRIVER)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "runs.json")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    results = json.loads(lines[-1].removeprefix("RESULTS "))
    n = len(qa_examples)
    for qa, labels in (results[:2], results[2:]):  # transformers, then onnxruntime
        for example, (text, diff), (forced, _) in zip(qa_examples, qa[:n], qa[n:], strict=True):
            answer, na_prob = nas_qa[example.id]
            assert text == answer, example
            assert 1 / (1 + math.exp(-diff)) == pytest.approx(na_prob, abs=1e-5)
            assert forced == forced_qa[example.id], example
        assert labels == nas_labels
    assert any(forced_qa.values()), "the forced decode should give spans to compare"
    # the snippets' own examples: the first is the card's QA example, as nas answers it
    card_answer = nas_qa["card"][0]
    for qa_line, label_line in (lines[0:2], lines[2:4]):
        shown = f"answer: {card_answer!r}" if card_answer else "answer: no answer"
        assert qa_line.startswith(shown) and label_line == f"label: {nas_labels[0]}"


def _nas_qa(searched: Searched, folder: Path):  # type: ignore[no-untyped-def]
    """The card's example and 30 selection questions; nas's answer and no-answer probability
    for each, and its best span when "no answer" is ruled out ([CLS] logits at -1e9)."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from nas.config import load_study
    from nas.tasks import get_task
    from nas.tasks.base import QAExample
    from nas.tasks.squad_v2 import predict as decode
    from nas.trial.loop import predict

    data = load_study(searched.study_file).data
    task = get_task("synthetic_qa")
    question, context = QA_EXAMPLE
    card = QAExample(id="card", title="card", context=context, question=question)
    examples = [card, *task.load(data).eval[:30]]
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForQuestionAnswering.from_pretrained(str(folder))
    features = task.encode(examples, tokenizer, data)
    logits = predict(model, features, "qa", tokenizer.pad_token_id, 16, torch.device("cpu"))
    answers, na_probs = decode(examples, features, logits, data)
    logits[features.starts[:-1]] = -1e9  # every window's [CLS]: the null score
    forced, _ = decode(examples, features, logits, data)
    return examples, {k: (answers[k], na_probs[k]) for k in answers}, forced


def _nas_labels(folder: Path, texts: list[str]) -> list[str]:
    """nas's predicted label names (its tokenization, inference and argmax) for ``texts``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nas.tasks.base import TextExample
    from nas.tasks.classification import encode_texts
    from nas.trial.loop import predict

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder))
    features = encode_texts([TextExample(t, 0) for t in texts], tokenizer, 24)
    logits = predict(model, features, "classification", 0, 8, torch.device("cpu"))
    return [model.config.id2label[int(i)] for i in logits.argmax(axis=1)]


def test_local_paths_are_redacted_and_urls_kept() -> None:
    record = {
        "storage": "sqlite:////srv/runs/nas.db",
        "journal": "journal:/srv/runs/nas.log",
        "teacher": "/srv/models/bert-squad",
        "data": "squad_v2: 10 train from /srv/data/train.json, 5 from ../data/dev.json",
        "kept": ["postgresql://nas:***@db:5432/nas", "s3://bucket/ckpt", "org/model",
                 "sqlite:///nas.db", "{cache_dir}/teachers/x", "exact>=50"],
    }  # fmt: skip
    assert redact_paths(record) == {
        "storage": "sqlite:///<local>/nas.db",
        "journal": "journal:<local>/nas.log",
        "teacher": "<local>/bert-squad",
        "data": "squad_v2: 10 train from <local>/train.json, 5 from ../data/dev.json",
        "kept": record["kept"],
    }


def test_license_comes_from_the_source_front_matter_or_config(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    assert source_license(str(source)) is None
    (source / "config.json").write_text('{"license": "mit"}')
    assert source_license(str(source)) == "mit"
    (source / "README.md").write_text("---\nlanguage: en\nlicense: apache-2.0\n---\n# x\n")
    assert source_license(str(source)) == "apache-2.0"
    assert source_license("no-such-org/no-such-model") is None  # not in the local cache


@pytest.mark.parametrize(
    ("task", "data", "expected"),
    [
        ("squad_v2", {"hub_name": "squad_v2"}, ("rajpurkar/squad_v2", None, "validation")),
        ("sst2", {}, ("nyu-mll/glue", "sst2", "validation")),
        ("cola", {}, ("nyu-mll/glue", "cola", "validation")),
        ("emotion", {}, ("dair-ai/emotion", None, "validation")),
        ("imdb", {}, ("stanfordnlp/imdb", None, "test")),
        ("sst2", {"train_file": "train.csv"}, None),  # local files: no hub dataset
        ("synthetic_qa", {}, None),
    ],
)
def test_hub_datasets_of_the_shipped_tasks(task: str, data: dict, expected: object) -> None:
    assert hub_dataset(task, data) == expected
