"""One finished nas study on real data (SST-2 sentences from ../shared/data), run once per test
session through the real CLI and shared read-only by the front, report, dashboard and export
tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from support.cli_run import REPO, run_nas

NAME = "sst2-real"
RUN_FILE = "run.json"  # the run's output, written once the study has finished
THRESHOLD = 0.55  # accuracy; a student that guesses one class scores about 0.5


@dataclass(frozen=True)
class RealStudy:
    study_file: Path
    url: str
    artifacts: Path
    run_stdout: str
    run_stderr: str  # the progress lines

    def study(self) -> optuna.Study:
        return optuna.load_study(study_name=NAME, storage=self.url)


def sst2_study(folder: Path, data: Path) -> dict[str, Any]:
    """The real study's config: 1,500 SST-2 training sentences (1 % of the file held out for
    selection, the dev set as test) and a 2-layer, 64-wide teacher trained in ``folder`` on a
    3,000-token vocabulary built from the data, which is also the student source."""
    return {
        "name": NAME,
        "task": "sst2",
        "data": {
            "train_file": str(data / "sst2" / "train.tsv"),
            "test_file": str(data / "sst2" / "dev.tsv"),
            "eval_fraction": 0.01,  # 673 training sentences held out to score the trials
            "max_train_samples": 1500,
            "max_seq_length": 48,
        },
        "teacher": {
            "path": str(folder / "teacher"),
            "train": {
                "arch": {
                    "hidden_size": 64,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 4,
                    "intermediate_size": 128,
                },
                "epochs": 3,
                "learning_rate": 1e-3,
                "batch_size": 32,
                "vocab_from_data": 3000,
                "seed": 0,
            },
        },
        "student_source": str(folder / "teacher"),
        "search_space": str(REPO / "search_spaces" / "quickstart.yaml"),
        "cache_dir": str(folder / "cache"),
        "artifact_root": str(folder / "artifacts"),
        "baseline": {
            "n_layers": 2,
            "n_heads": 4,
            "hidden_size": 64,
            "ffn_dim": 128,
            "temperature": 2.0,
            "alpha": 0.5,
            "learning_rate": 1e-3,
            "warmup_ratio": 0.1,
            "weight_decay": 0.01,
            "batch_size": 32,
            "epochs": 2,
        },
        "thresholds": [{"metric": "accuracy", "min": THRESHOLD}],
        "training": {"eval_batch_size": 128},
        "n_trials": 6,
        "sampler": {"name": "random", "seed": 1},
    }


def run_real_study(folder: Path, data: Path) -> RealStudy:
    """A 6-trial random search on 1,500 SST-2 training sentences, evaluated on the dev set, with
    a 2-layer teacher trained here on a vocabulary built from the data."""
    study = sst2_study(folder, data)
    study_file = folder / "sst2.yaml"
    study_file.write_text(yaml.safe_dump(study))
    url = f"sqlite:///{folder / 'nas.db'}"
    result = run_nas("study", "run", str(study_file), "--storage", url, "--workers", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    # written last: its presence says the study finished (load_real_study)
    (folder / RUN_FILE).write_text(json.dumps({"stdout": result.stdout, "stderr": result.stderr}))
    done = load_real_study(folder)
    assert done is not None
    return done


def load_real_study(folder: Path) -> RealStudy | None:
    """The study ``run_real_study`` finished in ``folder``, or None if it has not."""
    run = folder / RUN_FILE
    if not run.is_file():
        return None
    out = json.loads(run.read_text())
    url = f"sqlite:///{folder / 'nas.db'}"
    return RealStudy(folder / "sst2.yaml", url, folder / "artifacts", out["stdout"], out["stderr"])
