"""Out of memory is ``oom`` wherever a trial runs out, and a NaN student is ``nan_loss``.

The trials here go through the worker's real path (``nas.search.worker.trainable``: prepare,
run_trial, the checkpoint) and the driver's tell path (``StudySearcher``) in this process, so a
monkeypatch reaches them; one slow test runs the same through the CLI and local Ray.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
import yaml
from conftest import TINY_BASELINE
from optuna.trial import FrozenTrial, TrialState
from support.cli_run import run_nas

import nas.trial.run
from nas.cli import main
from nas.config import load_study
from nas.errors import OutOfMemory, is_out_of_memory
from nas.search.searcher import StudySearcher
from nas.search.worker import trainable
from nas.search_space import load_search_space
from nas.study.record import REASON, no_answer_record, teacher_scores
from nas.study.record import test_scores as scores_on_test  # not collected as a test
from nas.trial.loop import catch_out_of_memory

NAMES = ["exact", "params", "latency_ms"]
OBJECTIVES = [
    {"name": "exact", "direction": "maximize"},
    {"name": "params", "direction": "minimize"},
    {"name": "latency_ms", "direction": "minimize"},
]


# ----------------------------------------------------------------------------- the helper


@pytest.mark.parametrize(
    "exc",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB."),
        RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.15 GiB total)"),
        RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously..."),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
        OutOfMemory("CUDA out of memory"),
    ],
    ids=["torch", "allocator", "kernel", "cublas", "cudnn", "nas"],
)
def test_the_cuda_out_of_memory_forms_are_recognised(exc: BaseException) -> None:
    assert is_out_of_memory(exc)


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x32 and 16x8)"),
        RuntimeError("CUDA error: device-side assert triggered"),
        ValueError("CUDA out of memory"),  # not a torch error, whatever it says
        MemoryError(),
    ],
    ids=["shapes", "assert", "value-error", "host-memory"],
)
def test_other_errors_are_not_out_of_memory(exc: BaseException) -> None:
    assert not is_out_of_memory(exc)


def test_memory_is_released_after_the_handler_with_the_failed_frames_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refs: list[weakref.ref[torch.nn.Module]] = []
    alive_at_release: list[bool] = []

    def trial() -> None:
        model = torch.nn.Linear(64, 64)
        refs.append(weakref.ref(model))
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(
        "nas.trial.loop.release_memory", lambda: alive_at_release.append(refs[0]() is not None)
    )
    with pytest.raises(OutOfMemory, match="CUDA error: out of memory") as info:
        catch_out_of_memory(trial)
    assert alive_at_release == [False]  # released once, when nothing held the model any more
    assert isinstance(info.value.__cause__, RuntimeError)  # kept for its message...
    assert info.value.__cause__.__traceback__ is None  # ...without the frames


def test_other_errors_pass_through_without_a_release(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[bool] = []
    monkeypatch.setattr("nas.trial.loop.release_memory", lambda: released.append(True))

    def trial() -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="mat1"):
        catch_out_of_memory(trial)
    assert released == []


# ----------------------------------------------------------------------------- trials


class Driver:
    """A searcher on an in-memory study, with trials run by the worker's trainable here."""

    def __init__(self, study_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.config = load_study(study_file)
        self.study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
        self.lines: list[str] = []
        space = load_search_space(self.config.search_space)
        self.searcher = StudySearcher(
            self.study, space, self.config, NAMES, 4, tmp_path / "artifacts", self.lines.append
        )
        (tmp_path / "artifacts").mkdir()  # the driver's check_root makes it
        self.reported: list[dict[str, Any]] = []
        monkeypatch.setattr("ray.tune.report", self.reported.append)
        monkeypatch.setattr(
            "nas.search.worker._placement", lambda: {"node": "local", "gpu_ids": []}
        )

    def run_one(self, trial_id: str) -> FrozenTrial:
        ray_config = self.searcher.suggest(trial_id)
        assert ray_config is not None
        trainable(ray_config, self.config)
        self.searcher.on_trial_complete(trial_id, self.reported[-1])
        return self.study.trials[-1]


@pytest.fixture
def driver(tiny_study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Driver:  # type: ignore[no-untyped-def]
    """Every trial is the tiny baseline's shape and recipe (a second or two of training)."""
    space = {k: {"type": "categorical", "choices": [v]} for k, v in TINY_BASELINE.items()}
    space_file = tmp_path / "one_point.yaml"
    space_file.write_text(yaml.safe_dump(space))
    study_file = tiny_study(
        name="oom",
        objectives=OBJECTIVES,
        baseline=None,
        thresholds=[],
        search_space=str(space_file),
    )
    return Driver(study_file, tmp_path, monkeypatch)


@pytest.mark.parametrize("site", ["to_device", "eval", "latency"])
def test_out_of_memory_anywhere_in_a_trial_is_oom_and_the_study_goes_on(
    driver: Driver, monkeypatch: pytest.MonkeyPatch, site: str
) -> None:
    monkeypatch.setenv("NAS_FAULT_OOM_ABOVE_PARAMS", "1")
    monkeypatch.setenv("NAS_FAULT_OOM_AT", site)
    failed = driver.run_one("a")
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs[REASON] == "oom", failed.user_attrs
    assert (
        f"CUDA out of memory (injected by NAS_FAULT_OOM_ABOVE_PARAMS=1 at {site}"
        in (failed.user_attrs["fail_message"])
    )
    assert "FAIL oom" in driver.lines[0]
    monkeypatch.delenv("NAS_FAULT_OOM_ABOVE_PARAMS")
    done = driver.run_one("b")
    assert done.state == TrialState.COMPLETE, done.user_attrs
    assert [t.number for t in driver.study.best_trials] == [done.number]


def test_a_nan_student_is_nan_loss_and_not_on_the_front(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_train = nas.trial.run.train

    def nan_train(model: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        result = real_train(model, *args, **kwargs)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
        return result

    monkeypatch.setattr(nas.trial.run, "train", nan_train)
    failed = driver.run_one("a")
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs[REASON] == "nan_loss", failed.user_attrs
    assert "NaN/inf after training" in failed.user_attrs["fail_message"]
    monkeypatch.setattr(nas.trial.run, "train", real_train)
    done = driver.run_one("b")
    assert done.state == TrialState.COMPLETE, done.user_attrs
    assert [t.number for t in driver.study.best_trials] == [done.number]


def test_non_finite_eval_logits_are_diverged(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_predict = nas.trial.run.predict

    def inf_predict(*args: Any, **kwargs: Any) -> np.ndarray:
        logits = real_predict(*args, **kwargs).copy()
        logits[0, 0] = np.inf  # one token's start logit: finite weights, overflowed output
        return logits

    monkeypatch.setattr(nas.trial.run, "predict", inf_predict)
    failed = driver.run_one("a")
    assert failed.user_attrs[REASON] == "nan_loss", failed.user_attrs
    assert "1 of " in failed.user_attrs["fail_message"]
    assert "eval logits are NaN/inf" in failed.user_attrs["fail_message"]


# ----------------------------------------------------------------------------- the teacher


def fresh_study(tiny_study, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A tiny study whose cache (teacher, logits) starts empty."""
    return tiny_study(name="fresh", cache_dir=str(tmp_path / "cache"), n_trials=1)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("nas: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_student_faults_never_hit_the_teacher(tiny_study, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from nas.trial.teacher import ensure_teacher

    monkeypatch.setenv("NAS_FAULT_OOM_ABOVE_PARAMS", "1")  # the quickstart's fault injection
    teacher = Path(ensure_teacher(load_study(fresh_study(tiny_study, tmp_path))))
    assert (teacher / "model.safetensors").is_file()  # trained at every site a student fails


def test_teacher_training_out_of_memory_is_one_line_and_exit_1(
    tiny_study,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("NAS_FAULT_OOM_TEACHER", "train")
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    code = main(["study", "run", str(fresh_study(tiny_study, tmp_path)), "--storage", url])
    line = one_error_line(capsys.readouterr().err)
    assert code == 1
    assert "training the teacher at batch size 32 ran out of accelerator memory" in line
    assert "lower teacher.train.batch_size" in line and "CUDA out of memory" in line
    teachers = tmp_path / "cache" / "teachers"
    assert [p.name for p in teachers.iterdir() if p.is_dir()] == []  # nothing half-written


def test_teacher_pass_out_of_memory_is_one_line_and_exit_1(
    tiny_study,
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from nas.trial.teacher import ensure_teacher

    study_file = fresh_study(tiny_study, tmp_path)
    ensure_teacher(load_study(study_file))  # the teacher exists; its logits do not
    monkeypatch.setenv("NAS_FAULT_OOM_TEACHER", "pass")
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    code = main(["study", "run", str(study_file), "--storage", url])
    line = one_error_line(capsys.readouterr().err)
    assert code == 1
    assert "the teacher pass of" in line and "at batch size 64 ran out of" in line
    assert "lower training.eval_batch_size" in line
    logits = tmp_path / "cache" / "logits"
    assert [p.name for p in logits.iterdir() if p.is_dir()] == []  # nothing half-written
    assert (tmp_path / "cache" / "teachers" / "tiny").is_dir()  # the teacher is kept


@pytest.mark.slow
def test_eval_oom_through_ray_in_a_fresh_folder(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The quickstart's scenario: a fresh cache (the teacher is trained under the fault), the
    baseline fits, bigger students run out of memory at evaluation and fail as ``oom``, and the
    study goes on. A threshold nobody meets (exact >= 101) also keeps every COMPLETE trial off
    the front: the front is empty, said so, and the baseline is scored on the test split all
    the same (every delta is measured from it)."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    env = {"NAS_FAULT_OOM_ABOVE_PARAMS": "40000", "NAS_FAULT_OOM_AT": "eval"}
    study_file = tiny_study(
        name="fresh",
        cache_dir=str(tmp_path / "cache"),
        n_trials=3,
        thresholds=[{"metric": "exact", "min": 101.0}],
    )
    result = run_nas("study", "run", str(study_file), "--storage", url, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="fresh", storage=url)
    trials = study.trials
    assert trials[0].state == TrialState.COMPLETE  # the baseline (32,642 parameters) fits
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and all(t.user_attrs[REASON] == "oom" for t in failed), [
        json.dumps(t.user_attrs, default=str)[:300] for t in failed
    ]
    assert all(" at eval: " in t.user_attrs["fail_message"] for t in failed)
    assert all("CUDA out of memory" in t.user_attrs["fail_message"] for t in failed)
    assert "FAIL oom" in result.stderr  # each trial's line says why, and the study went on
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert all(t.constraints["exact>=101"] > 0 for t in complete)
    assert study.best_trials == []
    assert "infeasible" in result.stderr and "(no feasible COMPLETE trial yet)" in result.stdout
    assert 0 in scores_on_test(study) and teacher_scores(study) and no_answer_record(study)
