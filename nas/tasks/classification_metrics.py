"""Classification metrics: accuracy, macro F1 and Matthews correlation, pure numpy functions."""

from __future__ import annotations

import numpy as np


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    """Share of predictions equal to the gold labels; 0.0 for empty input."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    return float(np.mean(pred == gold)) if gold.size else 0.0


def confusion_matrix(pred: np.ndarray, gold: np.ndarray, n_labels: int) -> np.ndarray:
    """``(n_labels, n_labels)`` counts; rows are gold classes, columns predicted classes."""
    pred = np.asarray(pred, dtype=np.int64)
    gold = np.asarray(gold, dtype=np.int64)
    flat = np.bincount(gold * n_labels + pred, minlength=n_labels * n_labels)
    return flat.reshape(n_labels, n_labels)


def macro_f1(pred: np.ndarray, gold: np.ndarray, n_labels: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``gold`` or ``pred``.

    Classes absent from both are left out, as sklearn's ``f1_score(average="macro")`` does.
    """
    matrix = confusion_matrix(pred, gold, n_labels).astype(np.float64)
    tp = np.diag(matrix)
    gold_counts, pred_counts = matrix.sum(axis=1), matrix.sum(axis=0)
    present = (gold_counts + pred_counts) > 0
    if not present.any():
        return 0.0
    f1 = 2 * tp[present] / (gold_counts[present] + pred_counts[present])
    return float(f1.mean())


def matthews_corrcoef(pred: np.ndarray, gold: np.ndarray, n_labels: int) -> float:
    """Multiclass Matthews correlation (Gorodkin's R_K, as sklearn computes it).

    ``(c*s - sum_k p_k*t_k) / sqrt((s^2 - sum_k p_k^2) * (s^2 - sum_k t_k^2))``
    with ``c`` correct predictions, ``s`` samples, ``p_k``/``t_k`` predicted/true counts of
    class ``k``; 0.0 when undefined.
    """
    matrix = confusion_matrix(pred, gold, n_labels).astype(np.float64)
    t, p = matrix.sum(axis=1), matrix.sum(axis=0)
    c, s = np.trace(matrix), matrix.sum()
    cov_ytyp = c * s - p @ t
    cov_ypyp = s * s - p @ p
    cov_ytyt = s * s - t @ t
    if cov_ypyp == 0 or cov_ytyt == 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(cov_ytyt * cov_ypyp))


def classification_metrics(logits: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Argmax of ``(n, n_labels)`` logits scored against ``gold``: accuracy, macro_f1, mcc."""
    if logits.ndim != 2 or logits.shape[0] != gold.shape[0]:
        raise ValueError(f"logits of shape {logits.shape} do not match {gold.shape[0]} labels")
    pred = logits.argmax(axis=1)
    n_labels = max(logits.shape[1], int(gold.max(initial=-1)) + 1)
    return {
        "accuracy": accuracy(pred, gold),
        "macro_f1": macro_f1(pred, gold, n_labels),
        "mcc": matthews_corrcoef(pred, gold, n_labels),
    }
