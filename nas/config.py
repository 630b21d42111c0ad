"""Study configs: frozen, typed dataclasses loaded from YAML. A typo is an error.

Every error names the file, the key, the value received and what to write instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import re
import reprlib
import types
import typing
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from nas.errors import ConfigError
from nas.safe_yaml import load_yaml

QA_TASKS = ("squad_v2", "synthetic_qa")  # tasks whose data settings include windows and strides
MAX_NAME_LENGTH = 200  # study names: a key in the storage (Optuna allows 512), never a path
MAX_SHOWN = 200  # characters of a value an error message shows
SEED_MAX = 2**32 - 1  # NumPy's (and so Optuna's samplers') largest seed


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the generated ``synthetic_qa`` data."""

    n_train: int = 3000
    n_eval: int = 400  # the selection split: what trials are scored on
    n_test: int = 400  # the test split: what the front is reported on, never seen by a trial
    seed: int = 0
    unanswerable_fraction: float = 0.5  # share of questions whose answer is not in the context


@dataclass(frozen=True)
class DataConfig:
    """Where a task's data comes from and how it is tokenized.

    Three splits: ``train`` (students learn from it), the **selection** split ``eval_*``
    (every trial is scored on it; the sampler and the front see only these scores) and the
    **test** split ``test_*`` (no trial sees it; the front's students are scored on it once,
    when the study finishes). The test split is taken first, then the selection split from
    what remains of the training data, unless files are given for them.
    """

    hub_name: str | None = None  # datasets hub name; default: the task's own (e.g. squad_v2)
    train_file: str | None = None  # local file; relative paths are relative to the study file
    eval_file: str | None = None  # the selection split as its own file
    # QA from a single file: hold out the last N articles of train_file for selection.
    eval_articles: int | None = None
    # Classification: hold out this fraction (seeded) of the training rows for selection.
    eval_fraction: float | None = None
    test_file: str | None = None  # the test split as its own file (e.g. the dataset's dev set)
    # QA from a single file: hold out the last N articles of train_file for the test split
    # (taken before eval_articles, so the two never share an article).
    test_articles: int | None = None
    # Classification: hold out this fraction (seeded) of the training rows for the test split.
    test_fraction: float | None = None
    max_train_samples: int | None = None  # examples, taken after a seeded shuffle
    max_eval_samples: int | None = None  # examples, the first N in file order
    max_test_samples: int | None = None  # examples, the first N in file order
    max_seq_length: int = 384
    doc_stride: int = 128  # QA: token overlap between windows of one long context
    max_query_length: int = 64  # QA: questions are truncated to this many tokens
    n_best: int = 20  # QA decoding: start/end candidates considered
    max_answer_length: int = 30  # QA decoding: longest span in tokens
    text_column: str | None = None  # CSV/JSONL: column with the text
    text_pair_column: str | None = None  # CSV/JSONL: second sentence, if any
    label_column: str | None = None  # CSV/JSONL: column with the label
    label_names: tuple[str, ...] | None = None  # fixes label order; default from the task/data
    seed: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class TeacherTrainConfig:
    """How ``nas teacher train`` fine-tunes a teacher when none exists yet."""

    init: str | None = None  # pretrained checkpoint to start from; None: random init from `arch`
    arch: dict[str, Any] = field(default_factory=dict)  # BertConfig fields for random init
    # Random init without a tokenizer at hand (offline): build a WordPiece vocabulary from the
    # N most frequent words of the train split (plus characters, so nothing maps to [UNK]).
    vocab_from_data: int | None = None
    epochs: float = 3.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    # Score the selection split after every epoch and keep the best epoch's weights (recorded in
    # the teacher's teacher.json), rather than the last epoch's.
    keep_best: bool = False


@dataclass(frozen=True)
class TeacherConfig:
    path: str  # fine-tuned teacher: hub name or folder (relative to the study file)
    # Train the teacher into `path` if that folder does not exist (offline studies).
    train: TeacherTrainConfig | None = None


@dataclass(frozen=True)
class TrainingConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    loss: Literal["kl", "mse"] = "kl"  # soft loss: KL·T² (Hinton) or MSE on logits (Tang et al.)
    grad_clip: float = 1.0
    bf16: Literal["auto", "on", "off"] = "auto"  # autocast on CUDA when the GPU supports it
    eval_batch_size: int = 64
    max_steps: int | None = None  # cap on optimizer steps (quick runs); None: full epochs
    # steps between progress lines where no bar is drawn (logs, CI); a line a minute as well
    log_every: int = 50
    length_grouped: bool = True  # batch features of similar length together (less padding)


@dataclass(frozen=True)
class Objective:
    name: str  # a task metric (exact, f1, accuracy, mcc, macro_f1...), `params` or `latency_ms`
    direction: Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Threshold:
    """A feasibility constraint: the trial is infeasible when the metric is below its bound.

    Give exactly one of ``min`` (a fixed bound) or ``above_no_answer`` (QA: a margin over what
    answering "no answer" to every question scores on the selection split, computed when the
    study starts; ``{metric: exact, above_no_answer: 5}`` on a split with 52.1 % unanswerable
    questions means ``exact >= 57.1``). :func:`nas.feasibility.resolve_thresholds` turns the
    second form into the first.
    """

    metric: str
    min: float | None = None
    above_no_answer: float | None = None

    @property
    def bound(self) -> float:
        """The resolved lower bound (``min``); resolve ``above_no_answer`` thresholds first."""
        if self.min is None:
            raise ValueError(f"threshold on {self.metric} is unresolved (above_no_answer)")
        return self.min


@dataclass(frozen=True)
class SamplerConfig:
    name: Literal["tpe", "nsga2", "gp", "random"] = "tpe"
    seed: int = 0


@dataclass(frozen=True)
class PruningConfig:
    """The study's ``pruning:`` section: MO-ASHA over rungs of each trial's training
    (``nas.study.pruning`` decides; ``docs/architecture.md``, "Pruning in a run").

    Rung ``k`` is evaluated once the trial has taken ``ceil(rungs[k] * total_steps)`` of its
    optimizer steps (``total_steps``: its epochs times batches per epoch, capped by
    ``training.max_steps``); a rung that lands on the last step, or on a step an earlier rung
    took, is skipped: the end of training is always the last evaluation.
    """

    enabled: bool = False  # off by default: every trial trains to the end
    eta: int = 3  # reduction factor: about 1 in eta trials continues past each rung
    # where trials are evaluated and may stop: fractions of their optimizer steps, increasing,
    # each in (0, 1)
    rungs: tuple[float, ...] = (1 / 9, 1 / 3)
    min_rung: int = 0  # rungs below this index record their values but stop no trial
    grace_trials: int = 1  # a rung stops no trial until it holds this many records


@dataclass(frozen=True)
class ResourcesConfig:
    """What one trial asks Ray for, and the memory pre-flight."""

    cpu: float = 1.0
    gpu: float = 0.0  # per trial; a fraction (0.5: two trials share a GPU) or whole GPUs
    # Fail a trial as `oom_predicted`, without building it, when its estimated training memory
    # (nas.students.cost.estimate_training_memory) exceeds the memory it may use: gpu_memory_gb if
    # set (checked by the driver: the trial never reaches a worker), else the worker GPU's total
    # memory times `gpu` (checked on the worker, before the student is built).
    preflight_memory: bool = False
    gpu_memory_gb: float | None = None  # GiB (2**30 bytes) one trial may use


@dataclass(frozen=True)
class CalibrationConfig:
    """Training features run through the student source to rank what students keep
    (``nas.students.calibration``): hidden channels, FFN neurons."""

    # a seeded choice from the train features; None: 256, or all of them when fewer
    n_features: int | None = None
    max_tokens: int = 128  # each feature's first tokens (QA windows are long)
    seed: int = 0


@dataclass(frozen=True)
class AugmentConfig:
    """Tang et al. (2019) augmented copies of the training texts (``nas.trial.augment``)."""

    p_mask: float = 0.1  # a word becomes the mask token
    p_replace: float = 0.1  # a word becomes one of its `neighbours` nearest embedding tokens
    p_ngram: float = 0.25  # a copy is cut to an n-gram of its words, n uniform in 1..5
    copies: int = 10  # draws per example (the paper's n_iter); duplicates are dropped
    neighbours: int = 10  # replacement candidates per word, nearest first


@dataclass(frozen=True)
class TransferConfig:
    """Texts the teacher labels for the students beyond the labelled training split
    (classification only). Transfer examples train on the teacher's soft labels alone; they
    are labelled once, cached by content, and never evaluated on."""

    file: str | None = None  # unlabelled in-domain texts: .txt (one per line), .csv/.tsv/.jsonl
    text_column: str | None = None  # the file's text column (default: sentence, text, ...)
    text_pair_column: str | None = None  # the file's second-sentence column, for pair tasks
    # the training split's texts beyond data.max_train_samples, without their labels
    unlabelled_rest: bool = False
    # at most this many unlabelled texts (file and rest together): a seeded sample, in order,
    # taken before augmenting; caps the teacher's labelling and every trial's epoch
    max_unlabelled: int | None = None
    augment: AugmentConfig | None = None  # augmented copies; none without this key
    augment_from: Literal["labelled", "all"] = "labelled"  # copies of these examples
    seed: int | None = None  # the augmentation's seed; default data.seed


@dataclass(frozen=True)
class StudyConfig:
    name: str
    task: str
    teacher: TeacherConfig
    search_space: str  # path to a search_spaces/*.yaml file, relative to the study file
    student_source: str = "distilbert-base-uncased"  # DistilBERT or BERT checkpoint to slice
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    objectives: tuple[Objective, ...] = ()  # default: task metric max, params min
    thresholds: tuple[Threshold, ...] = ()
    baseline: dict[str, Any] | None = None  # params enqueued first and tagged `baseline`
    # hypervolume reference point by objective name, e.g. {exact: 50, params: 66.4e6};
    # unset objectives default to the threshold (task metric) and the baseline's value
    reference_point: dict[str, float] | None = None
    n_trials: int = 20
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    storage: str | None = None
    artifact_root: str | None = None
    cache_dir: str = (
        ".nas/cache"  # tokenized data, teacher logits, trained teachers (cwd-relative)
    )
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    trial_timeout_s: float | None = None
    source_file: str = ""  # set by the loader: the YAML this came from
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    transfer: TransferConfig | None = None  # a teacher-labelled transfer set; none by default
    pruning: PruningConfig = field(default_factory=PruningConfig)  # MO-ASHA; off by default

    def __post_init__(self) -> None:
        # Not a field: the snapshot a study stores (dataclasses.asdict) keeps the paths as
        # written, so drift detection and from_snapshot see what the user wrote.
        object.__setattr__(self, "_paths", StudyPaths.of(self))

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled (a Ray worker's copy): the paths are resolved again where the files are,
        as the worker sees them (a teacher the driver trained since exists now)."""
        self.__dict__.update(state)
        object.__setattr__(self, "_paths", StudyPaths.of(self))

    @property
    def paths(self) -> StudyPaths:
        """The config's path settings, resolved once when the config was built."""
        paths: StudyPaths = self.__dict__["_paths"]
        return paths


@dataclass(frozen=True)
class StudyPaths:
    """Every path setting of a study, resolved against the study file's folder.

    ``{cache_dir}`` in a value stands for the study's cache folder. A checkpoint setting that
    looks like a hub name (``org/name``, not an existing path, see :func:`resolve_path`) passes
    through as it is; data files are always paths.
    """

    search_space: str  # the search space file
    student_source: str  # folder or hub name
    teacher: str  # teacher.path: folder or hub name
    teacher_init: str | None  # teacher.train.init: folder or hub name; None without one
    train_file: str | None  # data.*_file: files (DataError names the missing one at load)
    eval_file: str | None
    test_file: str | None
    transfer_file: str | None  # transfer.file; None without one

    @classmethod
    def of(cls, config: StudyConfig) -> StudyPaths:
        def path(value: str, hub_ok: bool = True) -> str:
            value = value.replace("{cache_dir}", config.cache_dir)
            return resolve_path(value, config.source_file, hub_ok)

        def file(value: str | None) -> str | None:
            return None if value is None else path(value, hub_ok=False)

        train = config.teacher.train
        init = None if train is None or train.init is None else path(train.init)
        return cls(
            search_space=path(config.search_space),
            student_source=path(config.student_source),
            teacher=path(config.teacher.path),
            teacher_init=init,
            train_file=file(config.data.train_file),
            eval_file=file(config.data.eval_file),
            test_file=file(config.data.test_file),
            transfer_file=file(None if config.transfer is None else config.transfer.file),
        )


def resolve_path(value: str, source_file: str, hub_ok: bool = True) -> str:
    """Resolve ``value`` against the folder of ``source_file`` when it is or looks like a path."""
    p = Path(value).expanduser()
    if p.is_absolute() or not source_file:
        return str(p)
    local = Path(source_file).parent / p
    looks_like_path = value.startswith((".", "~")) or local.exists() or value.count("/") > 1
    return str(local) if looks_like_path or not hub_ok else value


def load_study(path: str | Path) -> StudyConfig:
    """Read a study YAML into a :class:`StudyConfig`; raises ConfigError naming file and key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: study file not found; pass a file such as studies/quickstart.yaml"
        )
    raw = load_yaml(path.read_text(), str(path))
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys at the top, got {type(raw).__name__}"
        )
    raw = {**raw, "source_file": str(path.resolve())}
    config = from_dict(StudyConfig, raw, str(path), "")
    check_study(config, str(path))
    # The cache is relative to where nas runs (like the default sqlite:///nas.db); made absolute
    # here because Ray workers run in other folders.
    return dataclasses.replace(config, cache_dir=str(Path(config.cache_dir).resolve()))


def shown(value: Any) -> str:
    """``repr(value)`` for an error message: at most :data:`MAX_SHOWN` characters, in bounded
    time however large or deep the value is (``reprlib`` stops at a few items and levels)."""
    try:
        text = _REPR.repr(value)
    except ValueError:  # an int with more digits than Python converts to text
        text = f"<an integer of {value.bit_length()} bits>"
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 80, 80, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def check_name(name: str, where: str) -> None:
    """A study name is a key, never a path: refuse what could leave or break a folder."""
    problem = None
    if not name.strip():
        problem = "is empty"
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"has {len(name)} characters, over {MAX_NAME_LENGTH}"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator"
    elif ".." in name:
        problem = "contains '..'"
    elif any(unicodedata.category(c) == "Cc" for c in name):
        problem = "contains a control character"
    if problem:
        shown = repr(name if len(name) <= 60 else name[:60] + "...")
        raise ConfigError(
            f"{where}: name = {shown} {problem}; a study name is a key, not a path: write it "
            f"without / \\ .. or control characters, in at most {MAX_NAME_LENGTH} characters "
            "(e.g. name: sst2_small)"
        )


def folder_name(name: str) -> str:
    """A file-system-safe form of a study name: itself when it is only ``[A-Za-z0-9._-]``,
    else the sanitised form (cut to 64 characters) plus a short hash that keeps names apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if safe == name:
        return name
    return f"{safe[:64]}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class Range:
    """Where a numeric setting may lie; ``None`` leaves that side open."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False  # low itself is outside (> low)
    open_high: bool = False

    def holds(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below

    def text(self) -> str:
        if self.high is None and (self.low, self.open_low) == (1, False):
            return "positive"  # the integer counts
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {_number(self.low)}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"


def _number(value: float | None) -> str:
    """``3``, ``0.5``, ``1e-05``; an integer as itself, however long (shown cut)."""
    if isinstance(value, int) or value is None:
        return shown(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


_COUNT = Range(1)
_POSITIVE = Range(0, open_low=True)
_FRACTION = Range(0, 1)
_OPEN_FRACTION = Range(0, 1, open_low=True, open_high=True)
_SEED = Range(0, SEED_MAX)
# Every numeric setting and its range, by dotted key (one home: check_study reads it).
RANGES: dict[str, Range] = {
    "n_trials": _COUNT,
    "trial_timeout_s": _POSITIVE,
    "data.eval_articles": _COUNT,
    "data.eval_fraction": _OPEN_FRACTION,
    "data.test_articles": _COUNT,
    "data.test_fraction": _OPEN_FRACTION,
    "data.max_train_samples": _COUNT,
    "data.max_eval_samples": _COUNT,
    "data.max_test_samples": _COUNT,
    "data.max_seq_length": _COUNT,
    "data.doc_stride": _COUNT,
    "data.max_query_length": _COUNT,
    "data.n_best": _COUNT,
    "data.max_answer_length": _COUNT,
    "data.seed": _SEED,
    "data.synthetic.n_train": _COUNT,
    "data.synthetic.n_eval": _COUNT,
    "data.synthetic.n_test": Range(0),
    "data.synthetic.seed": _SEED,
    "data.synthetic.unanswerable_fraction": _FRACTION,
    "teacher.train.vocab_from_data": _COUNT,
    "teacher.train.epochs": _POSITIVE,
    "teacher.train.learning_rate": Range(0, 1, open_low=True),
    "teacher.train.batch_size": _COUNT,
    "teacher.train.warmup_ratio": _FRACTION,
    "teacher.train.weight_decay": _FRACTION,
    "teacher.train.seed": _SEED,
    "training.seed": _SEED,
    "training.grad_clip": Range(0),  # 0: no clipping
    "training.eval_batch_size": _COUNT,
    "training.max_steps": _COUNT,
    "training.log_every": _COUNT,
    "sampler.seed": _SEED,
    "resources.cpu": _POSITIVE,
    "resources.gpu": Range(0),
    "resources.gpu_memory_gb": _POSITIVE,
    "calibration.n_features": _COUNT,
    "calibration.max_tokens": _COUNT,
    "calibration.seed": _SEED,
    "transfer.seed": _SEED,
    "transfer.max_unlabelled": _COUNT,
    "transfer.augment.p_mask": _FRACTION,
    "transfer.augment.p_replace": _FRACTION,
    "transfer.augment.p_ngram": _FRACTION,
    "transfer.augment.copies": _COUNT,
    "transfer.augment.neighbours": _COUNT,
    "pruning.eta": Range(2),  # 2 halves the trials at each rung, 3 keeps a third
    "pruning.min_rung": Range(0),
    "pruning.grace_trials": _COUNT,
}


def check_study(config: StudyConfig, where: str) -> None:
    """Checks across keys that types alone cannot express."""
    check_name(config.name, where)
    for key, allowed in RANGES.items():
        _check_range(config, key, allowed, where)
    data = config.data
    if config.task in QA_TASKS:
        _check_qa_lengths(data, where)
    _check_thresholds(config, where)
    names = [o.name for o in config.objectives]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: objectives repeat a name: {shown(names)}")
    _check_resources(config.resources, where)
    if config.transfer is not None:
        _check_transfer(config, config.transfer, where)
    check_pruning(config.pruning, [o.name for o in config.objectives], where)


def check_pruning(pruning: PruningConfig, objectives: list[str], where: str) -> None:
    """The rungs, min_rung against them, and an objective that training changes
    (``objectives``: the study's names; empty means the defaults, which have one). The ranges
    of eta, min_rung and grace_trials are in :data:`RANGES`."""
    from nas.objectives import COSTS  # nas.objectives imports this module

    _check_rungs(pruning.rungs, where)
    if not 0 <= pruning.min_rung < len(pruning.rungs):
        raise ConfigError(
            f"{where}: pruning.min_rung = {pruning.min_rung} must be an index of "
            f"pruning.rungs (0 to {len(pruning.rungs) - 1}); write 0 to stop from the first"
        )
    if pruning.enabled and objectives and all(n in COSTS for n in objectives):
        raise ConfigError(
            f"{where}: pruning ranks trials mid-training, but the objectives {objectives} are "
            "costs that training does not change; add a task metric objective (e.g. "
            "accuracy) or set pruning.enabled: false"
        )


def _check_rungs(rungs: tuple[float, ...], where: str) -> None:
    if not rungs:
        raise ConfigError(
            f"{where}: pruning.rungs is empty; write fractions of the training, e.g. "
            "[0.111, 0.333]"
        )
    for a, b in zip(rungs, rungs[1:], strict=False):
        if b <= a:
            raise ConfigError(
                f"{where}: pruning.rungs {list(rungs)} must increase ({b:g} after {a:g}); "
                "sort them and drop repeats"
            )
    for r in rungs:
        if not 0 < r < 1:
            fix = (
                "leave 1.0 out: the end of training is always the last evaluation"
                if r == 1
                else "a rung is a fraction of the training length, in (0, 1)"
            )
            raise ConfigError(f"{where}: pruning.rungs has {r:g}; {fix}")


def _check_transfer(config: StudyConfig, transfer: TransferConfig, where: str) -> None:
    """A transfer set is classification only, makes something, and its file reads as texts
    (checked here, before any data, teacher or storage: a bad file writes nothing)."""
    if config.task in QA_TASKS:
        raise ConfigError(
            f"{where}: transfer: task {config.task} is extractive QA; transfer sets are for "
            "classification tasks only (SQuAD transfer examples are not supported): remove the "
            "transfer section"
        )
    if transfer.file is None and not transfer.unlabelled_rest and transfer.augment is None:
        raise ConfigError(
            f"{where}: transfer makes no examples; set transfer.file, transfer.unlabelled_rest: "
            "true or transfer.augment (e.g. augment: {copies: 10}), or remove the section"
        )
    if transfer.unlabelled_rest and config.data.max_train_samples is None:
        raise ConfigError(
            f"{where}: transfer.unlabelled_rest needs data.max_train_samples (the labelled "
            "examples; the rest of the training split is unlabelled); set it, or drop "
            "unlabelled_rest"
        )
    if transfer.augment is not None:
        augment = transfer.augment
        if augment.p_mask + augment.p_replace > 1.0:
            raise ConfigError(
                f"{where}: transfer.augment.p_mask + p_replace = "
                f"{augment.p_mask + augment.p_replace:g} > 1; a word is masked or replaced, "
                "never both: lower one of them"
            )
    if config.paths.transfer_file is not None:
        from nas.tasks import read_texts  # reads the whole file: every error before any work

        read_texts(
            config.paths.transfer_file,
            "transfer.file",
            transfer.text_column,
            transfer.text_pair_column,
        )


def _check_range(config: StudyConfig, key: str, allowed: Range, where: str) -> None:
    node: Any = config
    *parents, leaf = key.split(".")
    for part in parents:
        node = getattr(node, part)
        if node is None:  # e.g. no teacher.train
            return
    value = getattr(node, leaf)
    if value is None or allowed.holds(value):
        return
    default = _default(type(node), leaf)
    fix = "none" if default is None else _number(default)
    raise ConfigError(
        f"{where}: {key} = {_number(value)} must be {allowed.text()}; write such a number or "
        f"leave it out for the default ({fix})"
    )


def _default(cls: type, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _check_thresholds(config: StudyConfig, where: str) -> None:
    for i, t in enumerate(config.thresholds):
        key = f"thresholds[{i}] ({t.metric})"
        if (t.min is None) == (t.above_no_answer is None):
            raise ConfigError(
                f"{where}: {key} needs exactly one of min (a fixed bound) or above_no_answer "
                "(QA: a margin over the no-answer score), e.g. {metric: exact, above_no_answer: 5}"
            )
        if t.above_no_answer is not None and config.task not in QA_TASKS:
            raise ConfigError(
                f"{where}: {key} uses above_no_answer, which only QA tasks have ({config.task} "
                "is not one); write min: instead"
            )


def _check_resources(resources: ResourcesConfig, where: str) -> None:
    if resources.gpu > 1 and not resources.gpu.is_integer():
        raise ConfigError(
            f"{where}: resources.gpu = {resources.gpu:g}; Ray gives a trial a fraction of one "
            "GPU or whole GPUs: write e.g. 0.5, 1 or 2"
        )
    memory = resources.gpu_memory_gb
    if resources.preflight_memory and memory is None and resources.gpu == 0:
        raise ConfigError(
            f"{where}: resources.preflight_memory needs the memory a trial may use; set "
            "resources.gpu > 0 (the worker's GPU memory times gpu) or resources.gpu_memory_gb"
        )


def _check_qa_lengths(data: DataConfig, where: str) -> None:
    if data.doc_stride >= data.max_seq_length:
        raise ConfigError(
            f"{where}: data.doc_stride = {data.doc_stride} must be below data.max_seq_length = "
            f"{data.max_seq_length}; the usual pair is 128 and 384"
        )
    if data.max_query_length >= data.max_seq_length - 2:
        raise ConfigError(
            f"{where}: data.max_query_length = {data.max_query_length} leaves no room for the "
            f"context in data.max_seq_length = {data.max_seq_length}"
        )


# ----------------------------------------------------------------------------- generic loading


def from_dict(cls: type, raw: Any, where: str, prefix: str) -> Any:
    """Build dataclass ``cls`` from ``raw``, checking keys and types recursively."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: '{prefix.rstrip('.') or 'top level'}' must be a mapping, got {shown(raw)}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        allowed = ", ".join(n for n in fields if n != "source_file")
        key = shown(f"{prefix}{unknown[0]}")[1:-1]
        raise ConfigError(f"{where}: unknown key '{key}'; allowed: {allowed}")
    required = [
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    for name in required:
        if name not in raw:
            raise ConfigError(f"{where}: missing required key '{prefix}{name}'")
    values = {k: _coerce(hints[k], v, where, f"{prefix}{k}") for k, v in raw.items()}
    return cls(**values)


def _coerce(tp: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(option, value, where, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {key} = {shown(value)} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, f"{key}.")  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: {key} = {shown(value)} must be a list")
        return tuple(_coerce(args[0], v, where, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} = {shown(value)} must be a mapping")
        for k in value:
            if args and args[0] is str and not isinstance(k, str):
                raise ConfigError(f"{where}: {key} has the key {shown(k)}; write it as a name")
        if len(args) == 2 and args[1] is not Any:
            return {k: _coerce(args[1], v, where, f"{key}.{k[:80]}") for k, v in value.items()}
        return dict(value)
    return _scalar(tp, value, where, key)


def _scalar(tp: Any, value: Any, where: str, key: str) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} = {shown(value)} must be true or false")
        return value
    if tp is float:
        number = value
        if isinstance(value, str):  # PyYAML reads 1e-5 (no dot) as a string
            with contextlib.suppress(ValueError):
                number = float(value)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ConfigError(f"{where}: {key} = {shown(value)} must be a number")
        try:
            number = float(number)
        except OverflowError:  # an integer beyond a float's range
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{where}: {key} = {shown(value)} must be a finite number")
        return number
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key} = {shown(value)} must be an integer")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} = {shown(value)} must be a string")
        return value
    raise TypeError(f"config type {tp} of {key} is not supported")  # a bug, not user input


def from_snapshot(snapshot: Any, where: str) -> StudyConfig:
    """The :class:`StudyConfig` a study stored when it was created (the ``nas:config`` system
    attribute, or the ``config`` user attribute of an older study), so commands that take a study
    name (``nas study front --test``, ``nas study confirm``) can prepare its data and teacher
    without the YAML."""
    if not isinstance(snapshot, dict):
        raise ConfigError(f"{where} stores no nas config; was it made by nas study run?")
    return from_dict(StudyConfig, snapshot, where, "")
