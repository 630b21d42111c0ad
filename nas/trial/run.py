"""One trial: (study config, params) -> a trained, evaluated, saved student and its Metrics.

This module knows neither Ray nor Optuna. It raises typed errors (``OutOfMemory``,
``Diverged``, ``InvalidConfig``) that the Ray worker and searcher (``nas.search``) map to trial
states.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import nas
from nas import objectives
from nas.cache import write_folder_atomically
from nas.config import DataConfig, StudyConfig
from nas.errors import ConfigError, DataError
from nas.feasibility import describe_thresholds, no_answer_scores, resolve_thresholds
from nas.layer_plan import check_layer_space
from nas.params import TrialParams
from nas.search_space import SearchSpace, load_search_space
from nas.students import (
    ActivationStats,
    build_trial_student,
    calibration_stats,
    check_vocabulary_size,
    count_parameters,
    load_source,
    save_trial_student,
)
from nas.tasks import Features, Splits, Task
from nas.trial.data import encoded, load_splits
from nas.trial.intermediate import LayerDistiller
from nas.trial.loop import (
    Distillation,
    catch_out_of_memory,
    check_finite_logits,
    check_finite_weights,
    measure_latency,
    predict,
    resolve_device,
    train,
)
from nas.trial.student_inputs import StudentInputs, student_inputs
from nas.trial.teacher import (
    cached_logits,
    check_same_tokenization,
    check_teacher_labels,
    ensure_teacher,
    load_teacher,
    load_tokenizer,
    teacher_shape,
)
from nas.trial.transfer import study_transfer_set

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Metrics:
    """What a finished trial reports."""

    task: dict[str, float]  # evaluate()'s metrics: exact, f1, HasAns_exact... or accuracy, mcc
    params: int  # sum(p.numel()) over the whole student, embeddings included
    train_time_s: float
    samples_per_s: float
    peak_memory_mb: float
    memory_kind: str  # cuda_max_allocated or cpu_max_rss
    steps: int
    eval_time_s: float
    device: str
    latency_ms: float | None = None  # median batch-1 inference latency on the trial's device
    peak_memory_bytes: int | None = None  # peak_memory_mb in bytes (see memory_kind)
    extra: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> float:
        """The value of an objective or threshold metric by name."""
        if name == objectives.PARAMS:
            return float(self.params)
        if name == objectives.LATENCY_MS:
            if self.latency_ms is None:
                raise KeyError("latency_ms was not measured")
            return self.latency_ms
        return float(self.task[name])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RungResult:
    """A student's evaluation at a rung of its training (MO-ASHA pruning, ``pruning:``): what
    the driver ranks it by. ``params`` and ``latency_ms`` do not change with training."""

    rung: int  # the index in pruning.rungs
    step: int  # optimizer steps taken
    total_steps: int  # the trial's whole training
    task: dict[str, float]  # the task's metrics on the selection split, as Metrics.task
    params: int
    latency_ms: float | None = None  # measured at the first rung when an objective

    @property
    def epoch_fraction(self) -> float:
        """How much of its training the trial had done: steps taken over total steps."""
        return self.step / self.total_steps

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RungReporter = Callable[[RungResult], None]


@dataclass(frozen=True)
class Prepared:
    """Everything trials of one study share, loaded once per process."""

    config: StudyConfig
    task: Task
    splits: Splits
    data: DataConfig
    tokenizer: Any
    train_features: Features
    eval_features: Features
    teacher_logits: np.ndarray  # QA (train tokens, 2); classification (train features, labels)
    num_labels: int
    source: str  # student source checkpoint, resolved
    teacher: str  # teacher checkpoint, resolved
    space: SearchSpace
    # QA: the official metrics of answering "no answer" everywhere on the selection split
    no_answer: dict[str, float] | None = None
    calibration: ActivationStats | None = None  # the source's activations: how slicing ranks
    # the transfer set (study's `transfer:`), labels UNLABELLED, and its teacher logits
    transfer_features: Features | None = None
    transfer_logits: np.ndarray | None = None
    transfer_examples: list[Any] | None = None  # the transfer set's texts (re-tokenized when a
    # student prunes its vocabulary)

    def training_set(self, inputs: StudentInputs | None = None) -> tuple[Features, np.ndarray]:
        """What students train on: the labelled features, then the transfer set's (trained
        on their soft labels alone), with the teacher logits of both; ``inputs``: a student's
        own tokenization of the same examples (a pruned vocabulary)."""
        train = self.train_features if inputs is None else inputs.train
        transfer = self.transfer_features if inputs is None else inputs.transfer
        if transfer is None or self.transfer_logits is None:
            return train, self.teacher_logits
        features = concat_features(train, transfer)
        logits = np.concatenate([self.teacher_logits, self.transfer_logits])
        return features, logits


def objective_names(config: StudyConfig, task: Task) -> list[str]:
    """The study's objectives by name; default: the task metric and the parameter count."""
    return objectives.objective_names(config, task.primary_metric)


def prepare(config: StudyConfig, progress: Progress | None = None) -> Prepared:
    """Load data, tokenizer and teacher logits (computing and caching what is missing)."""
    space = load_search_space(config.paths.search_space)
    task, splits, data = load_splits(config)
    no_answer = no_answer_scores(splits.eval) if task.kind == "qa" else None
    config = dataclasses.replace(config, thresholds=resolve_thresholds(config, no_answer))
    _check_objectives(config, task)  # a typo in a metric name fails before the teacher trains
    if progress:
        progress(describe_thresholds(config.thresholds, no_answer))
    num_labels = task.num_labels(splits)
    source = config.paths.student_source
    # checked before the teacher trains, unless the source is made by that training
    tokenizer = load_tokenizer(source, "student source") if Path(source).exists() else None
    check_student_space(config, space, task, tokenizer)
    teacher = ensure_teacher(config, progress, (task, splits, data))
    check_teacher_labels(teacher, task.kind, splits.label_names)
    check_layer_space(space, teacher_shape(teacher))  # before any logits, neighbours, copies
    if tokenizer is None:
        tokenizer = load_tokenizer(source, "student source")
        check_student_space(config, space, task, tokenizer)
    check_same_tokenization(load_tokenizer(teacher, "teacher"), tokenizer, teacher, source)
    cache = Path(config.cache_dir)
    if progress:
        progress(
            f"data: {len(splits.train)} train / {len(splits.eval)} eval examples "
            f"({splits.description})"
        )
    train_f = encoded(task, splits.train, tokenizer, data, cache)
    eval_f = encoded(task, splits.eval, tokenizer, data, cache)
    logits = cached_logits(
        cache,
        teacher,
        train_f,
        task.kind,
        num_labels,
        _pad_id(tokenizer),
        config.training.device,
        config.training.eval_batch_size,
        progress,
    )
    transfer_f, transfer_logits, texts = None, None, None
    if config.transfer is not None:
        texts = study_transfer_set(config, task, splits.train, data, tokenizer, progress)
        if not texts:
            raise DataError(
                f"{config.source_file}: the transfer set is empty (no unlabelled texts and no "
                "augmented copies differ from their originals); give transfer.file, "
                "transfer.unlabelled_rest or more transfer.augment.copies"
            )
        if progress:
            progress(f"transfer set: {len(texts)} texts, labelled by the teacher once (cached)")
        transfer_f = encoded(task, texts, tokenizer, data, cache)
        transfer_logits = cached_logits(
            cache,
            teacher,
            transfer_f,
            task.kind,
            num_labels,
            _pad_id(tokenizer),
            config.training.device,
            config.training.eval_batch_size,
            progress,
        )
    calibration = calibration_stats(
        load_source(source),
        train_f,
        config.calibration,
        cache,
        device=resolve_device(config.training.device),
        batch_size=config.training.eval_batch_size,
        where=config.source_file,
        progress=progress,
    )
    return Prepared(
        config,
        task,
        splits,
        data,
        tokenizer,
        train_f,
        eval_f,
        logits,
        num_labels,
        source,
        teacher,
        space,
        no_answer=no_answer,
        calibration=calibration,
        transfer_features=transfer_f,
        transfer_logits=transfer_logits,
        transfer_examples=None if texts is None else list(texts),
    )


def check_student_space(
    config: StudyConfig, space: SearchSpace, task: Task, tokenizer: Any | None
) -> None:
    """What the space can sample must be buildable for this task and tokenizer: no
    non-transformer family or pruned vocabulary for question answering, and every
    ``vocab_size`` between the tokenizer's special tokens and its size (when ``tokenizer`` is
    given)."""
    where = space.source_file
    others = [f for f in space.family_choices() if f != "distilbert"]
    if task.kind == "qa" and others:
        raise ConfigError(
            f"{where}: family {others[0]} is a text classifier, and {config.source_file} is a "
            f"question-answering study ({task.name}); search family: distilbert only"
        )
    for name, values in space.vocab_sizes().items():
        if task.kind == "qa" and any(values):
            raise ConfigError(
                f"{where}: {name}: vocabulary pruning is for classification students; drop it "
                f"from a question-answering study ({task.name})"
            )
        for value in values if tokenizer is not None else ():
            if value:
                check_vocabulary_size(tokenizer, int(value), f"{where}: {name}")


def concat_features(first: Features, second: Features) -> Features:
    """Classification features of ``first`` then ``second`` (one feature per example)."""
    if first.example_index is not None or second.example_index is not None:
        raise ValueError("concat_features joins classification features only, not QA windows")
    starts = np.concatenate([first.starts[:-1], np.asarray(second.starts) + first.starts[-1]])
    return Features(
        ids=np.concatenate([first.ids, second.ids]),
        type_ids=np.concatenate([first.type_ids, second.type_ids]),
        starts=starts.astype(np.int64),
        labels=np.concatenate([first.labels, second.labels]),
    )


def run_trial(
    prepared: Prepared,
    params: TrialParams,
    out_dir: Path | None = None,
    progress: Progress | None = None,
    provenance: Mapping[str, Any] | None = None,
    deadline: float | None = None,
    seed: int | None = None,
    score_test: bool = False,
    on_rung: RungReporter | None = None,
) -> Metrics:
    """Build, distill, evaluate and (with ``out_dir``) save one student.

    ``params`` is the typed value the search space gives (``prepared.space.trial_params``).
    ``deadline`` (a ``time.time()`` value) ends training with ``TrialTimeout`` when passed.
    ``seed`` replaces ``training.seed`` (``nas study confirm``'s re-trainings); ``score_test``
    also scores the student on the test split (``Metrics.extra["test"]``), for runs that
    nothing is selected from. ``on_rung``: the student is evaluated on the selection split at
    each of the study's ``pruning.rungs`` and the result handed to it (the Ray worker reports
    it to the driver, which may stop the trial by raising from it); without it no rung is
    evaluated (``nas trial run``). The rung evaluations count in ``train_time_s``.
    Out of memory anywhere in the trial (the move to the device, training, evaluation, latency)
    raises ``OutOfMemory`` once the trial's memory is released; weights or eval logits that are
    not finite raise ``Diverged``.
    """
    return catch_out_of_memory(
        lambda: _run_trial(
            prepared, params, out_dir, progress, provenance, deadline, seed, score_test, on_rung
        )
    )


def _run_trial(
    prepared: Prepared,
    params: TrialParams,
    out_dir: Path | None,
    progress: Progress | None,
    provenance: Mapping[str, Any] | None,
    deadline: float | None,
    seed: int | None = None,
    score_test: bool = False,
    on_rung: RungReporter | None = None,
) -> Metrics:
    config, task = prepared.config, prepared.task
    if seed is not None:
        config = dataclasses.replace(
            config, training=dataclasses.replace(config.training, seed=seed)
        )
    torch.manual_seed(config.training.seed)
    inputs = student_inputs(prepared, params.pruned_vocab)
    model = build_trial_student(
        params,
        prepared.source,
        task.kind,
        prepared.num_labels,
        calibration=prepared.calibration,
        vocab=inputs.vocab,
    )
    n_params = count_parameters(model)
    if progress:
        vocab = "" if inputs.vocab is None else f", vocabulary {inputs.vocab.size:,} tokens"
        progress(f"student: {params.family}, {n_params:,} parameters{vocab}")
    pad_id = _pad_id(inputs.tokenizer)
    recipe = params.recipe
    layers = layer_distiller(prepared, params, model, inputs)
    features, soft = prepared.training_set(inputs)
    at_rung = (
        None if on_rung is None else rung_evaluator(prepared, model, n_params, on_rung, inputs)
    )
    result = train(
        model,
        features,
        recipe,
        config.training,
        task.kind,
        pad_id,
        seed=config.training.seed,
        distill=Distillation(soft, recipe.alpha, recipe.temperature, layers),
        progress=progress,
        deadline=deadline,
        faults=True,
        rungs=config.pruning.rungs if at_rung is not None else (),
        on_rung=at_rung,
        what="student training",
    )
    check_finite_weights(model)
    device = resolve_device(config.training.device)
    start = time.perf_counter()
    scores = score_selection(prepared, model, pad_id, device, faults=True, features=inputs.eval)
    eval_time = time.perf_counter() - start
    # every student, objective or not: the front shows it beside the parameter count
    latency = measure_latency(model, inputs.eval, task.kind, pad_id, device, faults=True)
    metrics = Metrics(
        task={k: float(v) for k, v in scores.items()},
        params=n_params,
        train_time_s=result.train_time_s,
        samples_per_s=result.samples_per_s,
        peak_memory_mb=result.peak_memory_mb,
        memory_kind=result.memory_kind,
        steps=result.steps,
        eval_time_s=eval_time,
        device=str(device),
        latency_ms=latency,
        peak_memory_bytes=result.peak_memory_bytes,
        extra={"final_loss": result.final_loss, "train_samples": result.samples},
    )
    if score_test:
        features = inputs.test(prepared)
        test_logits = predict(
            model, features, task.kind, pad_id, config.training.eval_batch_size, device
        )
        check_finite_logits(test_logits)
        metrics.extra["test"] = evaluate_logits(
            prepared, prepared.splits.test, features, test_logits
        )
        metrics.extra["seed"] = config.training.seed
    if out_dir is not None:
        save_student(model, prepared, params, metrics, out_dir, provenance or {}, inputs)
    return metrics


def rung_evaluator(
    prepared: Prepared,
    model: torch.nn.Module,
    n_params: int,
    report: RungReporter,
    inputs: StudentInputs | None = None,
) -> Callable[[int, int, int], None]:
    """The loop's rung hook: score ``model`` on the selection split (as the end of the trial
    does), then ``report`` the result; latency, when an objective, is measured once."""
    config, task = prepared.config, prepared.task
    inputs = inputs or student_inputs(prepared, None)
    device = resolve_device(config.training.device)
    pad_id = _pad_id(inputs.tokenizer)
    latency: list[float] = []

    def at_rung(rung: int, step: int, total: int) -> None:
        scores = score_selection(prepared, model, pad_id, device, features=inputs.eval)
        if not latency and objectives.LATENCY_MS in objective_names(config, task):
            latency.append(measure_latency(model, inputs.eval, task.kind, pad_id, device))
        report(RungResult(rung, step, total, scores, n_params, latency[0] if latency else None))

    return at_rung


def layer_distiller(
    prepared: Prepared,
    params: TrialParams,
    model: torch.nn.Module,
    inputs: StudentInputs | None = None,
) -> LayerDistiller | None:
    """The trial's intermediate losses with the teacher loaded for the loop; None when every
    weight is 0 or the space defines none (the cached-logit path: no teacher is loaded)."""
    if params.losses is None or not params.losses.on:
        return None
    if inputs is not None and inputs.vocab is not None:
        raise ConfigError(
            f"{prepared.space.source_file}: vocab_size = {inputs.vocab.size} with intermediate "
            "layer losses: the teacher in the loop reads the whole vocabulary's ids; set "
            "vocab_size: 0 or every layer-loss weight to 0"
        )
    teacher = load_teacher(prepared.teacher, prepared.task.kind, prepared.num_labels)
    return LayerDistiller(params.losses, model, teacher, prepared.teacher)


def test_features(prepared: Prepared) -> Features:
    """The test split, tokenized and cached like the others; only scoring the front reads it."""
    cache = Path(prepared.config.cache_dir)
    return encoded(prepared.task, prepared.splits.test, prepared.tokenizer, prepared.data, cache)


def score_selection(
    prepared: Prepared,
    model: torch.nn.Module,
    pad_id: int,
    device: torch.device,
    faults: bool = False,
    features: Features | None = None,
) -> dict[str, float]:
    """``model``'s metrics on the selection split (the end of a trial and each rung); NaN or
    inf logits raise ``Diverged``. ``faults``: the test fault injection may fire here;
    ``features``: the split in the student's own tokenization (default the study's)."""
    config = prepared.config
    features = prepared.eval_features if features is None else features
    logits = predict(
        model,
        features,
        prepared.task.kind,
        pad_id,
        config.training.eval_batch_size,
        device,
        faults=faults,
    )
    check_finite_logits(logits)
    return evaluate_logits(prepared, prepared.splits.eval, features, logits)


def evaluate_logits(
    prepared: Prepared, examples: list[Any], features: Features, logits: np.ndarray
) -> dict[str, float]:
    """The task's metrics of ``logits`` over ``features`` of ``examples`` (any split)."""
    scores = prepared.task.evaluate(examples, features, logits, prepared.data)
    return {k: float(v) for k, v in scores.items()}


def save_student(
    model: torch.nn.Module,
    prepared: Prepared,
    params: TrialParams,
    metrics: Metrics,
    out_dir: Path,
    provenance: Mapping[str, Any],
    inputs: StudentInputs | None = None,
) -> None:
    """Write the student (a Hugging Face folder for DistilBERT, ``nas_family.json`` and
    safetensors for the other families), the tokenizer it reads (the reduced one when it
    prunes its vocabulary) and ``nas.json``."""
    tokenizer = prepared.tokenizer if inputs is None else inputs.tokenizer
    record = {
        "nas_version": nas.__version__,
        "study": prepared.config.name,
        "study_file": prepared.config.source_file,
        "task": prepared.task.name,
        "teacher": prepared.teacher,
        "student_source": prepared.source,
        "data": prepared.splits.description,
        "params": params.as_dict(),
        "family": params.family,
        "vocabulary": None if inputs is None or inputs.vocab is None else inputs.vocab.size,
        "metrics": metrics.as_dict(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        **provenance,
    }

    def write(tmp: Path) -> None:
        save_trial_student(model, tmp)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "nas.json").write_text(json.dumps(record, indent=2, default=str))

    write_folder_atomically(out_dir, write)


def _check_objectives(config: StudyConfig, task: Task) -> None:
    """Objective and threshold names must be metrics the task reports (checked after a dry
    evaluation would be too late: a typo must fail before the first trial)."""
    known = set(task_metric_names(task)) | set(objectives.COSTS)
    names = objective_names(config, task) + [t.metric for t in config.thresholds]
    for name in names:
        if name not in known:
            raise ConfigError(
                f"{config.source_file}: objective/threshold metric '{name}' is not reported by "
                f"task {task.name}; use one of {sorted(known)}"
            )


def task_metric_names(task: Task) -> list[str]:
    if task.kind == "qa":
        return [
            "exact",
            "f1",
            "HasAns_exact",
            "HasAns_f1",
            "NoAns_exact",
            "NoAns_f1",
            "best_exact",
            "best_f1",
        ]
    return ["accuracy", "macro_f1", "mcc"]


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    return 0 if pad is None else int(pad)
