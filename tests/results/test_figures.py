"""Importances over the parameters that can move each objective, trusted only above noise."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import optuna

from nas.results.dashboard import importance_plot_id, publish
from nas.results.figures import MIN_TRIALS, front_figure, importances
from nas.results.summary import summarize
from nas.search_space import load_search_space
from nas.students.build import StudentShape
from nas.students.cost import parameter_count

ROOT = Path(__file__).resolve().parents[2]
SPACE = load_search_space(ROOT / "search_spaces/quickstart.yaml").distributions


def size(p: dict[str, int]) -> float:
    shape = StudentShape(p["n_layers"], p["n_heads"], p["hidden_size"], p["ffn_dim"])
    return float(parameter_count(shape, 1000, 128, "qa"))


def random_study(n: int, metric: str, seed: int = 0) -> optuna.Study:
    """``n`` random trials of the quickstart space; exact is pure noise (``metric="noise"``)
    or driven by n_layers and learning_rate (``"real"``); params is the real count."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["exact", "params"])
    for _ in range(n):
        trial = study.ask(SPACE)
        p = trial.params
        exact = rng.normal(50, 5)
        if metric == "real":
            exact += 8 * p["n_layers"] - 10 * math.log10(p["learning_rate"])
        study.tell(trial, [exact, size(p)])
    return study


def test_params_ranks_only_what_changes_the_count() -> None:
    study = random_study(40, "noise")
    result = importances(summarize(study), study, "params")
    assert set(result.values) == {"n_layers", "hidden_size", "ffn_dim"}
    assert result.standing_out and "of 3 stand out" in result.verdict
    # n_heads is left out because it cannot move the count
    base = {"n_layers": 2, "hidden_size": 64, "ffn_dim": 128}
    assert size({**base, "n_heads": 2}) == size({**base, "n_heads": 4})


def test_a_noise_metric_is_not_presented_as_confident() -> None:
    study = random_study(40, "noise")
    result = importances(summarize(study), study, "exact")
    assert len(result.values) == len(SPACE)  # a task metric may depend on everything
    assert result.standing_out == []
    assert result.verdict.startswith("low confidence")


def test_a_real_metric_stands_out() -> None:
    study = random_study(40, "real")
    result = importances(summarize(study), study, "exact")
    assert set(result.standing_out) <= {"n_layers", "learning_rate"}
    assert result.standing_out


def test_few_trials_are_not_computed() -> None:
    study = random_study(MIN_TRIALS - 1, "real")
    result = importances(summarize(study), study, "params")
    assert result.values == {}
    assert result.verdict == f"not computed: {MIN_TRIALS - 1} COMPLETE trials, importances need 20"


def test_front_draws_the_bound_in_words(tmp_path: Path) -> None:
    study = random_study(3, "noise")
    study.set_user_attr(
        "config", {"thresholds": [{"metric": "exact", "min": 50.0, "above_no_answer": 10.0}]}
    )
    study.set_user_attr("no_answer", {"selection": {"exact": 40.0}})
    layout = front_figure(summarize(study)).layout
    assert [(s.y0, s.y1, s.yref) for s in layout.shapes] == [(50.0, 50.0, "y")]
    text = layout.annotations[0].text
    assert text == "feasible above: exact ≥ 50 (the no-answer score 40 + 10)"


def test_publish_writes_importances_from_enough_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    study = optuna.create_study(study_name="p", storage=url, directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["exact", "params"])
    study.add_trials(random_study(MIN_TRIALS, "noise").get_trials())
    publish(study)
    keys = " ".join(study._storage.get_study_system_attrs(study._study_id))
    assert "nas-front" in keys
    assert importance_plot_id("params") in keys and importance_plot_id("exact") in keys
