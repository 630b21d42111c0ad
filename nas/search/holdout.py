"""Scores on data no trial saw: the front's students and the teacher on the test split.

Selection is not report. Trials are scored on the selection split and the sampler, the front
and the picks see only those scores; a front chosen among many students on one split
overstates what each of them does elsewhere. When a study finishes (and on ``nas study front
--test``), :func:`score_front` downloads each front student's checkpoint, scores it once on
the test split and stores the result on the study, beside the teacher's scores on both splits
(computed from the cached teacher pass). A student already scored is not scored again, so the
step is resumable and a study that later gains front points scores only those.

Where the scores live: Optuna refuses to change a finished trial, so they are study records
(``nas.study.record``), one key per trial (``nas:test:<number>``), which several drivers can
write without a read-modify-write race; :func:`test_scores` and :func:`teacher_scores` read them
back.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from nas.study import (
    NO_ANSWER_KEY,
    TEACHER_KEY,
    TEST_KEY,
    front_rows,
    is_baseline,
    metric_names,
    set_study_record,
    study_record,
    test_scores,
)

Printer = Callable[[str], None]


def score_front(
    study: optuna.Study,
    prepared: Any,
    printer: Printer,
    artifact_root: str | None = None,
    trials: list[FrozenTrial] | None = None,
) -> dict[int, dict[str, float]]:
    """Score the teacher (once) and each front student without a test score on the test split.

    Args:
        study: the study, in its storage.
        prepared: ``nas.trial.run.Prepared`` of the study's config (data, tokenizer, teacher).
        printer: where the progress lines go.
        artifact_root: ``--artifact-root``, overriding what each trial recorded.
        trials: the trials to score; default the feasible Pareto front and the baseline.

    Returns:
        Test metrics by trial number, for every trial scored now or before.
    """
    from nas.trial import test_features

    features = test_features(prepared)
    if study_record(study, TEACHER_KEY) is None:
        scores = _teacher_scores(prepared, features)
        set_study_record(study, TEACHER_KEY, scores)
        printer(f"teacher: {_brief(scores['selection'])} selection, {_brief(scores['test'])} test")
    if prepared.no_answer is not None and study_record(study, NO_ANSWER_KEY) is None:
        from nas.feasibility import no_answer_scores

        set_study_record(
            study,
            NO_ANSWER_KEY,
            {"selection": prepared.no_answer, "test": no_answer_scores(prepared.splits.test)},
        )
    done = test_scores(study)
    if trials is None:  # the front, and the baseline that every delta is measured from
        trials = front_rows(study)
        trials += [t for t in study.get_trials(deepcopy=False) if _is_baseline(t, trials)]
    todo = [
        t for t in (trials if trials is not None else front_rows(study)) if t.number not in done
    ]
    for i, trial in enumerate(todo, start=1):
        metrics = _score_trial(study, trial, prepared, artifact_root)
        set_study_record(study, f"{TEST_KEY}{trial.number}", metrics)
        done[trial.number] = metrics
        printer(
            f"test split [{i}/{len(todo)}]: trial {trial.number} {_brief(metrics)} "
            f"(selection {_brief(_selection_metrics(study, trial))})"
        )
    return done


def _is_baseline(t: FrozenTrial, front: list[FrozenTrial]) -> bool:
    return (
        t.state == optuna.trial.TrialState.COMPLETE
        and is_baseline(t)
        and all(t.number != f.number for f in front)
    )


def _brief(metrics: Mapping[str, float]) -> str:
    keys = [k for k in ("exact", "f1", "accuracy", "mcc") if k in metrics][:2]
    return ", ".join(f"{k} {metrics[k]:.4g}" for k in keys) or "-"


def _selection_metrics(study: optuna.Study, trial: FrozenTrial) -> dict[str, float]:
    return dict(zip(metric_names(study), trial.values or [], strict=False))


def _teacher_scores(prepared: Any, test_f: Any) -> dict[str, dict[str, float]]:
    from nas.trial import cached_logits, evaluate_logits

    out = {}
    for split, features, examples in (
        ("selection", prepared.eval_features, prepared.splits.eval),
        ("test", test_f, prepared.splits.test),
    ):
        logits = cached_logits(
            Path(prepared.config.cache_dir),
            prepared.teacher,
            features,
            prepared.task.kind,
            prepared.num_labels,
            int(prepared.tokenizer.pad_token_id or 0),
            prepared.config.training.device,
            prepared.config.training.eval_batch_size,
        )
        out[split] = evaluate_logits(prepared, examples, features, logits)
    return out


def _score_trial(
    study: optuna.Study,
    trial: FrozenTrial,
    prepared: Any,
    artifact_root: str | None,
) -> dict[str, float]:
    from nas.results import download_checkpoint
    from nas.trial import score_checkpoint

    with tempfile.TemporaryDirectory(prefix=f"nas-test-{trial.number}-") as tmp:
        folder = Path(tmp)
        download_checkpoint(study, trial, folder, artifact_root)
        # the folder's own tokenizer: a student that pruned its vocabulary reads other ids
        return score_checkpoint(prepared, folder, prepared.splits.test)
