"""The teacher's word-order sensitivity, measured when a classification study starts.

WOS = (100 - p) / 50, with p the teacher's accuracy (%) on shuffled copies of the selection
examples it classifies correctly (Pham et al. 2020; :mod:`nas.trial.wos`). It says which student
family a dataset needs (the seed blogs: Emotion 0.14, a bag-of-words student is enough; SST-2
0.34, a BiLSTM; CoLA 0.99, a transformer). Measured once per study and kept as a study record
(``nas:wos``), so every driver and every resume prints the same figure without running the
teacher again, and the report shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from nas.study import WOS_KEY, set_study_record, study_record

# A seeded sample of the selection split: enough for the figure to one decimal (the standard
# error of p over 3 x ~400 shuffled copies is about 1.4 points), cheap beside one trial.
SAMPLES = 500


def record_wos(
    study: optuna.Study, prepared: Any, printer: Callable[[str], None]
) -> dict[str, Any] | None:
    """Measure (once) and print the teacher's WOS; None for question answering."""
    if prepared.task.kind != "classification":
        return None
    stored = study_record(study, WOS_KEY)
    if not isinstance(stored, dict):
        from nas.trial import teacher_wos

        config = prepared.config
        result = teacher_wos(
            prepared.teacher,
            prepared.task,
            prepared.splits.eval,
            prepared.data,
            prepared.num_labels,
            seed=config.training.seed,
            samples=SAMPLES,
            device=config.training.device,
        )
        stored = {
            "wos": result.wos,
            "p": result.p,
            "correct": result.correct,
            "examples": result.examples,
            "shuffles": result.shuffles,
            "seed": result.seed,
            "family": result.family,
        }
        set_study_record(study, WOS_KEY, stored)
    printer(wos_line(stored))
    return stored


def wos_line(record: dict[str, Any]) -> str:
    """One line: the figure, what it was measured on, the family it suggests."""
    return (
        f"teacher word-order sensitivity: WOS {record['wos']:.2f} (accuracy "
        f"{record['p']:.1f} % on {record['shuffles']} shuffles of the {record['correct']} of "
        f"{record['examples']} selection examples it gets right): suggests {record['family']} "
        "students (Pham et al. 2020; bow below 0.2, bilstm up to 0.5)"
    )
