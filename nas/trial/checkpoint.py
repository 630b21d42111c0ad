"""A saved trial student scored again from its folder alone, as a user would load it.

The folder holds the student (a Hugging Face folder for DistilBERT students, ``nas_family.json``
and ``model.safetensors`` for the other families) and the tokenizer it reads, the reduced one
when it pruned its vocabulary. :func:`score_checkpoint` tokenizes a split with that tokenizer,
not the study's, so what it measures is what the exported files give.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.students import is_family_folder, load_family
from nas.trial.data import encoded
from nas.trial.loop import check_finite_logits, predict, resolve_device
from nas.trial.teacher import load_tokenizer, model_class

if TYPE_CHECKING:
    from nas.trial.run import Prepared


def load_trial_student(folder: Path, kind: str) -> Any:
    """The student saved in ``folder`` (any family), in eval mode."""
    if is_family_folder(folder):
        return load_family(folder)
    return model_class(kind).from_pretrained(str(folder)).eval()  # type: ignore[arg-type]


def score_checkpoint(prepared: Prepared, folder: Path, examples: list[Any]) -> dict[str, float]:
    """The task's metrics of the student in ``folder`` on ``examples`` (a split of the study),
    tokenized by the folder's own tokenizer; non-finite logits raise ``Diverged``."""
    from nas.trial.run import evaluate_logits

    tokenizer = load_tokenizer(str(folder), "saved student")
    cache = Path(prepared.config.cache_dir)
    features = encoded(prepared.task, examples, tokenizer, prepared.data, cache)
    model = load_trial_student(folder, prepared.task.kind)
    logits = predict(
        model,
        features,
        prepared.task.kind,
        int(tokenizer.pad_token_id or 0),
        prepared.config.training.eval_batch_size,
        resolve_device(prepared.config.training.device),
    )
    check_finite_logits(logits)
    return evaluate_logits(prepared, examples, features, logits)
