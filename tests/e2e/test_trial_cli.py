"""End to end: the real ``nas`` CLI runs trials on real data with tiny teachers trained offline."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cli_run import REPO, assert_usage_error
from support.cli_run import run_nas as nas

SPACE = REPO / "search_spaces" / "quickstart.yaml"
TINY_BERT = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
}
STUDENT = {
    "n_layers": 1,
    "n_heads": 2,
    "hidden_size": 32,
    "ffn_dim": 64,
    "temperature": 2.0,
    "alpha": 0.5,
    "learning_rate": 2e-3,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "batch_size": 32,
    "epochs": 1,
}


def write_study(folder: Path, task: str, data: dict[str, Any], **extra: Any) -> Path:
    study = {
        "name": f"test-{task}",
        "task": task,
        "data": data,
        "teacher": {
            "path": str(folder / "teacher"),
            "train": {
                "arch": TINY_BERT,
                "epochs": 2,
                "learning_rate": 1e-3,
                "batch_size": 32,
                "vocab_from_data": 3000,
            },
        },
        "student_source": str(folder / "teacher"),
        "search_space": str(SPACE),
        "cache_dir": str(folder / "cache"),
        "baseline": STUDENT,
        "training": {"eval_batch_size": 64, "log_every": 10},
        **extra,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture(scope="module")
def squad_study(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """SQuAD 2.0 dev split by article (12 train / 4 eval), a 2-layer teacher trained here."""
    folder = tmp_path_factory.mktemp("squad")
    data = {
        "train_file": str(shared_data / "squad_v2" / "dev-v2.0.json"),
        "test_articles": 2,
        "eval_articles": 2,
        "max_train_samples": 300,
        "max_eval_samples": 200,
        "max_test_samples": 100,
        "max_seq_length": 128,
        "doc_stride": 48,
        "max_query_length": 32,
    }
    return write_study(folder, "squad_v2", data)


def test_squad_trial_end_to_end(squad_study: Path, tmp_path: Path) -> None:
    """The plumbing on real SQuAD 2.0: official keys, counts, files, a loadable student. A
    student small enough for CI does not learn SQuAD from 300 questions, so that a QA student
    learns (10 EM above the no-answer score) is asserted on synthetic QA, by the quickstart
    test's front."""
    out = tmp_path / "student"
    result = nas("trial", "run", "--study", str(squad_study), "--out", str(out))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    for key in ("exact", "f1", "HasAns_exact", "NoAns_exact", "total", "best_exact"):
        assert key in metrics["task"], key
    assert 0.0 <= metrics["task"]["exact"] <= 100.0
    assert metrics["task"]["total"] == 200
    assert metrics["params"] > 0 and metrics["steps"] > 0 and metrics["samples_per_s"] > 0
    assert "teacher logits" in result.stderr  # the teacher ran once, before the trial
    for name in ("model.safetensors", "config.json", "tokenizer.json", "nas.json"):
        assert (out / name).is_file(), name
    record = json.loads((out / "nas.json").read_text())
    assert record["params"] == STUDENT and record["study"] == "test-squad_v2"

    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == metrics["params"]
    assert model.config.model_type == "distilbert" and model.config.n_layers == 1

    # A second trial reuses the cached teacher logits and features.
    again = nas(
        "trial",
        "run",
        "--study",
        str(squad_study),
        "--params",
        '{"n_layers": 2, "hidden_size": 64}',
        "--quiet",
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["params"] > metrics["params"]
    assert again.stderr == ""


def test_sst2_trial_on_real_sentences(tmp_path: Path, shared_data: Path) -> None:
    data = {
        "train_file": str(shared_data / "sst2" / "train.tsv"),
        "test_file": str(shared_data / "sst2" / "dev.tsv"),
        "eval_fraction": 0.01,
        "max_train_samples": 1500,
        "max_seq_length": 48,
    }
    study = write_study(tmp_path, "sst2", data)
    result = nas("trial", "run", "--study", str(study), "--params", '{"epochs": 2}')
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics["task"]) >= {"accuracy", "macro_f1", "mcc"}
    # the student learned: clearly above always answering the selection split's majority class
    # (0.655 against 0.56 here; deterministic on CPU), and a correlation a constant cannot have
    from nas.config import load_study
    from nas.trial.data import load_splits

    _, splits, _ = load_splits(load_study(study))
    labels = [example.label for example in splits.eval]
    majority = max(labels.count(label) for label in set(labels)) / len(labels)
    assert metrics["task"]["accuracy"] >= majority + 0.05, (metrics["task"], majority)
    assert metrics["task"]["mcc"] > 0.15
    teacher = json.loads((tmp_path / "teacher" / "teacher.json").read_text())
    assert teacher["metrics"]["accuracy"] >= majority  # a 2-layer teacher, 2 epochs from scratch


def test_oom_fault_injection_raises_a_real_cuda_oom(squad_study: Path) -> None:
    from nas.config import load_study
    from nas.errors import OutOfMemory
    from nas.trial.run import prepare, run_trial

    prepared = prepare(load_study(squad_study))
    os.environ["NAS_FAULT_OOM_ABOVE_PARAMS"] = "1000"
    try:
        with pytest.raises(OutOfMemory) as info:
            run_trial(prepared, prepared.space.trial_params(STUDENT))
    finally:
        del os.environ["NAS_FAULT_OOM_ABOVE_PARAMS"]
    assert "CUDA out of memory" in str(info.value)
    assert info.value.__cause__.__class__.__name__ == "OutOfMemoryError"


def test_nan_loss_is_diverged(squad_study: Path) -> None:
    from nas.config import load_study
    from nas.errors import Diverged
    from nas.params import TrialParams
    from nas.students.build import build_student
    from nas.trial.loop import Distillation, train
    from nas.trial.run import prepare

    prepared = prepare(load_study(squad_study))
    model = build_student(STUDENT, prepared.source, "qa")
    params = {**STUDENT, "learning_rate": 1.0e6, "warmup_ratio": 0.0}  # far outside any space
    recipe = TrialParams.from_params(params).recipe  # names and types: no space to lie in
    with pytest.raises(Diverged, match=r"loss became (nan|inf)"):
        train(
            model,
            prepared.train_features,
            recipe,
            prepared.config.training,
            "qa",
            0,
            seed=prepared.config.training.seed,
            distill=Distillation(prepared.teacher_logits, recipe.alpha, recipe.temperature),
        )


# ----------------------------------------------------------------------------- bad input


def test_missing_data_file(tmp_path: Path) -> None:
    study = write_study(tmp_path, "sst2", {"train_file": "nope/train.tsv", "eval_fraction": 0.1})
    out = tmp_path / "out"
    result = nas("trial", "run", "--study", str(study), "--out", str(out))
    assert_usage_error(result, "data.train_file = 'nope/train.tsv'", "does not exist")
    assert not out.exists()


def test_file_in_the_wrong_format(tmp_path: Path, shared_data: Path) -> None:
    data = {"train_file": str(shared_data / "squad_v2" / "dev-v2.0.json"), "eval_fraction": 0.1}
    study = write_study(tmp_path, "sst2", data)
    assert_usage_error(nas("trial", "run", "--study", str(study)), "dev-v2.0.json")


def test_label_outside_the_label_set(tmp_path: Path) -> None:
    bad = tmp_path / "train.txt"
    bad.write_text("text;label_name\ni feel great;joy\ni am bored;boredom\n")
    data = {"train_file": str(bad), "eval_file": str(bad), "test_fraction": 0.5}
    study = write_study(tmp_path, "emotion", data)
    assert_usage_error(nas("trial", "run", "--study", str(study)), "boredom")


def test_params_outside_the_search_space(squad_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = nas(
        "trial",
        "run",
        "--study",
        str(squad_study),
        "--params",
        '{"hidden_size": 100}',
        "--out",
        str(out),
    )
    assert_usage_error(result, "hidden_size = 100 is outside the search space")
    assert not out.exists()
    result = nas("trial", "run", "--study", str(squad_study), "--params", "{n_layers: 2}")
    assert_usage_error(result, "is not valid JSON")


def test_teacher_vocabulary_differs_from_student(squad_study: Path, tmp_path: Path) -> None:
    from nas.tasks.vocab import build_tokenizer

    other = tmp_path / "other-source"
    build_tokenizer(["only", "these", "words"], other)
    raw = yaml.safe_load(squad_study.read_text())
    raw["student_source"] = str(other)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(raw))
    assert_usage_error(nas("trial", "run", "--study", str(study)), "tokenize differently")


def test_unreadable_checkpoint(squad_study: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    raw = yaml.safe_load(squad_study.read_text())
    raw["teacher"] = {"path": str(broken)}
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(raw))
    assert_usage_error(nas("trial", "run", "--study", str(study)), str(broken))


def test_eval_squad_v2_cli_prints_the_official_keys(shared_data: Path, tmp_path: Path) -> None:
    dev = shared_data / "squad_v2" / "dev-v2.0.json"
    raw = json.loads(dev.read_text())
    preds = {
        qa["id"]: (qa["answers"][0]["text"] if qa["answers"] else "")
        for article in raw["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
    }
    pred_file = tmp_path / "preds.json"
    pred_file.write_text(json.dumps(preds))
    result = nas("eval", "squad-v2", "--data", str(dev), "--predictions", str(pred_file))
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert list(scores)[:3] == ["exact", "f1", "total"]
    assert scores["exact"] == 100.0 and scores["total"] == 6078
    assert scores["HasAns_total"] == 2910 and scores["NoAns_total"] == 3168


# ----------------------------------------------------------------------------- transfer sets


LAYERS_SPACE = REPO / "search_spaces" / "quickstart_layers.yaml"
LOSSES_OFF = {
    "hidden_weight": 0.0,
    "hidden_kind": "mse",
    "pkd_weight": 0.0,
    "relation_weight": 0.0,
    "relation_heads": 4,
    "layer_map": "uniform",
}


def sst2_data(shared_data: Path) -> dict[str, Any]:
    return {
        "train_file": str(shared_data / "sst2" / "train.tsv"),
        "test_file": str(shared_data / "sst2" / "dev.tsv"),
        "eval_fraction": 0.01,
        "max_train_samples": 400,
        "max_eval_samples": 200,
        "max_seq_length": 48,
    }


def test_sst2_trial_with_a_transfer_set_and_a_hidden_loss(
    tmp_path: Path, shared_data: Path
) -> None:
    """Real SST-2 sentences: 300 unlabelled dev sentences plus 2 augmented copies per labelled
    example, labelled by the teacher once; the student trains on them with a hidden-state loss
    (the teacher in the loop)."""
    lines = (shared_data / "sst2" / "dev.tsv").read_text().splitlines()[1:301]
    unlabelled = tmp_path / "unlabelled.txt"
    unlabelled.write_text("".join(line.split("\t")[0] + "\n" for line in lines))
    transfer = {"file": str(unlabelled), "augment": {"copies": 2}}
    study = write_study(
        tmp_path,
        "sst2",
        sst2_data(shared_data),
        transfer=transfer,
        search_space=str(LAYERS_SPACE),
        baseline={**STUDENT, **LOSSES_OFF},
    )
    params = json.dumps({"hidden_weight": 1.0, "epochs": 1})
    result = nas("trial", "run", "--study", str(study), "--params", params)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout)
    texts = int(re.search(r"transfer set: (\d+) texts", result.stderr).group(1))  # type: ignore[union-attr]
    assert 300 + 400 <= texts <= 300 + 2 * 400  # the file, then up to 2 copies per example
    assert metrics["params"] > 0 and 0.0 <= metrics["task"]["accuracy"] <= 1.0
    # every row trained: one epoch over the labelled and the transfer features
    assert metrics["extra"]["train_samples"] == 400 + texts
    assert result.stderr.count("teacher logits: one pass") == 2  # train split, transfer set


def test_transfer_and_layer_loss_bad_input(tmp_path: Path, shared_data: Path) -> None:
    """Each fails with one line naming the value and the fix, before any teacher trains."""
    data = sst2_data(shared_data)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"transfer": {"file": "nope.txt"}}, "set transfer.file to an existing file"),
        ({"transfer": {"file": str(empty)}}, "file is empty"),
        ({"transfer": {"file": str(shared_data / "squad_v2" / "dev-v2.0.json")}}, "dev-v2.0"),
        ({"transfer": {"augment": {"p_mask": 1.5}}}, "transfer.augment.p_mask = 1.5"),
        ({"transfer": {}}, "transfer makes no examples"),
    ]
    fixed = LAYERS_SPACE.read_text()
    for key in ("hidden_weight", "relation_weight"):  # the losses on, fixed
        fixed = re.sub(rf"^{key}: .*$", f"{key}: 1.0", fixed, flags=re.MULTILINE)
    on = {**LOSSES_OFF, "hidden_weight": 1.0, "relation_weight": 1.0}
    layer_cases = [
        (
            fixed.replace("layer_map: uniform", "layer_map: last"),
            {**on, "layer_map": "last"},
            "layer_map 'last' with n_layers = 3",
        ),
        (
            fixed.replace("relation_heads: 4", "relation_heads: 3"),
            {**on, "relation_heads": 3},
            "relation_heads = 3 does not divide",
        ),
    ]
    for i, (extra, fragment) in enumerate(cases):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        study = write_study(folder, "sst2", data, **extra)
        assert_usage_error(nas("trial", "run", "--study", str(study)), fragment)
        assert not (folder / "teacher").exists() and not (folder / "cache").exists()
    for i, (text, baseline, fragment) in enumerate(layer_cases):
        folder = tmp_path / f"layers{i}"
        folder.mkdir()
        (folder / "space.yaml").write_text(text)
        study = write_study(
            folder,
            "sst2",
            data,
            search_space=str(folder / "space.yaml"),
            baseline={**STUDENT, **baseline},
        )
        assert_usage_error(nas("trial", "run", "--study", str(study)), fragment)
        assert not (folder / "teacher").exists()
    # a teacher whose architecture exposes no hidden states nas can map
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    folder = tmp_path / "gpt-study"
    folder.mkdir()
    study = write_study(
        folder,
        "sst2",
        data,
        search_space=str(LAYERS_SPACE),
        baseline={**STUDENT, **LOSSES_OFF},
        teacher={"path": str(gpt)},
    )
    assert_usage_error(nas("trial", "run", "--study", str(study)), "model_type 'gpt2'")


def test_squad_transfer_set_is_refused(squad_study: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(squad_study.read_text())
    raw["transfer"] = {"augment": {"copies": 2}}
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(raw))
    assert_usage_error(nas("trial", "run", "--study", str(study)), "classification tasks only")
