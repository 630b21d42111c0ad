"""On a GPU: a trial that fits, a real out-of-memory trial, and the pre-flight refusing the same
trial unbuilt — each with nas's memory estimate beside what CUDA measured; and a real OOM whose
memory is back on the device once it is caught. Skipped without CUDA.

It prints the table BENCHMARKS.md records:

    python -m pytest -q -s -m gpu tests/test_gpu_memory.py
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import FrozenTrial, TrialState
from support.cli_run import run_nas

from nas.progress import human_bytes
from nas.study.record import BUDGET, ESTIMATE, PEAK, REASON

pytestmark = pytest.mark.gpu

# ~300M parameters; activations grow with the batch: ~0.8 MB per token in bf16 (24 layers)
WIDE = {
    "n_layers": 24,
    "n_heads": 16,
    "hidden_size": 1024,
    "ffn_dim": 4096,
    "temperature": 2.0,
    "alpha": 0.5,
    "learning_rate": 1e-4,
    "warmup_ratio": 0.0,
    "weight_decay": 0.01,
    "epochs": 1,
}
# batch sizes (of up to 128 tokens): ~12 GB; ~110 GB, near an H200's 139 GiB; ~0.4 TB
FITS, NEAR, TOO_BIG = 64, 1024, 4096
DATA = {
    "max_seq_length": 128,
    "doc_stride": 64,
    "max_query_length": 32,
    "synthetic": {"n_train": 20000, "n_eval": 200, "n_test": 200, "seed": 0},
}


def space_file(folder: Path) -> Path:
    space = {k: {"type": "categorical", "choices": [v]} for k, v in WIDE.items()}
    space["batch_size"] = {"type": "categorical", "choices": [FITS, NEAR, TOO_BIG]}
    path = folder / "wide_space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def run_one(tiny_study, folder: Path, name: str, batch: int, **resources: object) -> FrozenTrial:  # type: ignore[no-untyped-def]
    study_file = tiny_study(
        name=name,
        n_trials=1,
        search_space=str(space_file(folder)),
        baseline={**WIDE, "batch_size": batch},
        data=DATA,
        training={"max_steps": 3, "eval_batch_size": 64},
        resources={"cpu": 1, "gpu": 1, **resources},
        thresholds=[],
    )
    url = f"sqlite:///{folder / 'nas.db'}"
    result = run_nas("study", "run", str(study_file), "--storage", url)
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stderr[-600:])
    return optuna.load_study(study_name=name, storage=url).trials[0]


def test_real_oom_and_the_preflight_on_the_gpu(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    total = torch.cuda.get_device_properties(0).total_memory
    fits = run_one(tiny_study, tmp_path, "fits", FITS)
    assert fits.state == TrialState.COMPLETE, fits.user_attrs
    assert fits.user_attrs["memory_kind"] == "cuda_max_allocated"

    near = run_one(tiny_study, tmp_path, "near", NEAR)  # either outcome is recorded
    assert near.state == TrialState.COMPLETE or near.user_attrs[REASON] == "oom"
    oom = run_one(tiny_study, tmp_path, "oom", TOO_BIG)
    assert oom.state == TrialState.FAIL and oom.user_attrs[REASON] == "oom", oom.user_attrs
    assert oom.user_attrs[ESTIMATE] > total  # the estimate saw it coming
    assert oom.user_attrs[PEAK] > 0  # allocated when it ran out

    predicted = run_one(tiny_study, tmp_path, "predicted", TOO_BIG, preflight_memory=True)
    assert predicted.user_attrs[REASON] == "oom_predicted", predicted.user_attrs
    assert predicted.user_attrs[BUDGET] == total  # gpu 1: the whole device
    assert PEAK not in predicted.user_attrs  # never built, never trained

    print(f"\nGPU: {torch.cuda.get_device_name(0)}, {human_bytes(total)}")
    print("| trial | batch | state | measured peak | nas estimate | peak / estimate |")
    print("|---|---|---|---|---|---|")
    runs = (
        ("fits", fits, FITS),
        ("near", near, NEAR),
        ("oom", oom, TOO_BIG),
        ("predicted", predicted, TOO_BIG),
    )
    for name, trial, batch in runs:
        attrs = trial.user_attrs
        state = trial.state.name + (f" {attrs[REASON]}" if REASON in attrs else "")
        peak, estimate = attrs.get(PEAK), attrs[ESTIMATE]
        ratio = f"{peak / estimate:.2f}" if peak else "-"
        peak_text = human_bytes(peak) if peak else "-"
        print(f"| {name} | {batch} | {state} | {peak_text} | {human_bytes(estimate)} | {ratio} |")


def test_a_real_oom_gives_the_memory_back_after_the_handler() -> None:
    """A real CUDA out-of-memory error while a quarter of the device is held (the trial's model):
    once ``catch_out_of_memory`` has raised ``OutOfMemory``, that quarter is freed and returned
    to the device, not kept alive by the traceback."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from nas.errors import OutOfMemory
    from nas.trial.loop import catch_out_of_memory

    total = torch.cuda.get_device_properties(0).total_memory
    allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()

    def trial() -> None:
        held = torch.empty(total // 4, dtype=torch.uint8, device="cuda")  # noqa: F841 - the model
        torch.empty(2 * total, dtype=torch.uint8, device="cuda")  # more than the device has

    with pytest.raises(OutOfMemory, match="CUDA out of memory"):
        catch_out_of_memory(trial)
    assert torch.cuda.memory_allocated() == allocated
    assert torch.cuda.memory_reserved() <= reserved  # empty_cache handed the blocks back
