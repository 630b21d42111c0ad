"""Study configs: every shipped file loads; typos and bad values are errors naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nas.config import StudyConfig, folder_name, load_study
from nas.errors import ConfigError
from nas.search_space import load_search_space

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "studies" / "quickstart.yaml"


@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.yaml")), ids=str)
def test_every_shipped_study_loads_with_its_space_and_baseline(path: Path) -> None:
    config = load_study(path)
    assert isinstance(config, StudyConfig)
    assert config.name == path.stem
    space = load_search_space(config.paths.search_space)
    if config.baseline is not None:
        space.validate(config.baseline, where=f"{path}: baseline")


def write_study(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["search_space"] = str(REPO / "search_spaces" / "quickstart.yaml")
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_trails": 5}, "unknown key 'n_trails'; allowed: name, task"),
        ({"data__max_seq_lenght": 5}, "unknown key 'data.max_seq_lenght'"),
        ({"n_trials": "many"}, "n_trials = 'many' must be an integer"),
        ({"n_trials": 0}, "n_trials = 0 must be positive"),
        ({"data__doc_stride": 200}, "doc_stride = 200 must be below"),
        ({"sampler__name": "grid"}, "sampler.name = 'grid' is not one of"),
        ({"training__bf16": "maybe"}, "training.bf16 = 'maybe'"),
        ({"thresholds": [{"metric": "exact"}]}, "thresholds[0] (exact) needs exactly one of min"),
        ({"teacher": "bert"}, "'teacher' must be a mapping"),
        ({"data__eval_fraction": 1.5}, "eval_fraction = 1.5 must be in (0, 1)"),
        (
            {
                "objectives": [
                    {"name": "exact", "direction": "maximize"},
                    {"name": "exact", "direction": "minimize"},
                ]
            },
            "repeat a name",
        ),
    ],
)
def test_bad_study_is_an_error_naming_file_key_and_value(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    path = write_study(tmp_path, **changes)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="study file not found"):
        load_study(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(bad)


def test_paths_resolve_against_the_study_file_and_cache_dir(tmp_path: Path) -> None:
    config = load_study(write_study(tmp_path, data__train_file="data/train.json"))
    assert config.paths.train_file == str(tmp_path / "data" / "train.json")
    assert config.paths.eval_file is None and config.paths.teacher_init is None
    assert config.paths.student_source == config.paths.teacher  # the quickstart's own teacher
    assert Path(config.cache_dir).is_absolute()
    teacher = config.paths.teacher
    assert teacher.startswith(config.cache_dir) and teacher.endswith("teachers/quickstart")
    # the config keeps the values as written: the study's snapshot and drift compare those
    assert config.data.train_file == "data/train.json"
    assert config.teacher.path == "{cache_dir}/teachers/quickstart"


def test_hub_names_pass_through_and_paths_follow_replace_and_pickle(tmp_path: Path) -> None:
    import dataclasses
    import pickle

    config = load_study(write_study(tmp_path, student_source="distilbert-base-uncased"))
    assert config.paths.student_source == "distilbert-base-uncased"
    (tmp_path / "distilbert-base-uncased").mkdir()  # now a folder beside the study file
    assert pickle.loads(pickle.dumps(config)).paths.student_source == str(
        tmp_path / "distilbert-base-uncased"
    )
    moved = dataclasses.replace(config, cache_dir=str(tmp_path / "elsewhere"))
    assert moved.paths.teacher == str(tmp_path / "elsewhere" / "teachers" / "quickstart")


def test_scientific_notation_without_dot_is_a_float(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    text = path.read_text().replace("learning_rate: 0.002", "learning_rate: 2e-3")
    path.write_text(text)
    assert load_study(path).teacher.train is not None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../../../../tmp/x/ESCAPED", "contains a path separator"),
        ("a\\b", "contains a path separator"),
        ("..", "contains '..'"),
        ("v1..v2", "contains '..'"),
        ("line\nbreak", "contains a control character"),
        ("nul\x00", "contains a control character"),
        ("  ", "is empty"),
        ("a" * 201, "has 201 characters, over 200"),
    ],
)
def test_a_study_name_is_a_key_never_a_path(tmp_path: Path, name: str, message: str) -> None:
    path = write_study(tmp_path, name=name)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    text = str(info.value)
    assert text.startswith(f"{path}: name = ") and message in text and "\n" not in text
    assert len(text) < 400  # a 300-character name is cut in the message


def test_other_names_load_and_get_safe_folder_names(tmp_path: Path) -> None:
    for name in ("quickstart", "sst2 small: v2", "étude", "a" * 200, "x.y-z_1"):
        assert load_study(write_study(tmp_path, name=name)).name == name
    assert folder_name("quickstart") == "quickstart"  # clean names keep their folders
    assert folder_name("x.y-z_1") == "x.y-z_1"
    odd = [folder_name(n) for n in ("sst2 small: v2", "sst2_small_ v2", "étude", "?tude")]
    assert odd[0].startswith("sst2_small__v2-") and len(set(odd)) == 4  # hashed apart
    for folder in odd:
        assert folder.replace("-", "").replace("_", "").replace(".", "").isalnum()
        assert folder.isascii() and len(folder) <= 75


# ----------------------------------------------------------------------------- hostile files


def _alias_bomb(levels: int = 9) -> str:
    """A "billion laughs": each level lists the previous one nine times (~650 bytes)."""
    lines = ["name: bomb", "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join([*lines, f"n_trials: *l{levels - 1}"]) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_alias_bomb(), "aliases expand to over 100,000 values"),
        ("name: &a [1, *a]\n", "the alias *a refers to a value that contains it"),
        ("name: " + "[" * 100 + "]" * 100 + "\n", "nest deeper than 64 levels"),
        ("n_trials: 1" + "0" * 5000 + "\n", "a value cannot be read (Exceeds the limit"),
        ("name: [unclosed\ntask: x\n", "not valid YAML (while parsing a flow sequence"),
    ],
)
def test_hostile_yaml_fails_fast_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    import time

    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert time.perf_counter() - start < 2.0
    line = str(info.value)
    assert message in line and line.startswith(str(path)) and "\n" not in line, line


def test_the_alias_bomb_is_small_and_plain_aliases_still_load(tmp_path: Path) -> None:
    assert len(_alias_bomb()) <= 650  # 9**9 values: 387 million "lol"s
    path = write_study(tmp_path)
    text = path.read_text().replace("n_trials: 12", "n_trials: &n 12\nreference_point: {}")
    path.write_text(text + "calibration: {n_features: *n}\n")
    assert load_study(path).calibration.n_features == 12


def test_error_messages_cap_the_value_they_show(tmp_path: Path) -> None:
    huge = {"n_trials": list(range(5_000)), "name": "x" * 100_000}
    for key, value in huge.items():
        path = write_study(tmp_path, **{key: value})
        with pytest.raises(ConfigError) as info:
            load_study(path)
        assert len(str(info.value)) < len(str(path)) + 400, str(info.value)[:500]
    path = write_study(tmp_path, **{"y" * 10_000: 1})
    with pytest.raises(ConfigError, match="unknown key 'yyy") as info:
        load_study(path)
    assert len(str(info.value)) < len(str(path)) + 1000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"training__max_steps": -5}, "training.max_steps = -5 must be positive"),
        ({"trial_timeout_s": -1}, "trial_timeout_s = -1 must be > 0"),
        ({"trial_timeout_s": float("inf")}, "trial_timeout_s = inf must be a finite number"),
        ({"thresholds": [{"metric": "exact", "min": float("nan")}]}, "min = nan must be a finite"),
        ({"sampler__seed": -1}, "sampler.seed = -1 must be in [0, 4294967295]"),
        ({"training__grad_clip": -0.5}, "training.grad_clip = -0.5 must be >= 0"),
        ({"teacher__train__epochs": 0}, "teacher.train.epochs = 0 must be > 0"),
        ({"teacher__train__batch_size": 0}, "teacher.train.batch_size = 0 must be positive"),
        ({"data__synthetic__unanswerable_fraction": 1.5}, "must be in [0, 1]"),
        ({"data__synthetic__n_train": 0}, "data.synthetic.n_train = 0 must be positive"),
        ({"calibration__max_tokens": 0}, "calibration.max_tokens = 0 must be positive"),
        ({"resources__gpu_memory_gb": 10**400}, "gpu_memory_gb = 100000000000000000...0"),
        ({"training__log_every": 2.5}, "training.log_every = 2.5 must be an integer"),
    ],
)
def test_numeric_settings_are_type_and_range_checked(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    path = write_study(tmp_path, **changes)
    with pytest.raises(ConfigError) as info:
        load_study(path)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_every_numeric_setting_has_a_range() -> None:
    import dataclasses
    import typing

    from nas.config import RANGES

    def numeric_keys(cls: type, prefix: str) -> list[str]:
        keys = []
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls)[f.name]
            if typing.get_origin(tp) in (tuple, dict):  # thresholds: finite, checked apart
                continue
            args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
            inner = args[0]
            if dataclasses.is_dataclass(inner):
                keys += numeric_keys(inner, f"{prefix}{f.name}.")  # type: ignore[arg-type]
            elif inner in (int, float):
                keys.append(f"{prefix}{f.name}")
        return keys

    from nas.config import StudyConfig

    assert sorted(numeric_keys(StudyConfig, "")) == sorted(RANGES)
