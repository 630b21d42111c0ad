"""The training loop and batched inference.

Distillation runs on teacher logits computed once and cached (see ``nas.trial.teacher``): a
training step runs the student alone. Batches are padded to their own longest feature (dynamic
padding), and with ``length_grouped`` features of similar length share a batch.

Out of memory: these functions let torch's errors propagate; :func:`catch_out_of_memory` turns
one raised anywhere in a call (a whole trial, the teacher's training or pass) into a typed error
once the call's memory is released. Testing aids raise a real ``torch.cuda.OutOfMemoryError``
on any machine:

- ``NAS_FAULT_OOM_ABOVE_PARAMS=N``: a student (never the teacher) with more than N parameters
  runs out of memory at ``NAS_FAULT_OOM_AT``: ``step`` (its first training step, the default),
  ``to_device`` (moving it to the device), ``eval`` (its first evaluation batch) or ``latency``
  (the latency measurement).
- ``NAS_FAULT_OOM_TEACHER``: ``train`` (the teacher's training) or ``pass`` (its logit pass).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from nas.config import TrainingConfig
from nas.errors import (
    Diverged,
    OutOfMemory,
    TrialTimeout,
    forget_frames,
    is_out_of_memory,
    out_of_memory_message,
)
from nas.progress import Ticker
from nas.tasks import Features, TaskKind
from nas.trial.intermediate import LayerDistiller
from nas.trial.losses import MASKED_LOGIT, distill_loss, mixed_distill_loss, qa_distill_loss

FAULT_OOM_ENV = "NAS_FAULT_OOM_ABOVE_PARAMS"
FAULT_OOM_AT_ENV = "NAS_FAULT_OOM_AT"
FAULT_OOM_TEACHER_ENV = "NAS_FAULT_OOM_TEACHER"
FaultSite = Literal["step", "to_device", "eval", "latency"]
FAULT_SITES: tuple[FaultSite, ...] = ("step", "to_device", "eval", "latency")
Progress = Callable[[str], None]
# on_rung(rung index, steps taken, total steps): an evaluation point of MO-ASHA pruning
RungHook = Callable[[int, int, int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class TrainResult:
    steps: int
    samples: int
    train_time_s: float
    samples_per_s: float
    final_loss: float
    peak_memory_mb: float
    memory_kind: str  # "cuda_max_allocated" or "cpu_max_rss" (whole process)
    peak_memory_bytes: int  # the same peak in bytes


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def use_bf16(config: TrainingConfig, device: torch.device) -> bool:
    if device.type != "cuda" or config.bf16 == "off":
        return False
    return config.bf16 == "on" or torch.cuda.is_bf16_supported()


# ----------------------------------------------------------------------------- batching


def batch_indices(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, grouped: bool
) -> list[np.ndarray]:
    """One epoch of shuffled batches; grouped: similar lengths together, batch order shuffled."""
    order = rng.permutation(len(lengths))
    if grouped:
        chunk = batch_size * 50  # sort within chunks so batches stay random across the epoch
        parts = [order[i : i + chunk] for i in range(0, len(order), chunk)]
        order = np.concatenate([p[np.argsort(-lengths[p], kind="stable")] for p in parts])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if grouped:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(
    features: Features,
    index: np.ndarray,
    pad_id: int,
    kind: TaskKind,
    teacher: np.ndarray | None = None,
    with_type_ids: bool = False,
) -> dict[str, torch.Tensor]:
    """Pad the features ``index`` to their longest; gather their labels and teacher logits."""
    lengths = features.lengths()[index]
    width = int(lengths.max())
    ids = np.full((len(index), width), pad_id, dtype=np.int64)  # (batch, seq_len)
    type_ids = np.zeros((len(index), width), dtype=np.int64)
    mask = np.zeros((len(index), width), dtype=np.int64)
    soft = None
    if teacher is not None:
        shape = (len(index), width, 2) if kind == "qa" else (len(index), teacher.shape[1])
        soft = np.full(shape, MASKED_LOGIT, dtype=np.float32)
    for row, i in enumerate(index):
        start, end = int(features.starts[i]), int(features.starts[i + 1])
        ids[row, : end - start] = features.ids[start:end]
        type_ids[row, : end - start] = features.type_ids[start:end]
        mask[row, : end - start] = 1
        if soft is not None and teacher is not None and kind == "qa":
            soft[row, : end - start] = teacher[start:end]  # one row per token
        elif soft is not None and teacher is not None:
            soft[row] = teacher[i]  # one row per feature, whatever its length
    batch = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(np.asarray(features.labels[index], dtype=np.int64)),
    }
    if with_type_ids:
        batch["token_type_ids"] = torch.from_numpy(type_ids)
    if soft is not None:
        batch["teacher"] = torch.from_numpy(soft)
    return batch


def _output_logits(out: Any, kind: TaskKind) -> torch.Tensor:
    """A model output's logits: QA ``(batch, seq_len, 2)``, classification ``(batch, labels)``
    (the non-transformer families return that tensor itself)."""
    if isinstance(out, torch.Tensor):
        return out
    if kind == "qa":
        return torch.stack([out.start_logits, out.end_logits], dim=-1)
    return out.logits


def accepts_type_ids(model: nn.Module) -> bool:
    """BERT models take segment ids; DistilBERT does not."""
    return "token_type_ids" in inspect.signature(model.forward).parameters


def student_logits(model: nn.Module, batch: Mapping[str, torch.Tensor], kind: TaskKind) -> Any:
    """Forward pass; QA returns ``(batch, seq_len, 2)``, classification ``(batch, labels)``."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "token_type_ids" in batch:
        inputs["token_type_ids"] = batch["token_type_ids"]
    return _output_logits(model(**inputs), kind)


# ----------------------------------------------------------------------------- training


class Recipe(Protocol):
    """What :func:`train` reads of a training recipe. Both recipes nas trains with provide it:
    a student's :class:`nas.params.TrainingRecipe` and the teacher's ``teacher.train``
    (:class:`nas.config.TeacherTrainConfig`)."""

    @property
    def learning_rate(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def warmup_ratio(self) -> float: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def epochs(self) -> float: ...


@dataclass(frozen=True)
class Distillation:
    """The soft targets of a student's training: the teacher's cached logits, and how they
    weigh (a student's ``alpha`` and ``temperature``, :class:`nas.params.TrainingRecipe`)."""

    logits: np.ndarray  # QA (train tokens, 2); classification (train features, labels)
    alpha: float  # weight of the soft loss; 0 trains on the hard labels alone
    temperature: float  # softening temperature of the KL soft loss
    # the intermediate-layer losses and the teacher that runs in the loop; None: logits only
    layers: LayerDistiller | None = None


def train(
    model: nn.Module,
    features: Features,
    recipe: Recipe,
    config: TrainingConfig,
    kind: TaskKind,
    pad_id: int,
    *,
    seed: int,
    distill: Distillation | None = None,
    progress: Progress | None = None,
    deadline: float | None = None,
    faults: bool = False,
    on_epoch: Callable[[int], None] | None = None,
    rungs: Sequence[float] = (),
    on_rung: RungHook | None = None,
    what: str = "training",
) -> TrainResult:
    """Train ``model`` in place by ``recipe``, seeded by ``seed`` (the study config's).

    With ``distill`` the student learns from the cached teacher logits too; without it (as when
    fine-tuning a teacher) from the hard labels alone. Features labelled below 0 (a transfer
    set's) train on the soft loss alone. With ``distill.layers`` the teacher runs beside the
    student in every step (no gradients) and the layer losses are added.
    Raises ``Diverged`` for a NaN/inf loss; out-of-memory errors propagate (see
    :func:`catch_out_of_memory`). ``faults``: a student trial, where the ``NAS_FAULT_OOM_*``
    testing aids apply. ``what`` names the work in progress (a bar on a terminal, else a line a
    minute). ``on_epoch(n)`` runs after each whole epoch ``n`` (1, 2, ...) and after
    the last step; the model is back in training mode when it returns. ``on_rung(k, step,
    total)`` runs once the step of rung ``k`` is taken (:func:`rung_steps` of ``rungs``, the
    fractions of ``pruning.rungs``), likewise; it may raise to end the training there.
    """
    device = resolve_device(config.device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    batch_size = recipe.batch_size
    teacher = None if distill is None else distill.logits
    alpha = 0.0 if distill is None else distill.alpha
    temperature = 1.0 if distill is None else distill.temperature  # unused at alpha 0
    layers = None if distill is None else distill.layers
    # transfer rows (label < 0) need the soft targets whatever alpha is
    mixed = kind == "classification" and bool((np.asarray(features.labels) < 0).any())
    if mixed and teacher is None:
        raise ValueError("features with transfer rows (label < 0) need the teacher's logits")
    per_epoch = math.ceil(len(features) / batch_size)
    total = max(1, math.ceil(per_epoch * float(recipe.epochs)))
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    at_step = {step: k for k, step in rung_steps(total, rungs).items()} if on_rung else {}

    if faults:
        inject_oom_fault(model, "to_device")
    model.to(device)
    model.train()
    if layers is not None:
        layers.to(device)
    extra = None if layers is None else layers.projection
    optimizer = _optimizer(model, float(recipe.learning_rate), float(recipe.weight_decay), extra)
    warmup = int(total * float(recipe.warmup_ratio))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    bf16 = use_bf16(config, device)
    type_ids = accepts_type_ids(model)
    # the batch carries segment ids when the student or a BERT teacher in the loop takes them
    collate_type_ids = type_ids or (layers is not None and layers.teacher_type_ids)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def logit_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        soft = batch.get("teacher")
        if kind == "qa":
            mask = batch["attention_mask"].bool()
            soft = logits.detach() if soft is None else soft
            return qa_distill_loss(
                logits, soft, batch["labels"], mask, alpha, temperature, config.loss
            )
        soft = logits.detach() if soft is None else soft
        if mixed:
            return mixed_distill_loss(
                logits, soft, batch["labels"], alpha, temperature, config.loss
            )
        return distill_loss(logits, soft, batch["labels"], alpha, temperature, config.loss)

    def loss_of(batch: dict[str, torch.Tensor], qkv: Any) -> torch.Tensor:
        if layers is None:  # logits only: the student alone, as fast as without layer losses
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = student_logits(model, batch, kind).float()
            return logit_loss(logits, batch)
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if type_ids:
            inputs["token_type_ids"] = batch["token_type_ids"]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(**inputs, output_hidden_states=True)
        logits = _output_logits(out, kind).float()
        t_states = layers.teacher_states(batch, bf16)
        extra_loss = layers.loss(out.hidden_states, t_states, qkv, batch["attention_mask"])
        return logit_loss(logits, batch) + extra_loss

    step, samples, loss_value = 0, 0, float("nan")
    start = time.perf_counter()
    ticker = Ticker(progress, what, total, "steps", every=config.log_every)
    soft_targets = teacher if (alpha or mixed) else None
    clipped = list(model.parameters()) + ([] if extra is None else list(extra.parameters()))
    hooks = contextlib.nullcontext(None) if layers is None else layers.capturing(model)
    with hooks as qkv:
        for batch_index in _steps(features.lengths(), batch_size, rng, config, total):
            batch = collate(features, batch_index, pad_id, kind, soft_targets, collate_type_ids)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            if faults and step == 0:
                inject_oom_fault(model, "step")
            loss = loss_of(batch, qkv)
            if deadline is not None and time.time() > deadline:
                raise TrialTimeout(f"stopped at step {step} of {total}: past the trial timeout")
            if not torch.isfinite(loss):
                raise Diverged(f"loss became {loss.item()} at step {step + 1} of {total}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(clipped, config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            samples += len(batch_index)
            loss_value = float(loss.detach())
            ticker.update(1, f"loss {loss_value:.4f}")
            if on_epoch and (step % per_epoch == 0 or step == total):
                on_epoch(math.ceil(step / per_epoch))
                model.train()
            if on_rung is not None and step in at_step:
                on_rung(at_step[step], step, total)
                model.train()
    ticker.close()
    elapsed = time.perf_counter() - start
    peak, memory_kind = peak_memory_bytes(device)
    rate = samples / max(elapsed, 1e-9)
    return TrainResult(step, samples, elapsed, rate, loss_value, peak / 2**20, memory_kind, peak)


def rung_steps(total: int, rungs: Sequence[float]) -> dict[int, int]:
    """The optimizer step of each rung index, for a training of ``total`` steps: rung ``k``
    after ``ceil(rungs[k] * total)`` steps. A rung that lands on the last step (the end of
    training is evaluated anyway) or on a step an earlier rung took is left out, so a short
    training has fewer rungs; their indices stay those of ``rungs``."""
    out: dict[int, int] = {}
    for k, fraction in enumerate(rungs):
        step = max(1, math.ceil(fraction * total - 1e-9))  # 1/3 of 9 steps is 3, not 4
        if step < total and step not in out.values():
            out[k] = step
    return out


def _steps(
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    config: TrainingConfig,
    total: int,
) -> Iterator[np.ndarray]:
    done = 0
    while True:
        for index in batch_indices(lengths, batch_size, rng, config.length_grouped):
            yield index
            done += 1
            if done >= total:
                return


def _optimizer(
    model: nn.Module, lr: float, weight_decay: float, extra: nn.Module | None = None
) -> torch.optim.AdamW:
    """AdamW over ``model`` (and ``extra``: a layer loss's projection); biases and LayerNorm
    weights get no weight decay."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    named = list(model.named_parameters())
    if extra is not None:
        named += [(f"extra.{n}", p) for n, p in extra.named_parameters()]
    for name, p in named:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


# ----------------------------------------------------------------------------- out of memory


def catch_out_of_memory(
    run: Callable[[], T], error: Callable[[str], Exception] = OutOfMemory
) -> T:
    """``run()``; an out-of-memory error raised anywhere in it becomes ``error(first line)``.

    The memory is released after the handler has ended: by then the failed call's frames (the
    model, the optimizer, the batch, the activations) are gone and the original error, kept as
    the cause, holds no frames, so ``gc.collect()`` and ``torch.cuda.empty_cache()`` hand the
    memory back to the device for the next trial (or another process sharing the GPU).
    """
    failure: Exception | None = None
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are caught
        if not is_out_of_memory(exc):
            raise
        failure = error(out_of_memory_message(exc))
        failure.__cause__ = forget_frames(exc)
    release_memory()
    raise failure


def release_memory() -> None:
    """Collect garbage, then return the CUDA allocator's cached blocks to the device."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def inject_oom_fault(model: nn.Module, site: FaultSite) -> None:
    """Testing aid (students only): ``NAS_FAULT_OOM_ABOVE_PARAMS=N`` makes a student with more
    than N parameters raise a real ``torch.cuda.OutOfMemoryError`` at the site named by
    ``NAS_FAULT_OOM_AT`` (default ``step``)."""
    limit = os.environ.get(FAULT_OOM_ENV)
    if not limit:
        return
    at = os.environ.get(FAULT_OOM_AT_ENV) or "step"
    if at not in FAULT_SITES:
        raise ValueError(f"{FAULT_OOM_AT_ENV}={at!r}; use one of {', '.join(FAULT_SITES)}")
    count = sum(p.numel() for p in model.parameters())
    if at == site and count > int(limit):
        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory (injected by {FAULT_OOM_ENV}={limit} at {site}: student has "
            f"{count:,} parameters)"
        )


def inject_teacher_oom_fault(phase: Literal["train", "pass"]) -> None:
    """Testing aid: ``NAS_FAULT_OOM_TEACHER=train`` (or ``pass``) makes the teacher's training
    (or its logit pass) raise a real ``torch.cuda.OutOfMemoryError``."""
    if os.environ.get(FAULT_OOM_TEACHER_ENV) == phase:
        raise torch.cuda.OutOfMemoryError(
            f"CUDA out of memory (injected by {FAULT_OOM_TEACHER_ENV}={phase})"
        )


def check_finite_weights(model: nn.Module) -> None:
    """Raise ``Diverged`` when a parameter holds NaN or inf (a student that diverged without a
    NaN loss would otherwise be scored, and an all-NaN QA student scores the no-answer rate)."""
    for name, p in model.named_parameters():
        finite = torch.isfinite(p.detach())
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise Diverged(
                f"parameter {name} has {bad:,} of {p.numel():,} values NaN/inf after training"
            )


def check_finite_logits(logits: np.ndarray) -> None:
    """Raise ``Diverged`` when eval logits hold NaN or inf, before they are scored."""
    finite = np.isfinite(logits)
    if not finite.all():
        bad = int((~finite).sum())
        raise Diverged(f"{bad:,} of {logits.size:,} eval logits are NaN/inf")


def peak_memory_bytes(device: torch.device) -> tuple[int, str]:
    """Peak memory and its kind: on CUDA ``torch.cuda.max_memory_allocated`` since the last
    ``reset_peak_memory_stats`` (tensors only: no CUDA context, no allocator cache); on CPU the
    whole process's peak resident set (``ru_maxrss``), data and earlier trials of the process
    included."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return int(rss if sys.platform == "darwin" else rss * 1024), "cpu_max_rss"


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """:func:`peak_memory_bytes` in MiB."""
    peak, kind = peak_memory_bytes(device)
    return peak / 2**20, kind


# ----------------------------------------------------------------------------- inference


@torch.no_grad()
def predict(
    model: nn.Module,
    features: Features,
    kind: TaskKind,
    pad_id: int,
    batch_size: int,
    device: torch.device,
    progress: Progress | None = None,
    faults: bool = False,
    what: str = "inference",
) -> np.ndarray:
    """Logits for every feature: QA ``(total_tokens, 2)`` aligned with ``features.ids``,
    classification ``(n_features, labels)``. Batches run longest first. ``faults``: a student,
    where ``NAS_FAULT_OOM_AT=eval`` applies. ``what`` names the work for ``progress``."""
    model.to(device)
    model.eval()
    lengths = features.lengths()
    order = np.argsort(-lengths, kind="stable")
    out: np.ndarray | None = None
    ticker = Ticker(progress, what, math.ceil(len(order) / batch_size), "batches")
    for b, i in enumerate(range(0, len(order), batch_size)):
        index = order[i : i + batch_size]
        batch = collate(features, index, pad_id, kind, with_type_ids=accepts_type_ids(model))
        batch = {k: v.to(device) for k, v in batch.items()}
        if faults and b == 0:
            inject_oom_fault(model, "eval")
        logits = student_logits(model, batch, kind).float().cpu().numpy()
        if out is None:
            shape = (len(features.ids), 2) if kind == "qa" else (len(features), logits.shape[-1])
            out = np.zeros(shape, dtype=np.float32)
        for row, f in enumerate(index):
            if kind == "qa":
                start, end = int(features.starts[f]), int(features.starts[f + 1])
                out[start:end] = logits[row, : end - start]
            else:
                out[f] = logits[row]
        ticker.update()
    ticker.close()
    assert out is not None, "predict() needs at least one feature"
    return out


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    features: Features,
    kind: TaskKind,
    pad_id: int,
    device: torch.device,
    repeats: int = 20,
    faults: bool = False,
) -> float:
    """Median milliseconds of a batch-1 forward pass on a feature of median length.
    ``faults``: a student, where ``NAS_FAULT_OOM_AT=latency`` applies."""
    model.to(device)
    model.eval()
    lengths = features.lengths()
    median = int(np.argsort(lengths)[len(lengths) // 2])
    batch = collate(features, np.array([median]), pad_id, kind)
    inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}
    if faults:
        inject_oom_fault(model, "latency")
    times = []
    for i in range(repeats + 3):  # 3 warm-up passes
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(**inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)
