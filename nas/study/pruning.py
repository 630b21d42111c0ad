"""Multi-objective asynchronous successive halving (MO-ASHA, Schmucker et al. 2021): whether a
trial that reached a rung continues, and the study's ``pruning:`` settings.

Pure: plain values in, a :class:`Decision` out; no Optuna, no torch. The rung records it ranks
are read from the study by :func:`nas.study.record.rung_records`.

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

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError
from nas.objectives import COSTS


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

DEFAULT_RUNGS = (1 / 9, 1 / 3)


@dataclass(frozen=True)
class PruningConfig:
    """The study's ``pruning:`` section: MO-ASHA over rungs of each trial's training."""

    enabled: bool = False  # off by default: every trial trains to the end
    eta: int = 3  # reduction factor: about 1 in eta trials continues past each rung
    # where trials are evaluated and may stop, as fractions of their training length,
    # increasing, each in (0, 1); the end of training (1.0) is always the last evaluation
    rungs: tuple[float, ...] = DEFAULT_RUNGS
    min_rung: int = 0  # rungs below this index record their values but stop no trial
    grace_trials: int = 1  # a rung stops no trial until it holds this many records

    @classmethod
    def from_mapping(
        cls, raw: Any, where: str, objective_names: Sequence[str] = ()
    ) -> PruningConfig:
        """Build and check a ``pruning:`` mapping; ``objective_names`` are the study's.

        Raises:
            ConfigError: an unknown key or a bad value, naming it and the fix.
        """
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: pruning must be a mapping, e.g. {{enabled: true}}")
        allowed = ("enabled", "eta", "rungs", "min_rung", "grace_trials")
        unknown = [k for k in raw if k not in allowed]
        if unknown:
            raise ConfigError(
                f"{where}: unknown key 'pruning.{unknown[0]}'; allowed: {', '.join(allowed)}"
            )
        config = cls(
            enabled=_typed(raw, "enabled", bool, cls.enabled, where),
            eta=_typed(raw, "eta", int, cls.eta, where),
            rungs=tuple(_rungs(raw.get("rungs", DEFAULT_RUNGS), where)),
            min_rung=_typed(raw, "min_rung", int, cls.min_rung, where),
            grace_trials=_typed(raw, "grace_trials", int, cls.grace_trials, where),
        )
        config.check(where, objective_names)
        return config

    def decide(
        self,
        rung: int,
        entries: Sequence[RungEntry],
        candidate: RungEntry,
        directions: Sequence[str],
    ) -> Decision:
        """:func:`decide` at rung index ``rung`` with this config's eta and grace; a rung below
        ``min_rung`` (or pruning disabled) lets every trial continue."""
        decision = decide(entries, candidate, directions, self.eta, self.grace_trials)
        if not self.enabled or rung < self.min_rung:
            why = (
                "pruning is off" if not self.enabled else f"grace: below min_rung {self.min_rung}"
            )
            return Decision(
                True, decision.rank, decision.n, decision.keep, f"{why}; {decision.reason}"
            )
        return decision

    def check(self, where: str, objective_names: Sequence[str] = ()) -> None:
        """The rules across keys (also for a config built by ``nas.config``'s loader)."""
        if self.eta < 2:
            raise ConfigError(
                f"{where}: pruning.eta = {self.eta} must be at least 2 (2 halves the trials at "
                "each rung, 3 keeps a third); write e.g. eta: 3"
            )
        _check_rungs(self.rungs, where)
        if not 0 <= self.min_rung < len(self.rungs):
            raise ConfigError(
                f"{where}: pruning.min_rung = {self.min_rung} must be an index of "
                f"pruning.rungs (0 to {len(self.rungs) - 1}); write 0 to stop from the first"
            )
        if self.grace_trials < 1:
            raise ConfigError(
                f"{where}: pruning.grace_trials = {self.grace_trials} must be at least 1; "
                "write 1 for no grace"
            )
        names = list(objective_names)
        if self.enabled and names and all(n in COSTS for n in names):
            raise ConfigError(
                f"{where}: pruning ranks trials mid-training, but the objectives {names} are "
                "costs that training does not change; add a task metric objective (e.g. "
                "accuracy) or set pruning.enabled: false"
            )


def _typed(raw: Mapping[str, Any], key: str, tp: type, default: Any, where: str) -> Any:
    value = raw.get(key, default)
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: pruning.{key} = {value!r} must be an integer")
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: pruning.{key} = {value!r} must be true or false")
    return value


def _rungs(value: Any, where: str) -> list[float]:
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(
            f"{where}: pruning.rungs = {value!r} must be a non-empty list of training "
            "fractions, e.g. [0.111, 0.333]"
        )
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"{where}: pruning.rungs has {v!r}; write fractions such as 0.25")
        out.append(float(v))
    return out


def _check_rungs(rungs: Sequence[float], where: str) -> None:
    if not rungs:
        raise ConfigError(f"{where}: pruning.rungs is empty; write e.g. [0.111, 0.333]")
    for a, b in itertools.pairwise(rungs):
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
