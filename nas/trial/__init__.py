"""One trial, end to end: data (``data``), the teacher and its cached logits (``teacher``), the
training loop and inference (``loop``), the distillation losses (``losses``), and the trial
itself (``run``: ``prepare`` once per process, ``run_trial`` per trial), what a student reads
(``student_inputs``: its tokenizer and features, a pruned vocabulary's), a saved student scored
from its folder (``checkpoint``); the teacher's word-order sensitivity (``wos``).

No Optuna, no Ray: ``nas trial run`` and the Ray worker call the same ``run_trial``.
"""

from nas.trial.checkpoint import (
    load_trial_student,
    score_checkpoint,
)
from nas.trial.data import (
    encoded,
    load_splits,
)
from nas.trial.loop import (
    peak_memory_bytes,
    predict,
    release_memory,
    resolve_device,
    rung_steps,
    use_bf16,
)
from nas.trial.run import (
    Metrics,
    Prepared,
    RungResult,
    evaluate_logits,
    objective_names,
    prepare,
    run_trial,
    test_features,
)
from nas.trial.teacher import (
    cached_logits,
    load_tokenizer,
    model_class,
    train_teacher,
)
from nas.trial.wos import (
    WordOrderSensitivity,
    suggest_family,
    teacher_wos,
    word_order_sensitivity,
)

__all__ = [
    "Metrics",
    "Prepared",
    "RungResult",
    "WordOrderSensitivity",
    "cached_logits",
    "encoded",
    "evaluate_logits",
    "load_splits",
    "load_tokenizer",
    "load_trial_student",
    "model_class",
    "objective_names",
    "peak_memory_bytes",
    "predict",
    "prepare",
    "release_memory",
    "resolve_device",
    "run_trial",
    "rung_steps",
    "score_checkpoint",
    "suggest_family",
    "teacher_wos",
    "test_features",
    "train_teacher",
    "use_bf16",
    "word_order_sensitivity",
]
