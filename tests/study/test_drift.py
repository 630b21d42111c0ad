"""Config drift: a re-run's study file against what the study ran under (nas.study.drift), and the
refusal or the recorded acceptance through ``nas study run``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import distribution_to_json

from nas.config import Threshold, load_study
from nas.search_space import load_search_space
from nas.study import CHANGES_ATTR, SPACE_ATTR, config_snapshot, study_record
from nas.study.drift import Basis, Change, change_record, compare, describe, snapshot

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "studies" / "quickstart.yaml"
OBJECTIVES = [("exact", "maximize"), ("params", "minimize")]


def _space(**changes: str) -> dict[str, Any]:
    space = load_search_space(REPO / "search_spaces" / "quickstart.yaml").distributions
    out = {name: json.loads(distribution_to_json(d)) for name, d in space.items()}
    for name, spec in changes.items():
        out[name] = yaml.safe_load(spec)
    return out


def _stored(config: Any) -> dict[str, Any]:
    """The snapshot a study stores: thresholds resolved (the margin's min from the split)."""
    resolved = tuple(
        dataclasses.replace(t, min=40.0 + t.above_no_answer) if t.above_no_answer else t
        for t in config.thresholds
    )
    return snapshot(dataclasses.replace(config, thresholds=resolved))


def _edited(tmp_path: Path, edit: Any) -> dict[str, Any]:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["search_space"] = str(REPO / "search_spaces" / "quickstart.yaml")
    edit(raw)
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(raw))
    return snapshot(load_study(path))


@pytest.fixture
def stored(tmp_path: Path) -> Basis:
    config = load_study(_write_quickstart(tmp_path / "old"))
    return Basis(_stored(config), OBJECTIVES, _space())


def _write_quickstart(folder: Path) -> Path:
    folder.mkdir()
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["search_space"] = str(REPO / "search_spaces" / "quickstart.yaml")
    path = folder / "quickstart.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _set(dotted: str, value: Any) -> Any:
    def edit(raw: dict[str, Any]) -> None:
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return edit


def test_the_same_file_and_free_keys_are_no_change(stored: Basis, tmp_path: Path) -> None:
    assert compare(stored, Basis(_edited(tmp_path, lambda raw: None), OBJECTIVES, _space())) == []
    free = {
        "n_trials": 40,
        "sampler.seed": 7,
        "sampler.name": "random",
        "storage": "postgresql://u:pw@db/x",
        "cache_dir": str(tmp_path / "elsewhere"),
        "artifact_root": "s3://bucket/x",
        "trial_timeout_s": 600,
        "resources.cpu": 2,
        "training.device": "cpu",
        "training.log_every": 7,
        "reference_point": {"exact": 30},
        "baseline": {"n_layers": 1},
        "pruning.enabled": True,
    }
    for dotted, value in free.items():
        new = Basis(_edited(tmp_path, _set(dotted, value)), OBJECTIVES, _space())
        assert compare(stored, new) == [], dotted


@pytest.mark.parametrize(
    ("dotted", "value", "key", "old", "new"),
    [
        ("task", "squad_v2", "task", "synthetic_qa", "squad_v2"),
        ("data.synthetic.n_train", 500, "data.synthetic.n_train", 3000, 500),
        ("data.max_train_samples", 100, "data.max_train_samples", None, 100),
        ("data.seed", 3, "data.seed", 0, 3),
        ("teacher.path", "other", "teacher.path", "{cache_dir}/teachers/quickstart", "other"),
        ("teacher.train.epochs", 3, "teacher.train.epochs", 15.0, 3.0),
        ("teacher.train.arch.hidden_size", 64, "teacher.train.arch.hidden_size", 128, 64),
        ("teacher.train.arch.vocab_size", 99, "teacher.train.arch.vocab_size", None, 99),
        ("student_source", "x/y", "student_source", "{cache_dir}/teachers/quickstart", "x/y"),
        ("training.max_steps", 10, "training.max_steps", None, 10),
        ("training.seed", 1, "training.seed", 0, 1),
        ("calibration.n_features", 64, "calibration.n_features", None, 64),
        ("thresholds", [{"metric": "exact", "above_no_answer": 20.0}] * 2, None, None, None),
    ],
)
def test_changes_that_alter_results_are_named_with_old_and_new(
    stored: Basis, tmp_path: Path, dotted: str, value: Any, key: str, old: Any, new: Any
) -> None:
    changes = compare(stored, Basis(_edited(tmp_path, _set(dotted, value)), OBJECTIVES, _space()))
    if key is None:  # thresholds: per field, the margin compared, not its resolved min
        assert changes == [
            Change("thresholds[0].above_no_answer", 10.0, 20.0),
            Change("thresholds[1].metric", "HasAns_f1", "exact"),
            Change("thresholds[1].above_no_answer", None, 20.0),
            Change("thresholds[1].min", 20.0, None),
        ]
        return
    assert changes == [Change(key, old, new)]


def test_objectives_and_the_search_space(stored: Basis, tmp_path: Path) -> None:
    same = _edited(tmp_path, lambda raw: None)
    renamed = [("f1", "maximize"), ("params", "minimize")]
    assert compare(stored, Basis(same, renamed, _space())) == [
        Change("objectives[0].name", "exact", "f1")
    ]
    flipped = compare(stored, Basis(same, [("exact", "minimize"), OBJECTIVES[1]], _space()))
    assert [(c.key, c.fixed) for c in flipped] == [("objectives[0].direction", True)]
    three = compare(stored, Basis(same, [*OBJECTIVES, ("latency_ms", "minimize")], _space()))
    assert [(c.key, c.fixed) for c in three] == [("objectives", True)]
    cases = {
        "{name: FloatDistribution, attributes: {low: 1.0, high: 10.0, log: false, step: null}}": [
            ("search_space.temperature.high", 8.0, 10.0, False)
        ],
        "{name: FloatDistribution, attributes: {low: 1.0, high: 8.0, log: true, step: null}}": [
            ("search_space.temperature.log", False, True, True)
        ],
        "{name: CategoricalDistribution, attributes: {choices: [1.0, 2.0]}}": [
            (
                "search_space.temperature",
                "FloatDistribution [1.0, 8.0]",
                "choices [1.0, 2.0]",
                True,
            )
        ],
    }
    for spec, expected in cases.items():
        changes = compare(stored, Basis(same, OBJECTIVES, _space(temperature=spec)))
        assert [(c.key, c.old, c.new, c.fixed) for c in changes] == expected, spec
    choices = _space(batch_size="{name: CategoricalDistribution, attributes: {choices: [16]}}")
    changed = compare(stored, Basis(same, OBJECTIVES, choices))
    assert [(c.key, c.fixed) for c in changed] == [("search_space.batch_size.choices", True)]


def test_keys_an_older_snapshot_lacks_are_not_compared(stored: Basis, tmp_path: Path) -> None:
    older = {k: v for k, v in (stored.snapshot or {}).items() if k != "calibration"}
    older["data"] = {k: v for k, v in older["data"].items() if k != "test_file"}
    new = _edited(tmp_path, _set("calibration.n_features", 64))
    assert compare(Basis(older, OBJECTIVES, None), Basis(new, OBJECTIVES, _space())) == []


def test_messages_are_capped_and_records_are_plain_json() -> None:
    changes = [Change(f"data.k{i}", "x" * 1000, list(range(1000))) for i in range(20)]
    text = describe(changes)
    assert text.endswith("; and 12 more") and len(text) < 8 * 200 + 20
    record = change_record(changes[:1], now=0)
    assert record["time"] == "1970-01-01T00:00:00Z"
    assert json.loads(json.dumps(record))["changes"][0]["key"] == "data.k0"


# ----------------------------------------------------------------------------- nas study run


def _study_file(tiny_study: Any, tmp_path: Path, **overrides: Any) -> Path:
    path = tiny_study(cache_dir=str(tmp_path / "cache"), **overrides)
    raw = yaml.safe_load(path.read_text())
    raw["storage"] = f"sqlite:///{tmp_path / 'nas.db'}"
    path.write_text(yaml.safe_dump(raw))
    return path


def _created(path: Path) -> optuna.Study:
    """The study as `nas study run` leaves it (snapshot, metric names, space), without trials."""
    from nas.cli._drift import remember_space
    from nas.search_space import study_space
    from nas.study.lifecycle import open_study
    from nas.study.storage import open_storage

    config = load_study(path)
    url = config.storage or ""
    study = open_study(config, open_storage(url), ["exact", "params"], url)
    remember_space(study, study_space(config))
    return study


def _main(capsys: Any, *argv: str) -> tuple[int, str]:
    from nas.cli import main

    code = main(list(argv))
    return code, capsys.readouterr().err


def test_a_changed_study_file_is_refused_before_any_work(
    tmp_path: Path,
    tiny_study,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    import nas.trial.run

    study = _created(_study_file(tiny_study, tmp_path))
    monkeypatch.setattr(nas.trial.run, "prepare", lambda *a: pytest.fail("prepare was reached"))
    changed = _study_file(
        tiny_study,
        tmp_path,
        thresholds=[{"metric": "exact", "min": 70.0}],
        data={"max_seq_length": 64, "doc_stride": 32, "max_query_length": 16, "seed": 1},
    )
    code, err = _main(capsys, "study", "run", str(changed))
    lines = [line for line in err.splitlines() if "nas: error:" in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"study 'tiny' exists in sqlite:///{tmp_path / 'nas.db'} (the file" in lines[0]
    assert "and ran its 1 trials under another config" in lines[0]
    assert "thresholds[0].min 50.0 -> 70.0" in lines[0] and "data.seed 0 -> 1" in lines[0]
    assert "data.synthetic.n_train 200 -> 3000" in lines[0]
    assert "--accept-config-change" in lines[0]
    assert not (tmp_path / "cache").exists()
    choices = tmp_path / "space.yaml"
    shipped = (REPO / "search_spaces" / "quickstart.yaml").read_text()
    choices.write_text(shipped.replace("choices: [16, 32]", "choices: [16, 32, 64]"))
    other = _study_file(tiny_study, tmp_path, search_space=str(choices))
    code, err = _main(capsys, "study", "run", str(other), "--accept-config-change")
    assert (
        code == 2 and "cannot take search_space.batch_size.choices [16, 32] -> [16, 32, 64]" in err
    )
    assert "run it under a new name (e.g. name: tiny_v2)" in err
    again = optuna.load_study(study_name="tiny", storage=study._storage)
    assert study_record(again, CHANGES_ATTR) is None


def test_an_accepted_change_is_recorded_and_becomes_the_basis(
    tmp_path: Path,
    tiny_study,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    import nas.search

    _created(_study_file(tiny_study, tmp_path))
    runs: list[Any] = []
    # the CLI calls the face's run_study
    monkeypatch.setattr(nas.search, "run_study", lambda config, *a: runs.append(config) or 0)
    margin = [{"metric": "exact", "above_no_answer": 5.0}]
    changed = _study_file(tiny_study, tmp_path, thresholds=margin, n_trials=9)
    code, err = _main(capsys, "study", "run", str(changed))
    assert code == 2 and "thresholds[0].above_no_answer None -> 5.0" in err and not runs
    code, err = _main(capsys, "study", "run", str(changed), "--accept-config-change")
    assert code == 0 and len(runs) == 1, err
    assert "accepted 2 config change(s) to study 'tiny'" in err
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'nas.db'}")
    (record,) = study_record(study, CHANGES_ATTR)
    assert [c["key"] for c in record["changes"]] == [
        "thresholds[0].above_no_answer",
        "thresholds[0].min",
    ]
    assert record["changes"][1] == {"key": "thresholds[0].min", "old": 50.0, "new": None}
    (threshold,) = config_snapshot(study)["thresholds"]
    no_answer = 50.0  # the tiny synthetic split is half unanswerable
    assert Threshold(**threshold) == Threshold("exact", no_answer + 5.0, 5.0)
    assert "temperature" in study_record(study, SPACE_ATTR)
    code, err = _main(capsys, "study", "run", str(changed))  # the new basis: no refusal
    assert code == 0 and len(runs) == 2 and "accepted" not in err, err
