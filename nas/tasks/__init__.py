"""Tasks: raw examples, tokenization into flat arrays (``base.Features``) and evaluation, by name
(``get_task("squad_v2")``). SQuAD 2.0 (``squad_v2``, read by ``squad_io``, scored by
``squad_metric`` as the official script does), classification (``classification``, its
metrics in ``classification_metrics``, files read by ``text_files``), synthetic QA, and
WordPiece vocabularies built in code (``vocab``).
"""

from nas.tasks.base import (
    Features,
    QAExample,
    Splits,
    Task,
    TaskKind,
    TextExample,
)
from nas.tasks.registry import (
    get_task,
    task_names,
)
from nas.tasks.squad_metric import (
    evaluate as evaluate_squad_v2,
)
from nas.tasks.squad_metric import (
    run_eval_files,
)
from nas.tasks.squad_v2 import (
    NULL_SCORE_THRESHOLD,
)
from nas.tasks.text_files import (
    read_texts,
)
from nas.tasks.vocab import (
    build_tokenizer,
    frequent_words,
)

__all__ = [
    "Features",
    "NULL_SCORE_THRESHOLD",
    "QAExample",
    "Splits",
    "Task",
    "TaskKind",
    "TextExample",
    "build_tokenizer",
    "evaluate_squad_v2",
    "frequent_words",
    "get_task",
    "read_texts",
    "run_eval_files",
    "task_names",
]
