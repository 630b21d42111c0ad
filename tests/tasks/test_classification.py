"""Classification tasks: file readers on the real shared data, labels, metrics, encoding."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nas.config import DataConfig
from nas.errors import DataError
from nas.tasks.base import Task, TextExample
from nas.tasks.classification import TASKS, ClassificationTask, LabelMap
from nas.tasks.classification_metrics import (
    accuracy,
    classification_metrics,
    macro_f1,
    matthews_corrcoef,
)
from nas.tasks.text_files import read_examples

# ----------------------------------------------------------------------------- metrics


def test_accuracy_hand_values() -> None:
    assert accuracy(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])) == 0.75
    assert accuracy(np.array([], dtype=int), np.array([], dtype=int)) == 0.0


def test_mcc_perfect_inverted_and_constant_binary() -> None:
    gold = np.array([0, 1, 1, 0, 1])
    assert matthews_corrcoef(gold, gold, 2) == pytest.approx(1.0)
    assert matthews_corrcoef(1 - gold, gold, 2) == pytest.approx(-1.0)
    assert matthews_corrcoef(np.ones(5, dtype=int), gold, 2) == 0.0  # undefined -> 0


def test_mcc_binary_hand_value() -> None:
    # tp=2 tn=1 fp=1 fn=1: (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    gold = np.array([1, 1, 1, 0, 0])
    pred = np.array([1, 1, 0, 1, 0])
    assert matthews_corrcoef(pred, gold, 2) == pytest.approx(1 / 6)


def test_mcc_multiclass_hand_values() -> None:
    # Symmetric 3-class case: c=3, s=6, t=p=(2,2,2): (18-12)/sqrt(24*24) = 0.25
    gold = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 2, 2, 0])
    assert matthews_corrcoef(pred, gold, 3) == pytest.approx(0.25)
    # c=3, s=5, t=(3,1,1), p=(2,3,0): (15-9)/sqrt((25-13)*(25-11)) = 6/sqrt(168)
    gold = np.array([0, 0, 0, 1, 2])
    pred = np.array([0, 0, 1, 1, 1])
    assert matthews_corrcoef(pred, gold, 3) == pytest.approx(6 / np.sqrt(168))


def test_macro_f1_hand_values() -> None:
    gold = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 2, 2, 0])
    assert macro_f1(pred, gold, 3) == pytest.approx(0.5)  # each class: 2*1/(2+2)
    gold = np.array([0, 0, 0, 1, 2])
    pred = np.array([0, 0, 1, 1, 1])
    # class 0: 4/5, class 1: 2/4, class 2: 0/1
    assert macro_f1(pred, gold, 3) == pytest.approx((0.8 + 0.5 + 0.0) / 3)
    # class 3 absent from gold and pred is left out of the mean
    assert macro_f1(np.array([0, 1]), np.array([0, 1]), 4) == pytest.approx(1.0)


def test_metrics_return_python_floats() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    result = classification_metrics(logits, np.array([0, 1, 1]))
    assert set(result) == {"accuracy", "macro_f1", "mcc"}
    assert all(type(v) is float for v in result.values())
    assert result["accuracy"] == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------- real files


def test_sst2_files(shared_data: Path) -> None:
    data = DataConfig(
        train_file=str(shared_data / "sst2/train.tsv"),
        test_file=str(shared_data / "sst2/dev.tsv"),
        eval_fraction=0.01,
    )
    splits = TASKS["sst2"].load(data)
    # the test split is the dev file; the selection split a seeded 1 % of the training rows
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (66_676, 673, 872)
    assert splits.label_names == ("negative", "positive")
    assert splits.test[0].text.startswith("it 's a charming and often affecting journey")
    assert {e.label for e in splits.eval} == {0, 1} == {e.label for e in splits.test}
    assert "sst2/train.tsv" in splits.description and "sst2/dev.tsv" in splits.description


def test_cola_headerless_files(shared_data: Path) -> None:
    data = DataConfig(
        train_file=str(shared_data / "cola/train.tsv"),
        eval_file=str(shared_data / "cola/train.tsv"),
        test_file=str(shared_data / "cola/dev.tsv"),
    )
    task = TASKS["cola"]
    splits = task.load(data)
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (8_551, 8_551, 1_043)
    assert splits.label_names == ("unacceptable", "acceptable")
    assert splits.train[0].text.startswith("Our friends won't buy this analysis")
    assert splits.train[0].label == 1
    assert "16 test texts also in the selection split" in splits.description
    assert task.primary_metric == "mcc"


def test_emotion_semicolon_files(shared_data: Path) -> None:
    data = DataConfig(
        train_file=str(shared_data / "emotion/train.txt"),
        eval_file=str(shared_data / "emotion/val.txt"),
        test_file=str(shared_data / "emotion/test.txt"),
    )
    splits = TASKS["emotion"].load(data)
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (16_000, 2_000, 2_000)
    assert splits.label_names == ("sadness", "joy", "love", "anger", "fear", "surprise")
    assert splits.train[0] == TextExample("i didnt feel humiliated", 0)  # sadness
    assert {e.label for e in splits.train} == set(range(6))


def test_imdb_csv_splits_itself(shared_data: Path) -> None:
    data = DataConfig(train_file=str(shared_data / "imdb/texts.csv"), eval_fraction=0.1)
    splits = TASKS["imdb"].load(data)
    # the rows marked is_valid are the test split; the selection split comes out of the rest
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (720, 80, 200)
    assert splits.label_names == ("negative", "positive")
    assert splits.train[0].label == 0 and splits.train[0].text.startswith("Un-bleeping")
    assert "is_valid" in splits.description


def test_sample_limits_are_seeded(shared_data: Path) -> None:
    full_data = DataConfig(train_file=str(shared_data / "imdb/texts.csv"), eval_fraction=0.1)
    base = replace(full_data, max_eval_samples=10, max_test_samples=12, max_train_samples=50)
    first = TASKS["imdb"].load(replace(base, seed=1))
    again = TASKS["imdb"].load(replace(base, seed=1))
    other = TASKS["imdb"].load(replace(base, seed=2))
    full = TASKS["imdb"].load(replace(full_data, seed=1))
    assert len(first.train) == 50 and first.train == again.train != other.train
    assert first.eval == full.eval[:10] and first.test == full.test[:12]


def test_registry() -> None:
    assert set(TASKS) == {"emotion", "sst2", "cola", "imdb", "text_classification"}
    for name, task in TASKS.items():
        assert isinstance(task, ClassificationTask) and isinstance(task, Task)
        assert task.name == name and task.kind == "classification"
    assert TASKS["emotion"].hub_name in ("dair-ai/emotion", "emotion")
    assert (TASKS["sst2"].hub_name, TASKS["sst2"].hub_config) == ("glue", "sst2")
    assert TASKS["imdb"].hub_splits == ("train", "test")


# ----------------------------------------------------------------------------- generic files


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_jsonl_with_named_columns_and_pairs(tmp_path: Path) -> None:
    rows = [
        {"premise": f"p{i}", "hypothesis": f"h{i}", "gold": ["yes", "no"][i % 2]} for i in range(6)
    ]
    train = _write(tmp_path / "t.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    held = [{"premise": f"q{i}", "hypothesis": "x", "gold": "no"} for i in range(2)]
    test = _write(tmp_path / "test.jsonl", "\n".join(json.dumps(r) for r in held) + "\n")
    data = DataConfig(
        train_file=train,
        eval_file=train,
        test_file=test,
        text_column="premise",
        text_pair_column="hypothesis",
        label_column="gold",
    )
    splits = TASKS["text_classification"].load(data)
    assert splits.label_names == ("no", "yes")  # sorted distinct train values
    assert splits.train[0] == TextExample("p0", 1, "h0")


def test_csv_test_and_selection_hold_outs_are_disjoint(tmp_path: Path) -> None:
    lines = ["text,label"] + [f'"row {i}, with comma",{i % 3}' for i in range(40)]
    train = _write(tmp_path / "d.csv", "\n".join(lines) + "\n")
    data = DataConfig(train_file=train, test_fraction=0.25, eval_fraction=0.2, seed=3)
    splits = TASKS["text_classification"].load(data)
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (24, 6, 10)
    assert splits.label_names == ("0", "1", "2")
    parts = [{e.text for e in split} for split in (splits.train, splits.eval, splits.test)]
    assert len(set().union(*parts)) == 40 and "row 0, with comma" in parts[0] | parts[1] | parts[2]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    again = TASKS["text_classification"].load(data)
    assert (again.eval, again.test) == (splits.eval, splits.test)  # seeded
    other = TASKS["text_classification"].load(replace(data, seed=4))
    assert other.test != splits.test


def test_no_selection_or_test_split_is_an_error(tmp_path: Path) -> None:
    train = _write(tmp_path / "d.csv", "text,label\na,x\nb,y\nc,x\nd,y\n")
    with pytest.raises(DataError, match="no test split; set data.test_file"):
        TASKS["text_classification"].load(DataConfig(train_file=train, eval_fraction=0.5))
    with pytest.raises(DataError, match="no selection split .* set data.eval_fraction"):
        TASKS["text_classification"].load(DataConfig(train_file=train, test_fraction=0.5))


def test_a_test_split_that_overlaps_the_selection_split_is_refused(tmp_path: Path) -> None:
    train = _write(tmp_path / "d.csv", "text,label\na,x\nb,y\nc,x\nd,y\n")
    with pytest.raises(DataError, match="data.eval_file and data.test_file are both"):
        TASKS["text_classification"].load(
            DataConfig(train_file=train, eval_file=train, test_file=train)
        )
    copy = _write(tmp_path / "copy.csv", "text,label\na,x\nb,y\n")
    with pytest.raises(DataError, match="2 of 2 test examples .* also occur in the selection"):
        TASKS["text_classification"].load(
            DataConfig(train_file=train, eval_file=train, test_file=copy)
        )


def test_label_names_from_config_and_integer_labels(tmp_path: Path) -> None:
    train = _write(
        tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "low"}\n'
    )
    test = _write(tmp_path / "t.jsonl", '{"text": "c", "label": 0}\n')
    data = DataConfig(
        train_file=train, eval_file=train, test_file=test, label_names=("low", "high")
    )
    splits = TASKS["text_classification"].load(data)
    assert [e.label for e in splits.train] == [1, 0]
    assert splits.label_names == ("low", "high")


def test_label_map_aliases_and_indices() -> None:
    labels = LabelMap(("negative", "positive"), {"neg": "negative", "pos": "positive"})
    assert [labels.index(v) for v in ("pos", "negative", "Positive", 0, "1", 2, "7")] == [
        1,
        0,
        1,
        0,
        1,
        None,
        None,
    ]
    inferred = LabelMap(("1", "2", "5"), by_value=True)
    assert [inferred.index(v) for v in (5, "1", 0)] == [2, 0, None]


# ----------------------------------------------------------------------------- errors


def test_bad_emotion_label_names_file_line_and_value(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.txt", "text;label_name\ni am ok;joy\ni am bored;boredom\n")
    with pytest.raises(DataError) as info:
        test = _write(tmp_path / "test.txt", "text;label_name\ni am fine;joy\n")
        TASKS["emotion"].load(DataConfig(train_file=train, eval_file=train, test_file=test))
    message = str(info.value)
    assert "'boredom'" in message and "train.txt line 3" in message and "surprise" in message


def test_out_of_range_integer_label(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.tsv", "sentence\tlabel\ngood\t1\nodd\t7\n")
    with pytest.raises(DataError, match=r"line 3: label '7'"):
        test = _write(tmp_path / "test.tsv", "sentence\tlabel\nfine\t1\n")
        TASKS["sst2"].load(DataConfig(train_file=train, eval_file=train, test_file=test))


def test_missing_column_names_the_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.csv", "a,b\nx,1\n")
    with pytest.raises(DataError, match=r"has columns \['a', 'b'\]; set data.text_column"):
        read_examples(path)
    with pytest.raises(DataError, match="data.label_column"):
        read_examples(path, DataConfig(text_column="a"))
    with pytest.raises(DataError, match="text_column = 'c' is not one of them"):
        read_examples(path, DataConfig(text_column="c"))


def test_json_fed_as_tsv(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.tsv", '{"text": "a", "label": 0}\n')
    with pytest.raises(DataError, match=r"train.tsv: looks like JSON.*\.jsonl"):
        read_examples(path)


def test_other_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found; set data.eval_file"):
        read_examples(tmp_path / "nope.tsv", key="data.eval_file")
    with pytest.raises(DataError, match="empty"):
        read_examples(_write(tmp_path / "e.csv", "\n"))
    with pytest.raises(DataError, match="expected tab-separated"):
        read_examples(_write(tmp_path / "c.tsv", "text,label\na,1\n"))
    with pytest.raises(DataError, match="no header naming 'sentence'"):
        read_examples(_write(tmp_path / "h.tsv", "a\tb\n"))
    with pytest.raises(DataError, match="unknown extension"):
        read_examples(_write(tmp_path / "x.parquet", "a\tb\n"))
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        read_examples(_write(tmp_path / "j.jsonl", '{"text": "a", "label": 0}\n{oops\n'))


def test_hub_failure_says_to_use_local_files(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataError, match=r"'glue:sst2'.*data.train_file"):
        TASKS["sst2"].load(DataConfig())


# ----------------------------------------------------------------------------- encode / evaluate


def test_encode_and_evaluate(tiny_tokenizer, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    task = TASKS["emotion"]
    data = DataConfig(
        train_file=str(shared_data / "emotion/train.txt"),
        eval_file=str(shared_data / "emotion/val.txt"),
        test_file=str(shared_data / "emotion/test.txt"),
        max_train_samples=200,
        max_seq_length=16,
    )
    examples = [*task.load(data).train, TextExample("first part", 1, "second part")]
    features = task.encode(examples, tiny_tokenizer, data)
    assert len(features) == len(examples)
    assert features.ids.dtype == np.int32 and features.type_ids.dtype == np.int8
    assert features.starts.dtype == np.int64 and features.labels.dtype == np.int64
    lengths = features.lengths()
    assert lengths.max() <= 16 and lengths.max() == 16
    starts = features.starts[:-1]
    assert (features.ids[starts] == tiny_tokenizer.cls_token_id).all()
    assert (features.ids[features.starts[1:] - 1] == tiny_tokenizer.sep_token_id).all()
    np.testing.assert_array_equal(features.labels, [e.label for e in examples])
    pair = features.type_ids[features.starts[-2] : features.starts[-1]]
    assert pair[0] == 0 and pair[-1] == 1  # the pair is the second segment
    logits = np.eye(6)[features.labels]
    assert task.evaluate(examples, features, logits, data)["accuracy"] == 1.0


def test_sst2_encodes_the_whole_training_file(tiny_tokenizer, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    data = DataConfig(train_file=str(shared_data / "sst2/train.tsv"), max_seq_length=64)
    task = TASKS["sst2"]
    from nas.tasks.text_files import read_examples

    train = [TextExample(r.text, int(r.label)) for r in read_examples(str(data.train_file), data)]
    features = task.encode(train, tiny_tokenizer, data)
    assert len(features) == 67_349 and features.lengths().max() <= 64


def test_hub_dataset_with_class_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )

    def split(n: int, name: str) -> object:
        rows = {"text": [f"{name} {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}
        return datasets.Dataset.from_dict(rows, features=features)

    calls: list[tuple[object, ...]] = []

    def fake_load(*args: object) -> object:
        calls.append(args)
        parts = {"train": split(8, "review"), "test": split(4, "t"), "validation": split(3, "v")}
        return datasets.DatasetDict(parts)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    splits = TASKS["imdb"].load(DataConfig(max_train_samples=5, eval_fraction=0.25))
    assert calls == [("imdb", None)]
    # IMDB's test split is only ever the test split: selection comes out of its train split
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (5, 2, 4)
    assert splits.label_names == ("negative", "positive")
    assert [e.label for e in splits.test] == [0, 1, 0, 1]
    assert {e.text for e in splits.eval} <= {f"review {i}" for i in range(8)}
    assert "hub imdb [test]" in splits.description
    hub = DataConfig(hub_name="someone/reviews:v2", eval_fraction=0.25)
    generic = TASKS["text_classification"].load(hub)
    assert calls[-1] == ("someone/reviews", "v2") and generic.label_names == ("neg", "pos")
    assert len(generic.test) == 3  # the generic task's test split is "validation"
