"""Choosing from the Pareto front, as the reference experiment's table does: pure functions.

Three picks relative to the baseline trial (SigOpt 2020 reported the same three):

* ``same_size``: among front students no larger than the baseline, the best metric;
* ``balanced``: the front point nearest the ideal (best metric, smallest size) after scaling
  both objectives to [0, 1] over the front — the knee of the curve;
* ``smallest``: the smallest front student whose metric is at least the baseline's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    trial: int
    metric: float  # the task metric (maximized)
    params: float  # parameter count (minimized)
    baseline: bool = False


@dataclass(frozen=True)
class Picks:
    same_size: Point | None
    balanced: Point | None
    smallest: Point | None


def pick(front: Sequence[Point], baseline: Point | None) -> Picks:
    """The three picks; without a baseline only ``balanced`` is defined."""
    if not front:
        return Picks(None, None, None)
    balanced = _knee(front)
    if baseline is None:
        return Picks(None, balanced, None)
    fits = [p for p in front if p.params <= baseline.params]
    same_size = max(fits, key=lambda p: (p.metric, -p.params)) if fits else None
    good = [p for p in front if p.metric >= baseline.metric]
    smallest = min(good, key=lambda p: (p.params, -p.metric)) if good else None
    return Picks(same_size, balanced, smallest)


def _knee(front: Sequence[Point]) -> Point:
    lo_m, hi_m = min(p.metric for p in front), max(p.metric for p in front)
    lo_p, hi_p = min(p.params for p in front), max(p.params for p in front)

    def distance(p: Point) -> float:
        m = (hi_m - p.metric) / (hi_m - lo_m) if hi_m > lo_m else 0.0
        s = (p.params - lo_p) / (hi_p - lo_p) if hi_p > lo_p else 0.0
        return math.hypot(m, s)

    return min(front, key=lambda p: (distance(p), p.params))


def deltas(point: Point, baseline: Point | None) -> tuple[float | None, float | None]:
    """(metric points gained, size change in percent) against the baseline."""
    if baseline is None:
        return None, None
    size = 100.0 * (point.params - baseline.params) / baseline.params if baseline.params else None
    return point.metric - baseline.metric, size
