"""Multi-objective asynchronous successive halving (MO-ASHA, Schmucker et al. 2021): whether a
trial that reached a rung continues, and the study's ``pruning:`` settings.

Pure: plain values in, a :class:`Decision` out; no Optuna, no torch. The rung records it ranks
are read from the study by :func:`nas.study.record.rung_records`; the settings are
:class:`nas.config.PruningConfig` (the study's ``pruning:`` section, checked when it loads).

The rule, at rung ``r`` with ``n`` trials recorded there (the candidate included):

1. **Rank.** Feasible records (every constraint <= 0, the study's thresholds at that rung) are
   sorted into non-dominated fronts by the study's objectives and directions; within a front,
   by NSGA-II crowding distance, largest first (a front's end points are infinitely far and
   come first). Infeasible records rank after every feasible one, by total violation (the sum
   of their positive constraint values), smallest first. Remaining ties go to the earlier trial
   number, so the ranking is deterministic.
2. **Keep.** ``keep = max(1, floor(n / eta))``; the candidate continues when its rank (1 is
   best) is at most ``keep``. ``floor(n / eta)`` is ASHA's promotion rule (Li et al. 2020,
   Algorithm 2: the top ``|rung| / eta`` are promotable). ASHA can pause a trial until its rung
   fills; nas cannot (a trial holds its worker until it ends), so with ``n < eta`` entries the
   best so far continues, as Optuna's ``SuccessiveHalvingPruner`` does for its first trials:
   the first trial at a rung always continues, a later one only if it ranks first.
3. **Grace.** Rungs below ``min_rung`` and rungs holding fewer than ``grace_trials`` records
   stop no trial (the record is still written, for the status and the report).

Why crowding distance, not MO-ASHA's epsilon-net: both are tie-breaks inside one front, and
Schmucker et al. report them close; crowding is deterministic, needs no scale or seed and is
what nas's ``nsga2`` sampler already uses, while the epsilon-net's greedy order depends on the
point it starts from. On the few records a rung holds, a deterministic order is worth more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nas.config import PruningConfig


@dataclass(frozen=True)
class RungEntry:
    """One trial's evaluation at a rung."""

    number: int  # the trial number
    values: tuple[float, ...]  # objective values, in the study's objective order
    violation: float = 0.0  # the sum of positive constraint values; 0 is feasible

    @property
    def feasible(self) -> bool:
        return self.violation <= 0.0


@dataclass(frozen=True)
class Decision:
    """Whether the candidate continues past the rung, and why."""

    proceed: bool
    rank: int  # 1 is best
    n: int  # records at the rung, the candidate included
    keep: int  # how many of them continue
    reason: str  # one line for the trial's attributes and the console


def violation(constraints: Mapping[str, float]) -> float:
    """Total violation of Optuna constraints (<= 0 feasible): the sum of the positive ones."""
    return float(sum(max(0.0, float(v)) for v in constraints.values()))


def keep_count(n: int, eta: int) -> int:
    """How many of ``n`` records at a rung continue: ``max(1, floor(n / eta))``."""
    return max(1, n // eta)


def rank_entries(entries: Sequence[RungEntry], directions: Sequence[str]) -> list[RungEntry]:
    """``entries`` best first: feasible by non-dominated front then crowding distance,
    infeasible after them by total violation; ties by trial number."""
    _check(entries, directions)
    feasible = [e for e in entries if e.feasible]
    infeasible = sorted(
        (e for e in entries if not e.feasible), key=lambda e: (e.violation, e.number)
    )
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    points = [tuple(s * v for s, v in zip(signs, e.values, strict=True)) for e in feasible]
    ordered = []
    for front in non_dominated_fronts(points):
        crowd = crowding_distances([points[i] for i in front])
        order = sorted(range(len(front)), key=lambda j: (-crowd[j], feasible[front[j]].number))
        ordered += [feasible[front[j]] for j in order]
    return ordered + infeasible


def decide(
    entries: Sequence[RungEntry],
    candidate: RungEntry,
    directions: Sequence[str],
    eta: int,
    grace_trials: int = 1,
) -> Decision:
    """Whether ``candidate`` continues past a rung that ``entries`` reached (the candidate
    is added when absent, by trial number). See the module docstring for the rule."""
    if eta < 2:
        raise ValueError(f"eta = {eta}: successive halving needs eta >= 2")
    others = [e for e in entries if e.number != candidate.number]
    ranked = rank_entries([*others, candidate], directions)
    n = len(ranked)
    rank = 1 + next(i for i, e in enumerate(ranked) if e.number == candidate.number)
    keep = keep_count(n, eta)
    where = f"rank {rank} of {n} at the rung"
    if n < grace_trials:
        return Decision(True, rank, n, keep, f"{where}; grace: fewer than {grace_trials} trials")
    if rank <= keep:
        return Decision(True, rank, n, keep, f"{where}, within the top {keep} (eta {eta})")
    why = "infeasible" if not candidate.feasible else "dominated or crowded out"
    return Decision(False, rank, n, keep, f"{where}, below the top {keep} (eta {eta}): {why}")


def non_dominated_fronts(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Deb et al.'s fast non-dominated sort of points to minimise: indices by front."""
    n = len(points)
    dominated_by: list[list[int]] = [[] for _ in range(n)]
    counts = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if _dominates(points[i], points[j]):
                dominated_by[i].append(j)
                counts[j] += 1
            elif _dominates(points[j], points[i]):
                dominated_by[j].append(i)
                counts[i] += 1
    fronts = []
    current = [i for i in range(n) if counts[i] == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in dominated_by[i]:
                counts[j] -= 1
                if counts[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def crowding_distances(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance of each point of one front (end points: infinity)."""
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for k in range(1, n - 1):
            gap = points[order[k + 1]][m] - points[order[k - 1]][m]
            distance[order[k]] += gap / (high - low)
    return distance


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def _check(entries: Sequence[RungEntry], directions: Sequence[str]) -> None:
    for e in entries:
        if len(e.values) != len(directions):
            raise ValueError(
                f"trial {e.number}: {len(e.values)} values at the rung for "
                f"{len(directions)} objectives"
            )
        if not all(math.isfinite(v) for v in e.values) or math.isnan(e.violation):
            raise ValueError(f"trial {e.number}: non-finite rung values {e.values}")


# ------------------------------------------------------------------------------ the config


def decide_at(
    config: PruningConfig,
    rung: int,
    entries: Sequence[RungEntry],
    candidate: RungEntry,
    directions: Sequence[str],
) -> Decision:
    """:func:`decide` at rung index ``rung`` with the study's ``pruning:`` eta and grace; a rung
    below ``min_rung`` (or pruning disabled) lets every trial continue."""
    decision = decide(entries, candidate, directions, config.eta, config.grace_trials)
    if not config.enabled or rung < config.min_rung:
        why = (
            "pruning is off" if not config.enabled else f"grace: below min_rung {config.min_rung}"
        )
        return Decision(
            True, decision.rank, decision.n, decision.keep, f"{why}; {decision.reason}"
        )
    return decision
