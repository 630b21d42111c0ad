"""MO-ASHA decisions on hand-made fronts, and the ``pruning:`` config's bad inputs."""

from __future__ import annotations

import math

import pytest

from nas.config import StudyConfig, check_study, from_dict
from nas.errors import ConfigError
from nas.study import (
    PruningConfig,
    RungEntry,
    crowding_distances,
    decide,
    decide_at,
    keep_count,
    non_dominated_fronts,
    rank_entries,
)

MAX_MIN = ("maximize", "minimize")  # (accuracy, params)


def entry(number: int, accuracy: float, params: float, violation: float = 0.0) -> RungEntry:
    return RungEntry(number, (accuracy, params), violation)


def test_a_dominated_trial_stops_and_a_non_dominated_one_continues() -> None:
    # 0, 1, 2 form the front; 3 is dominated by 1 (less accurate and larger)
    front = [entry(0, 0.9, 30.0), entry(1, 0.8, 20.0), entry(2, 0.7, 10.0)]
    dominated = entry(3, 0.75, 25.0)
    # n = 4, eta = 2: the top 2 continue; 3 is in the second front, rank 4
    stop = decide(front, dominated, MAX_MIN, eta=2)
    assert (stop.proceed, stop.rank, stop.keep) == (False, 4, 2)
    assert "below the top 2" in stop.reason
    # an end point of the front (infinite crowding distance) continues
    go = decide([*front[1:], dominated], front[0], MAX_MIN, eta=2)
    assert go.proceed and go.rank <= 2


def test_the_direction_decides_domination() -> None:
    # with both maximised, the larger student (30) dominates the smaller one
    a, b = entry(0, 0.9, 30.0), entry(1, 0.8, 20.0)
    assert [e.number for e in rank_entries([b, a], ("maximize", "maximize"))] == [0, 1]
    assert non_dominated_fronts([(-0.9, -30.0), (-0.8, -20.0)]) == [[0], [1]]
    assert non_dominated_fronts([(-0.9, 30.0), (-0.8, 20.0)]) == [[0, 1]]


def test_an_infeasible_trial_loses_to_any_feasible_one() -> None:
    # the infeasible trial would dominate every feasible one on the objectives
    feasible = [entry(0, 0.5, 50.0), entry(1, 0.4, 60.0)]  # 1 is dominated by 0
    infeasible = entry(2, 0.99, 1.0, violation=0.01)
    ranked = rank_entries([infeasible, *feasible], MAX_MIN)
    assert [e.number for e in ranked] == [0, 1, 2]
    assert not decide(feasible, infeasible, MAX_MIN, eta=2).proceed
    # among infeasible trials, the smaller total violation ranks first
    worse = entry(3, 0.99, 1.0, violation=0.5)
    assert [e.number for e in rank_entries([worse, infeasible], MAX_MIN)] == [2, 3]


def test_eta_3_with_9_trials_keeps_3() -> None:
    # nine trials on a line, each dominated by the one before: ranks follow accuracy
    entries = [entry(i, 0.9 - 0.1 * i, 10.0 + i) for i in range(9)]
    kept = [e.number for e in entries if decide(entries, e, MAX_MIN, eta=3).proceed]
    assert kept == [0, 1, 2]
    assert keep_count(9, 3) == 3


def test_fewer_than_eta_records_the_best_so_far_continues() -> None:
    # ASHA's floor(n / eta) is 0 here; a trial cannot wait, so the best continues
    first = entry(0, 0.5, 10.0)
    assert decide([], first, MAX_MIN, eta=3).proceed  # alone at the rung
    assert not decide([first], entry(1, 0.4, 11.0), MAX_MIN, eta=3).proceed
    assert decide([first], entry(2, 0.6, 9.0), MAX_MIN, eta=3).proceed
    assert [keep_count(n, 3) for n in (1, 2, 3, 4, 5, 6)] == [1, 1, 1, 1, 1, 2]


def test_ties_in_a_front_go_to_crowding_distance() -> None:
    # five points on one front: the ends are infinite, the middle one most crowded
    points = [(0.0, 4.0), (1.9, 2.1), (2.0, 2.0), (2.1, 1.9), (4.0, 0.0)]
    distances = crowding_distances(points)
    assert math.isinf(distances[0]) and math.isinf(distances[4])
    assert distances[2] < distances[1] and distances[2] < distances[3]
    entries = [entry(i, -p[0], p[1]) for i, p in enumerate(points)]
    # n = 5, eta = 2: keep 2, the two end points; the crowded middle stops
    assert [e.number for e in entries if decide(entries, e, MAX_MIN, eta=2).proceed] == [0, 4]


def test_grace_and_min_rung_stop_no_trial() -> None:
    entries = [entry(i, 0.9 - 0.1 * i, 10.0 + i) for i in range(3)]
    worst = entries[-1]
    assert not decide(entries, worst, MAX_MIN, eta=3).proceed
    assert decide(entries, worst, MAX_MIN, eta=3, grace_trials=4).proceed
    config = PruningConfig(enabled=True, eta=3, rungs=(0.1, 0.3), min_rung=1)
    assert decide_at(config, 0, entries, worst, MAX_MIN).proceed  # rung 0 < min_rung
    assert not decide_at(config, 1, entries, worst, MAX_MIN).proceed
    assert decide_at(PruningConfig(enabled=False), 1, entries, worst, MAX_MIN).proceed


def test_rung_values_must_match_the_objectives() -> None:
    with pytest.raises(ValueError, match="trial 0: 1 values"):
        rank_entries([RungEntry(0, (0.5,))], MAX_MIN)
    with pytest.raises(ValueError, match="non-finite"):
        rank_entries([entry(0, math.nan, 1.0)], MAX_MIN)


# ------------------------------------------------------------------------------ the config


def read_pruning(raw: object, where: str, objectives: list[str] | None = None) -> PruningConfig:
    """A study file's ``pruning:`` section, read and checked as the study loader does."""
    study = {"name": "s", "task": "sst2", "teacher": {"path": "t"}, "search_space": "x.yaml"}
    if raw is not None:
        study["pruning"] = raw
    if objectives:
        study["objectives"] = [{"name": n, "direction": "maximize"} for n in objectives]
    config = from_dict(StudyConfig, study, where, "")
    check_study(config, where)
    return config.pruning


def test_the_config_reads_a_mapping() -> None:
    config = read_pruning(
        {"enabled": True, "eta": 2, "rungs": [0.25, 0.5], "min_rung": 1}, "s.yaml", ["f1"]
    )
    assert config == PruningConfig(True, 2, (0.25, 0.5), 1, 1)
    assert read_pruning(None, "s.yaml") == PruningConfig()
    assert not PruningConfig().enabled  # off by default


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rungs": [0.5, 0.25]}, r"pruning.rungs \[0.5, 0.25\] must increase \(0.25 after 0.5\)"),
        ({"rungs": [0.3, 0.3]}, "must increase"),
        ({"rungs": [0.5, 1.5]}, "pruning.rungs has 1.5; a rung is a fraction"),
        ({"rungs": [0.5, 1.0]}, "leave 1.0 out"),
        ({"rungs": [0.0, 0.5]}, "pruning.rungs has 0;"),
        ({"rungs": []}, "pruning.rungs is empty"),
        ({"rungs": ["half"]}, r"pruning.rungs\[0\] = 'half' must be a number"),
        ({"eta": 1}, "pruning.eta = 1 must be >= 2"),
        ({"eta": 2.5}, "pruning.eta = 2.5 must be an integer"),
        ({"enabled": "yes"}, "pruning.enabled = 'yes' must be true or false"),
        ({"min_rung": 2}, r"pruning.min_rung = 2 must be an index of pruning.rungs \(0 to 1\)"),
        ({"grace_trials": 0}, "pruning.grace_trials = 0 must be positive"),
        ({"etta": 3}, "unknown key 'pruning.etta'; allowed: enabled, eta"),
        ([0.1], "'pruning' must be a mapping"),
    ],
)
def test_bad_pruning_config_names_the_value_and_the_fix(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^s.yaml: .*{message}"):
        read_pruning(raw, "s.yaml", ["accuracy", "params"])


def test_pruning_needs_an_objective_training_changes() -> None:
    with pytest.raises(ConfigError, match=r"objectives \['latency_ms'\] are costs"):
        read_pruning({"enabled": True}, "s.yaml", ["latency_ms"])
    # off, or with a task metric among the objectives, it is fine
    read_pruning({"enabled": False}, "s.yaml", ["latency_ms"])
    read_pruning({"enabled": True}, "s.yaml", ["accuracy", "latency_ms"])
