"""The README's main job, as a user runs it: `nas study run studies/quickstart.yaml`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.study import no_answer_record
from nas.study import test_scores as scores_on_test  # not collected as a test

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_study_from_nothing(tmp_path: Path) -> None:
    """The README's first command, cut to 4 of its 12 trials (the baseline and 3 sampled
    students) to keep CI short; everything else (teacher training, slicing, the front on the
    test split) runs as a user runs it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    # run from an empty folder, so the defaults (sqlite:///nas.db, .nas/) land there
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nas",
            "study",
            "run",
            str(REPO / "studies" / "quickstart.yaml"),
            "--n-trials",
            "4",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    teacher = json.loads((tmp_path / ".nas/cache/teachers/quickstart/teacher.json").read_text())
    assert teacher["metrics"]["exact"] > 70.0  # synthetic_qa is learnable well above 50% EM
    study = optuna.load_study(study_name="quickstart", storage=f"sqlite:///{tmp_path}/nas.db")
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
    assert len(finished) == 4
    assert study.best_trials, "the front must not be empty"
    # feasible means 10 EM above the no-answer score (40 on this split) and HasAns_f1 >= 20
    assert no_answer_record(study)["selection"]["exact"] == 40.0
    for t in study.best_trials:
        assert t.values[0] >= 50.0 and t.user_attrs["metric:HasAns_f1"] >= 20.0
    assert "Pareto front" in result.stdout and "exact (test)" in result.stdout
    assert 0 in scores_on_test(study)  # the baseline was scored on the test split
