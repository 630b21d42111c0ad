"""The memory pre-flight: config rules, the estimate beside the measured peak, and trials that
fail as ``oom_predicted`` without being launched."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import TINY_BASELINE
from optuna.trial import TrialState
from support.cli_run import run_nas

from nas.config import ResourcesConfig, load_study
from nas.errors import ConfigError, PredictedOutOfMemory
from nas.results.memory import memory_summary
from nas.search.preflight import (
    Budget,
    check_fits,
    configured_budget,
    trial_estimate,
    worker_budget,
)
from nas.students.cost import MemoryEstimate
from nas.study.record import BUDGET, ESTIMATE, PEAK, REASON
from nas.trial.run import prepare


@pytest.mark.parametrize(
    ("resources", "fragment"),
    [
        ({"preflight_memory": True}, "resources.preflight_memory needs the memory a trial"),
        ({"gpu": 1.5}, "resources.gpu = 1.5; Ray gives a trial a fraction"),
        ({"gpu_memory_gb": 0}, "resources.gpu_memory_gb = 0 must be > 0"),
    ],
)
def test_resource_rules(tiny_study, resources: dict[str, object], fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        load_study(tiny_study(resources=resources))


def test_accepted_resources(tiny_study) -> None:  # type: ignore[no-untyped-def]
    config = load_study(tiny_study(resources={"gpu": 0.5, "preflight_memory": True}))
    assert config.resources == ResourcesConfig(cpu=1.0, gpu=0.5, preflight_memory=True)
    config = load_study(tiny_study(resources={"gpu": 2, "gpu_memory_gb": 1.5}))
    assert configured_budget(config.resources) == Budget(
        int(1.5 * 2**30), "resources.gpu_memory_gb = 1.5"
    )


def test_check_fits_names_estimate_and_budget() -> None:
    estimate = MemoryEstimate(weights=2**20, gradients=2**20, optimizer=2**21, activations=2**22)
    check_fits(estimate, Budget(8 * 2**20, "x"))  # exactly fits
    with pytest.raises(PredictedOutOfMemory, match=r"8\.0 MiB > budget 7\.0 MiB \(cuda:0"):
        check_fits(estimate, Budget(7 * 2**20, "cuda:0 x gpu 0.5"))
    assert PredictedOutOfMemory.reason == "oom_predicted"


def test_the_worker_checks_only_without_an_explicit_budget() -> None:
    on = ResourcesConfig(gpu=1, preflight_memory=True)
    assert worker_budget(ResourcesConfig(gpu=1), torch.device("cpu")) is None  # off
    assert (
        worker_budget(
            ResourcesConfig(gpu=1, preflight_memory=True, gpu_memory_gb=2), torch.device("cpu")
        )
        is None
    )
    with pytest.raises(Exception, match="has no GPU memory to check against"):
        worker_budget(on, torch.device("cpu"))


def test_memory_summary() -> None:
    attrs = {PEAK: 3 * 2**30, "memory_kind": "cuda_max_allocated", ESTIMATE: 2**30, BUDGET: 2**31}
    assert memory_summary(attrs) == (
        "peak 3.0 GiB (cuda_max_allocated), estimate 1.0 GiB, budget 2.0 GiB"
    )
    assert memory_summary({}) == ""


@pytest.mark.gpu
def test_worker_budget_is_the_gpu_memory_times_its_share() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    device = torch.device("cuda:0")
    total = torch.cuda.get_device_properties(device).total_memory
    budget = worker_budget(ResourcesConfig(gpu=0.5, preflight_memory=True), device)
    assert budget is not None and budget.bytes == int(total * 0.5)


def test_oom_predicted_trials_fail_unlaunched_and_the_study_goes_on(
    tiny_study, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    study_file = tiny_study(n_trials=6)
    prepared = prepare(load_study(study_file))
    params = prepared.space.trial_params(TINY_BASELINE)
    baseline = trial_estimate(prepared, params, "cpu", bf16=False).total
    budget_gb = baseline * 1.05 / 2**30  # the baseline fits; most sampled students do not
    raw = yaml.safe_load(study_file.read_text())
    raw["resources"] = {"preflight_memory": True, "gpu_memory_gb": budget_gb}
    study_file.write_text(yaml.safe_dump(raw))
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    result = run_nas("study", "run", str(study_file), "--storage", url)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name="tiny", storage=url).trials
    assert len(trials) == 6 and not [
        t for t in trials if t.state != TrialState.COMPLETE and t.state != TrialState.FAIL
    ]
    budget = int(budget_gb * 2**30)
    predicted = [t for t in trials if t.user_attrs.get(REASON) == "oom_predicted"]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert predicted and complete and len(predicted) + len(complete) == 6
    assert trials[0] in complete and trials[0].user_attrs[ESTIMATE] == baseline
    for t in predicted:
        assert t.state == TrialState.FAIL
        assert t.user_attrs[ESTIMATE] > t.user_attrs[BUDGET] == budget
        assert "> budget" in t.user_attrs["fail_message"]
        assert "resources.gpu_memory_gb" in t.user_attrs["fail_message"]
        assert "node" not in t.user_attrs  # decided in the driver: no worker ever saw it
    for t in complete:
        assert t.user_attrs[ESTIMATE] <= budget
        assert t.user_attrs[PEAK] > 0 and t.user_attrs["memory_kind"] == "cpu_max_rss"
    # not retried: no trial repeats the params of a predicted one, nothing is queued
    predicted_params = [t.params for t in predicted]
    assert all(predicted_params.count(p) == 1 for p in predicted_params)
    assert not [t for t in trials if "requeued_from" in t.user_attrs]
    assert result.stderr.count("FAIL oom_predicted") == len(predicted)
    status = run_nas("study", "status", "tiny", "--storage", url)
    assert f"oom_predicted {len(predicted)}" in status.stdout
    assert f"trial {predicted[0].number} oom_predicted: estimate" in status.stdout
    assert "COMPLETE, cpu_max_rss" in status.stdout


def test_a_teacher_in_the_loop_is_added_to_the_estimate_only_when_a_layer_loss_is_on(
    tiny_study,
) -> None:  # type: ignore[no-untyped-def]
    from nas.params import StudentShape
    from nas.students import load_source
    from nas.students.cost import teacher_in_loop_memory

    space = str(Path(__file__).resolve().parents[2] / "search_spaces" / "quickstart_layers.yaml")
    off = {**TINY_BASELINE, "hidden_weight": 0.0, "hidden_kind": "mse", "pkd_weight": 0.0,
           "relation_weight": 0.0, "relation_heads": 4, "layer_map": "uniform"}  # fmt: skip
    prepared = prepare(load_study(tiny_study(search_space=space, baseline=off)))
    plain = trial_estimate(prepared, prepared.space.trial_params(off), "cpu", bf16=False)
    on = {**off, "hidden_weight": 1.0, "relation_weight": 1.0}
    beside = trial_estimate(prepared, prepared.space.trial_params(on), "cpu", bf16=False)
    teacher = load_source(prepared.teacher)
    shape = StudentShape(teacher.n_layers, teacher.n_heads, teacher.dim, teacher.ffn_dim)
    n_teacher = sum(t.numel() for t in teacher.tensors.values())
    batch = min(32, len(prepared.train_features))
    longest = int(prepared.train_features.lengths().max())
    added = teacher_in_loop_memory(shape, n_teacher, 32, batch, longest, attention="eager")
    assert beside == plain + added and added.weights >= 4 * n_teacher > 0
    # with every weight at 0 the trial trains on cached logits: nothing is added
    assert trial_estimate(prepared, prepared.space.trial_params(off), "cpu", False) == plain
