"""The end of ``nas study run`` in words: what ran, the rule, the teacher against the baseline,
the front (:func:`nas.results.summary.front_text`, as ``nas study front`` prints it) and one
sentence saying what the front offers.

Pure functions of a :class:`~nas.results.summary.Summary`. The offer is decided on the test split
(data no trial saw) when the baseline and every smaller front student have test scores; the
selection split chose the front, so its numbers overstate what the front does elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

from nas.results.picks import Point
from nas.results.summary import Summary, digits, front_text

# "Keeps the baseline's score": at least this share of it. DistilBERT's claim for a 40 % smaller
# BERT is 97 %; 95 % leaves room for the noise of a few hundred test questions (one standard
# error of 400 answers near 60 % EM is 2.4 points, 4 % of the score).
KEEP = 0.95


def verdict_text(summary: Summary) -> str:
    """The front and picks, the counts, the rule, teacher and baseline side by side, the offer."""
    lines = [front_text(summary), counts_line(summary), rule_line(summary)]
    scores = scores_line(summary)
    if scores:
        lines.append(scores)
    return "\n".join([*lines, offer_line(summary)])


def counts_line(summary: Summary) -> str:
    """``12 trials: 10 feasible (4 on the front), 1 infeasible, 1 failed (oom 1)``."""
    feasible = summary.count("front") + summary.count("dominated")
    parts = [f"{feasible} feasible ({summary.count('front')} on the front)"]
    if summary.count("infeasible"):
        parts.append(f"{summary.count('infeasible')} infeasible")
    if summary.failures:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(summary.failures.items()))
        parts.append(f"{sum(summary.failures.values())} failed ({reasons})")
    if summary.count("pruned"):
        parts.append(f"{summary.count('pruned')} pruned")
    settled = feasible + sum(summary.count(s) for s in ("infeasible", "failed", "pruned"))
    others = len(summary.rows) - settled
    if others:
        parts.append(f"{others} running or waiting")
    return f"{len(summary.rows)} trials: " + ", ".join(parts)


def rule_line(summary: Summary) -> str:
    """The thresholds, once, and (QA) what answering "no answer" to every question scores."""
    rule = " and ".join(f"{t.metric} >= {t.bound:g}" for t in summary.thresholds)
    text = (
        f"feasible: {rule} on the selection split"
        if rule
        else "no thresholds: every COMPLETE trial is feasible"
    )
    metric = summary.metric
    margin = next(
        (t for t in summary.thresholds if t.metric == metric and t.above_no_answer is not None),
        None,
    )
    selection = summary.no_answer.get("selection", {}).get(metric)
    if selection is None and margin is not None and margin.above_no_answer is not None:
        selection = margin.bound - margin.above_no_answer  # how the bound was resolved
    if selection is None:
        return text
    test = summary.no_answer.get("test", {}).get(metric)
    on_test = f" ({test:.2f} on test)" if test is not None else ""
    text += (
        f'; answering "no answer" to every question scores {metric} {selection:.2f} there{on_test}'
    )
    if margin is not None and margin.above_no_answer is not None:
        side = "above" if margin.above_no_answer >= 0 else "below"
        text += f", and the {metric} bound is {abs(margin.above_no_answer):g} {side} that"
    return text


def scores_line(summary: Summary) -> str:
    """The teacher's and the baseline's task metric side by side, rounded, per split:
    ``teacher vs baseline (trial 0), exact: 74.00 vs 66.00 on test, 75.12 vs 67.00 on
    selection``."""
    metric, base = summary.metric, summary.baseline
    columns: list[tuple[str, dict[str, float]]] = []
    if summary.teacher:
        columns.append(
            ("teacher", {k: v[metric] for k, v in summary.teacher.items() if metric in v})
        )
    if base is not None:
        scores = {"selection": base.metric}
        if metric in summary.test.get(base.trial, {}):
            scores["test"] = summary.test[base.trial][metric]
        columns.append((f"baseline (trial {base.trial})", scores))
    if not columns:
        return ""
    d = digits(summary)
    splits = [s for s in ("test", "selection") if any(s in c for _, c in columns)]
    values = [
        " vs ".join("-" if s not in c else f"{c[s]:.{d}f}" for _, c in columns) + f" on {s}"
        for s in splits
    ]
    return " vs ".join(name for name, _ in columns) + f", {metric}: " + ", ".join(values)


def offer_line(summary: Summary) -> str:
    """One sentence: the smallest front student that keeps :data:`KEEP` of the baseline's
    metric, or the best smaller one when none does."""
    front, base, metric = summary.front, summary.baseline, summary.metric
    d = digits(summary)
    if not front:
        return "verdict: no feasible student yet, so the front offers nothing"
    if base is None:
        small = front[0]
        return (
            f"verdict: no baseline finished to compare with; the smallest feasible student is "
            f"trial {small.trial} ({metric} {small.metric:.{d}f} on selection, "
            f"{small.params / 1e6:.3f}M parameters)"
        )
    smaller = [p for p in front if not p.baseline and p.params < base.params]
    if not smaller:
        return (
            "verdict: nothing on the feasible front is smaller than the baseline "
            f"(trial {base.trial})"
        )
    split, score = _scorer(summary, [base, *smaller])
    b = score(base)

    def keeps(p: Point) -> bool:
        return score(p) >= (KEEP * b if b > 0 else b)

    def compared(p: Point) -> str:
        size = f"{_percent(p.params / base.params)} of its parameters"
        numbers = f"({score(p):.{d}f} vs {b:.{d}f})"
        if b > 0 and score(p) <= b:
            share = f"keeps {_percent(score(p) / b)} of the baseline's {metric} on {split}"
        elif score(p) > b:
            share = f"beats the baseline's {metric} on {split}"
        else:
            share = f"trails the baseline's {metric} on {split}"
        return f"trial {p.trial} {share} {numbers} at {size}"

    kept = [p for p in smaller if keeps(p)]
    if kept:
        return f"verdict: {compared(min(kept, key=lambda p: p.params))}"
    best = max(smaller, key=score)
    bar = f"{KEEP:.0%} of " if b > 0 else ""
    return (
        f"verdict: nothing smaller kept {bar}the baseline's {metric} on {split}; "
        f"the best smaller student, {compared(best)}"
    )


def _scorer(summary: Summary, points: list[Point]) -> tuple[str, Callable[[Point], float]]:
    """Test scores when every point has one, else the selection scores trials were told."""
    metric = summary.metric
    if all(metric in summary.test.get(p.trial, {}) for p in points):
        return "test", lambda p: summary.test[p.trial][metric]
    return "selection", lambda p: p.metric


def _percent(share: float) -> str:
    """``0.98`` -> ``98%``; a share just under 1 keeps a decimal (``99.7%``, not ``100%``)."""
    text = f"{100 * share:.0f}%"
    return f"{100 * share:.1f}%" if text == "100%" and share < 1 else text
