"""Front picks (pure) and `nas study front` against a real SQLite study."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from support.cli_run import run_nas

from nas.results.picks import Point, deltas, pick

# Shaped like the reference experiment: a baseline at 67.07 EM / 66.3M parameters.
BASE = Point(0, 67.07, 66.3e6, baseline=True)
FRONT = [
    Point(5, 55.0, 20.0e6),
    Point(7, 66.82, 51.4e6),
    Point(9, 68.5, 60.0e6),
    Point(11, 70.55, 66.36e6),
]


def test_picks_follow_their_definitions() -> None:
    picks = pick(FRONT, BASE)
    assert picks.same_size == FRONT[2]  # 66.36M is larger than the baseline: not eligible
    assert picks.smallest == FRONT[2]  # smallest with EM >= 67.07
    assert picks.balanced in FRONT
    assert pick([], BASE).balanced is None
    assert pick(FRONT, None).same_size is None and pick(FRONT, None).balanced is not None


def test_knee_is_the_point_nearest_the_ideal() -> None:
    # scaled: (metric gap, size) = (1, 0), (0.2, 0.2), (0, 1) -> the middle point wins
    front = [Point(1, 0.0, 0.0), Point(2, 8.0, 2.0), Point(3, 10.0, 10.0)]
    assert pick(front, None).balanced == front[1]


def test_deltas_are_points_and_percent() -> None:
    gained, size = deltas(FRONT[3], BASE)
    assert round(gained, 2) == 3.48 and round(size, 3) == round(100 * 0.06 / 66.3, 3)
    assert deltas(FRONT[0], None) == (None, None)


def test_front_command_matches_best_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    study = optuna.create_study(study_name="f", storage=url, directions=["maximize", "minimize"])
    study.set_metric_names(["exact", "params"])
    rows = [
        (67.07, 66.3e6, True, 0.0),
        (70.55, 66.36e6, False, 0.0),
        (66.82, 51.4e6, False, 0.0),
        (40.0, 10e6, False, 10.0),
        (60.0, 70e6, False, 0.0),
    ]
    for exact, params, baseline, violation in rows:
        trial = study.ask()
        trial.set_user_attr("baseline", baseline)
        trial.set_constraint("exact>=50", violation)
        study.tell(trial, [exact, params])
    result = run_nas("study", "front", "f", "--storage", url, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [p["trial"] for p in report["front"]] == sorted(
        (t.number for t in study.best_trials), key=lambda n: study.trials[n].values[1]
    )
    assert report["baseline"]["trial"] == 0
    assert report["picks"]["same_size"]["trial"] == 0  # 70.55 at 66.36M is larger
    assert report["picks"]["smallest"]["trial"] == 0
    text = run_nas("study", "front", "f", "--storage", url)
    assert "66.360M" in text.stdout and "+3.48" in text.stdout
    assert "10.000M" not in text.stdout  # the infeasible trial is not on the front
