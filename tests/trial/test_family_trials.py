"""Every student family through real trials on SST-2 sentences: a DistilBERT student through
``run_trial``, and a BiLSTM, a CNN and a bag-of-words student through ``nas study run`` and
``nas export --onnx``. Each learns, its parameter count is exact, and its exported folder (with
the reduced tokenizer when it prunes its vocabulary) scores its recorded accuracy again, with
PyTorch and with the card's onnxruntime snippet run with torch, transformers and nas blocked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from support.cli_run import run_nas
from support.real_study import sst2_study

from nas.config import load_study
from nas.errors import ConfigError, InvalidConfig

SHARED = {"temperature": 2.0, "alpha": 0.5, "warmup_ratio": 0.0, "weight_decay": 0.0}
FAMILY = {
    "bow": {
        "learning_rate": 0.01,
        "batch_size": 32,
        "epochs": 3,
        "vocab_size": 1000,
        "embedding_dim": 32,
        "hidden_dim": 0,
        "dropout": 0.0,
        "embeddings": "source",
        "freeze_embeddings": False,
    },
    "bilstm": {
        "learning_rate": 0.003,
        "batch_size": 32,
        "epochs": 3,
        "vocab_size": 0,
        "embedding_dim": 32,
        "hidden_size": 32,
        "n_layers": 1,
        "pooling": "max",
        "fc_dim": 64,
        "dropout": 0.1,
        "embeddings": "source",
        "freeze_embeddings": False,
    },
    "cnn": {
        "learning_rate": 0.003,
        "batch_size": 32,
        "epochs": 3,
        "vocab_size": 1000,
        "embedding_dim": 32,
        "filter_widths": "2,3",
        "n_filters": 32,
        "dropout": 0.3,
        "embeddings": "source",
        "freeze_embeddings": False,
    },
}
SPACE = """
vocab_size: {type: categorical, choices: [1000, 0]}
family: {type: categorical, choices: [distilbert, bilstm, cnn, bow]}
n_layers: {type: int, low: 1, high: 2}
n_heads: {type: categorical, choices: [2, 4]}
hidden_size: {type: categorical, choices: [32, 64]}
ffn_dim: {type: int, low: 64, high: 128, step: 64}
temperature: {type: float, low: 1.0, high: 8.0}
alpha: {type: float, low: 0.0, high: 1.0}
learning_rate: {type: float, low: 1.0e-4, high: 5.0e-3, log: true}
warmup_ratio: {type: float, low: 0.0, high: 0.2}
weight_decay: {type: float, low: 0.0, high: 0.1}
batch_size: {type: categorical, choices: [16, 32]}
epochs: {type: int, low: 1, high: 3}
bilstm:
  vocab_size: {type: categorical, choices: [1000, 0]}
  learning_rate: {type: float, low: 3.0e-4, high: 5.0e-3, log: true}
  batch_size: 32
  epochs: 3
  embedding_dim: 32
  hidden_size: 32
  n_layers: {type: int, low: 1, high: 2}
  pooling: {type: categorical, choices: [last, max, mean]}
  fc_dim: 64
  dropout: 0.1
  embeddings: {type: categorical, choices: [source, random]}
  freeze_embeddings: {type: categorical, choices: [false, true]}
cnn:
  vocab_size: {type: categorical, choices: [1000, 0]}
  learning_rate: 0.003
  batch_size: 32
  epochs: 3
  embedding_dim: 32
  filter_widths: {type: categorical, choices: ["2,3", "3,4,5"]}
  n_filters: 32
  dropout: 0.3
  embeddings: {type: categorical, choices: [source, random]}
  freeze_embeddings: false
bow:
  vocab_size: {type: categorical, choices: [1000, 500]}
  learning_rate: 0.01
  batch_size: 32
  epochs: 3
  embedding_dim: {type: categorical, choices: [16, 32]}
  hidden_dim: {type: categorical, choices: [0, 64]}
  dropout: 0.0
  embeddings: {type: categorical, choices: [source, random]}
  freeze_embeddings: false
"""


def family_params(family: str) -> dict[str, Any]:
    if family == "distilbert":
        shape = {"n_layers": 2, "n_heads": 2, "hidden_size": 64, "ffn_dim": 128}
        recipe = {"learning_rate": 0.003, "batch_size": 32, "epochs": 3}
        return {"family": family, **shape, **SHARED, **recipe, "vocab_size": 1000}
    own = {f"{family}.{k}": v for k, v in FAMILY[family].items()}
    return {"family": family, **SHARED, **own}


def write_study(folder: Path, data: Path, space: str = SPACE, **changes: Any) -> Path:
    """The real study's SST-2 data and teacher (``support.real_study``) over ``space``."""
    name = str(changes.get("name", "families"))
    (folder / f"{name}-space.yaml").write_text(space)
    study = sst2_study(folder, data)
    for key in ("baseline", "artifact_root", "sampler"):
        study.pop(key)
    study.update(name="families", search_space=str(folder / f"{name}-space.yaml"), n_trials=2)
    study.update(changes)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def fixed_space() -> str:
    """A space whose only choice is the family (bilstm, cnn, bow), each at its FAMILY recipe."""
    lines = ["family: {type: categorical, choices: [bilstm, cnn, bow]}"]
    lines += [f"{k}: {v}" for k, v in SHARED.items()]
    lines += ["learning_rate: 0.003", "batch_size: 32", "epochs: 3"]
    for family, values in FAMILY.items():
        lines.append(f"{family}:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Any:
    from nas.trial import prepare

    folder = tmp_path_factory.mktemp("families")
    return prepare(load_study(write_study(folder, shared_data)))


def test_a_distilbert_student_learns_and_its_folder_scores_the_same_again(
    prepared: Any, tmp_path: Path
) -> None:
    """With a pruned vocabulary; bilstm, cnn and bow go through the CLI below."""
    from transformers import AutoTokenizer

    from nas.trial import run_trial, score_checkpoint

    family = "distilbert"
    params = prepared.space.trial_params(family_params(family))
    assert params.family == family
    out = tmp_path / "student"
    metrics = run_trial(prepared, params, out)
    labels = prepared.splits.eval
    majority = max(np.bincount([ex.label for ex in labels])) / len(labels)
    assert metrics.task["accuracy"] > majority + 0.04, (family, metrics.task, majority)
    tokenizer = AutoTokenizer.from_pretrained(str(out))  # what a user loads
    vocab = params.pruned_vocab
    assert len(tokenizer) == vocab == 1000
    again = score_checkpoint(prepared, out, prepared.splits.eval)
    assert again["accuracy"] == pytest.approx(metrics.task["accuracy"], abs=1e-9)


def test_every_family_can_be_sampled_and_a_wrong_family_key_is_refused(prepared: Any) -> None:
    import optuna

    space = prepared.space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = {space.trial_params(space.suggest(study.ask())).family for _ in range(30)}
    assert seen == {"distilbert", "bilstm", "cnn", "bow"}
    bad = {**family_params("bow"), "bilstm.hidden_size": 32}
    with pytest.raises(InvalidConfig, match=r"bilstm.hidden_size is a parameter of family bilstm"):
        space.trial_params(bad)


def test_question_answering_with_a_family_is_refused_before_any_teacher(
    tmp_path: Path, shared_data: Path
) -> None:
    from nas.trial import prepare

    path = write_study(tmp_path, shared_data)
    raw = yaml.safe_load(path.read_text())
    raw["task"] = "squad_v2"
    raw["data"] = {
        "train_file": str(shared_data / "squad_v2" / "dev-v2.0.json"),
        "test_articles": 2,
        "eval_articles": 2,
        "max_train_samples": 50,
    }
    raw["thresholds"] = [{"metric": "exact", "min": 1}]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"family bilstm is a text classifier"):
        prepare(load_study(path))
    assert not (tmp_path / "teacher").exists()  # refused before training it


def test_a_vocabulary_larger_than_the_tokenizer_is_refused_before_any_student(
    tmp_path: Path, shared_data: Path
) -> None:
    from nas.trial import prepare

    path = write_study(tmp_path, shared_data, SPACE.replace("[1000, 500]", "[1000, 90000]"))
    with pytest.raises(InvalidConfig, match=r"bow.vocab_size 90000 must lie between"):
        prepare(load_study(path))


# Runs a card's onnxruntime snippet with torch, transformers and nas made unimportable, then
# classifies the texts of texts.json; prints the labels as JSON on its last line.
_ONNX_DRIVER = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "nas"):
            raise ImportError(f"{name} is blocked: the snippet must not need it")
sys.meta_path.insert(0, Block())
code, texts = sys.argv[1], json.load(open(sys.argv[2]))
space = {"__name__": "snippet"}
exec(open(code).read(), space)
print(json.dumps([space["classify"](t) for t in texts]))
"""


def card_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.S)


@pytest.mark.slow
def test_family_students_export_with_onnx_and_score_their_recorded_accuracy(
    prepared: Any, tmp_path: Path, shared_data: Path
) -> None:
    from transformers import AutoTokenizer

    from nas.students import count_family_parameters, load_family
    from nas.trial import score_checkpoint

    folder = Path(prepared.config.cache_dir).parent  # the module's teacher and caches
    baseline = family_params("bilstm")
    study_file = write_study(
        folder, shared_data, fixed_space(), name="families-export", n_trials=3,
        baseline=baseline, sampler={"name": "random", "seed": 0},
        artifact_root=str(tmp_path / "artifacts"),
    )  # fmt: skip
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    result = run_nas("study", "run", str(study_file), "--storage", url)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name="families-export", storage=url).trials
    by_family = {t.params["family"]: t for t in trials if t.state.name == "COMPLETE"}
    assert set(by_family) == {"bilstm", "cnn", "bow"}, "seed 0 should sample each family once"
    out = tmp_path / "export"
    numbers = ",".join(str(t.number) for t in by_family.values())
    done = run_nas("export", "families-export", "--trials", numbers, "--out", str(out),
                   "--onnx", "--storage", url)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    examples = prepared.splits.eval
    gold = [ex.label for ex in examples]
    majority = max(np.bincount(gold)) / len(gold)
    (tmp_path / "texts.json").write_text(json.dumps([ex.text for ex in examples]))
    (tmp_path / "driver.py").write_text(_ONNX_DRIVER)
    for family, trial in by_family.items():
        trial_dir = out / f"trial-{trial.number}"
        recorded = trial.user_attrs["metric:accuracy"]
        assert recorded > majority + 0.04, (family, recorded, majority)
        model = load_family(trial_dir)
        tokenizer = AutoTokenizer.from_pretrained(str(trial_dir))
        assert len(tokenizer) == (FAMILY[family]["vocab_size"] or len(prepared.tokenizer))
        assert trial.user_attrs["params"] == count_family_parameters(
            model.shape, len(tokenizer), 2
        )
        again = score_checkpoint(prepared, trial_dir, examples)  # the exported files, PyTorch
        assert again["accuracy"] == pytest.approx(recorded, abs=1e-9), family
        config = json.loads((trial_dir / "nas_family.json").read_text())
        assert config["family"] == family and config["labels"] == ["negative", "positive"]
        record = json.loads((trial_dir / "nas.json").read_text())
        assert record["family"] == family and record["onnx"]["max_abs_diff_vs_torch"] <= 1e-4
        assert record["latency_ms"] == trial.user_attrs["latency_ms"] > 0
        card = (trial_dir / "README.md").read_text()
        assert f"| student family | {family} |" in card
        assert f"| batch-1 latency | {trial.user_attrs['latency_ms']:.3g} ms" in card
        torch_code, onnx_code = card_blocks(card)
        assert "load_family(Path(MODEL))" in torch_code and "from tokenizers" in onnx_code
        (tmp_path / "snippet.py").write_text(onnx_code)
        ran = subprocess.run(
            [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "snippet.py"),
             str(tmp_path / "texts.json")],
            capture_output=True, text=True, cwd=out, timeout=300,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr[-3000:]
        labels = json.loads(ran.stdout.splitlines()[-1])
        names = config["labels"]
        onnx_accuracy = np.mean([names.index(a) == g for a, g in zip(labels, gold, strict=True)])
        # the graph matches PyTorch to 1e-4: at most a near-tie may flip one example
        assert abs(onnx_accuracy - recorded) <= 1 / len(gold) + 1e-12, (family, onnx_accuracy)
