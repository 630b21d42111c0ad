"""The memory pre-flight: a trial's estimated training memory against the memory it may use.

Every trial records ``memory_estimate_bytes`` (``nas.students.cost.estimate_training_memory`` for
its shape, batch size and the longest training feature) beside the ``peak_memory_bytes`` it
measured. With ``resources.preflight_memory`` a trial whose estimate exceeds its budget fails as
``oom_predicted`` before its student is built. Where the check runs depends on where the budget
is known:

* ``resources.gpu_memory_gb`` set: in the driver, right after sampling (:class:`DriverPreflight`).
  The trial never reaches a Ray worker, so it holds no GPU slot and costs no worker start.
* otherwise: on the worker (:func:`worker_budget`), where the GPU is: its
  ``torch.cuda.get_device_properties(...).total_memory`` times the trial's GPU fraction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from nas.config import ResourcesConfig, StudyConfig
from nas.errors import InvalidConfig, PredictedOutOfMemory
from nas.params import StudentShape, TrialParams
from nas.progress import human_bytes
from nas.students import (
    MemoryEstimate,
    estimate_family_memory,
    estimate_training_memory,
    teacher_in_loop_memory,
)
from nas.study import BUDGET, ESTIMATE

if TYPE_CHECKING:
    from nas.trial import Prepared


@dataclass(frozen=True)
class Budget:
    """The memory one trial may use, and where that number came from (for messages)."""

    bytes: int
    source: str


def trial_estimate(
    prepared: Prepared, params: TrialParams, device_type: str, bf16: bool
) -> MemoryEstimate:
    """Estimated memory of one training step of the student ``params`` describe.

    The sequence length is the longest training feature (batches are padded to their longest,
    so the worst batch holds it); a batch holds at most every training feature. With any
    intermediate-layer loss on, the teacher running beside the student is added
    (:func:`nas.students.teacher_in_loop_memory`). On CUDA
    attention is fused (sdpa) and dropout masks are bool; on CPU attention keeps its ``seq^2``
    scores and masks are float.
    """
    from nas.students import load_source

    source = load_source(prepared.source)  # cached per process; build_student reads it too
    cuda = device_type == "cuda"
    sets = [prepared.train_features]
    if prepared.transfer_features is not None:  # a transfer set's rows share the batches
        sets.append(prepared.transfer_features)
    count = sum(len(f) for f in sets)
    longest = max(int(f.lengths().max()) for f in sets)
    batch = min(params.recipe.batch_size, count)
    vocab = params.pruned_vocab or source.vocab_size  # pruning keeps at most K rows
    if not isinstance(params.shape, StudentShape):
        return estimate_family_memory(
            params.shape, vocab, prepared.num_labels, batch, longest, amp=bf16
        )
    attention = "sdpa" if cuda else "eager"
    student = estimate_training_memory(
        params.shape,
        vocab,
        source.max_positions,
        prepared.task.kind,
        prepared.num_labels,
        batch,
        longest,
        amp=bf16,
        attention=attention,
        mask_bytes=1 if cuda else 4,
    )
    losses = params.losses
    if losses is None or not losses.on:
        return student
    teacher = load_source(prepared.teacher)
    shape = StudentShape(teacher.n_layers, teacher.n_heads, teacher.dim, teacher.ffn_dim)
    n_teacher = sum(t.numel() for t in teacher.tensors.values())
    beside = teacher_in_loop_memory(
        shape,
        n_teacher,
        params.shape.hidden_size,
        batch,
        longest,
        amp=bf16,
        relations=losses.relation_weight > 0,
        attention=attention,
    )
    return student + beside


def check_fits(estimate: MemoryEstimate, budget: Budget) -> None:
    """Raise ``PredictedOutOfMemory`` when ``estimate`` exceeds ``budget``."""
    if estimate.total > budget.bytes:
        raise PredictedOutOfMemory(
            f"estimated {human_bytes(estimate.total)} > budget {human_bytes(budget.bytes)} "
            f"({budget.source}); not built or trained. Estimate: {estimate.human()}"
        )


def configured_budget(resources: ResourcesConfig) -> Budget | None:
    """The budget ``resources.gpu_memory_gb`` names, if any."""
    if resources.gpu_memory_gb is None:
        return None
    gib = resources.gpu_memory_gb
    return Budget(int(gib * 2**30), f"resources.gpu_memory_gb = {gib:.4g}")


def worker_budget(resources: ResourcesConfig, device: torch.device) -> Budget | None:
    """The budget a worker checks: None unless the pre-flight is on and no ``gpu_memory_gb``
    names it (the driver checked that one); else this GPU's memory times the trial's share."""
    if not resources.preflight_memory or resources.gpu_memory_gb is not None:
        return None
    if device.type != "cuda":
        raise InvalidConfig(
            f"resources.preflight_memory: the worker trains on {device}, which has no GPU "
            "memory to check against; set resources.gpu_memory_gb or train on CUDA"
        )
    total = torch.cuda.get_device_properties(device).total_memory
    share = min(resources.gpu, 1.0)  # a trial on several GPUs still trains on one
    source = f"{torch.cuda.get_device_name(device)}: {human_bytes(total)} x gpu {share:g}"
    return Budget(int(total * share), source)


class DriverPreflight:
    """The check the driver runs after sampling, when ``resources.gpu_memory_gb`` is set."""

    def __init__(self, prepared: Prepared, budget: Budget) -> None:
        config: StudyConfig = prepared.config
        device = config.training.device
        # "auto" trains on CUDA exactly when Ray gives the trial a GPU
        cuda = config.resources.gpu > 0 if device == "auto" else device.startswith("cuda")
        self.prepared, self.budget = prepared, budget
        self.device_type = "cuda" if cuda else "cpu"
        # the driver cannot ask the workers' GPUs; "auto" assumes bf16 (every GPU since Ampere)
        self.bf16 = cuda and config.training.bf16 != "off"

    def check(self, params: Mapping[str, Any]) -> tuple[dict[str, int], str | None]:
        """The memory attributes of the trial of sampled ``params`` (the flat mapping the
        driver hands to Ray), and why it must not run (None: it may)."""
        typed = self.prepared.space.trial_params(params)
        estimate = trial_estimate(self.prepared, typed, self.device_type, self.bf16)
        attrs = {ESTIMATE: estimate.total, BUDGET: self.budget.bytes}
        try:
            check_fits(estimate, self.budget)
        except PredictedOutOfMemory as exc:
            return attrs, str(exc)
        return attrs, None


def driver_preflight(prepared: Prepared) -> DriverPreflight | None:
    """The driver's pre-flight for this study, or None when the workers check (or nobody)."""
    resources = prepared.config.resources
    budget = configured_budget(resources)
    if not resources.preflight_memory or budget is None:
        return None
    return DriverPreflight(prepared, budget)
