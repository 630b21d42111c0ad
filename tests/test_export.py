"""``nas export`` end to end: one real study run, then its trials exported and checked."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from cli_run import assert_usage_error, run_nas
from stored_study import MODEL_BYTES, stored_model, stored_study

from nas.artifacts import ChecksumError, is_verifiable
from nas.export import ExportError, export_trials, resolve_artifact_root, select_trials
from nas.study import named_constraints


@dataclass(frozen=True)
class Searched:
    """A finished tiny study: its config file, storage URL and artifact root."""

    study_file: Path
    url: str
    artifacts: Path

    def study(self) -> optuna.Study:
        return optuna.load_study(study_name="tiny", storage=self.url)


_SEARCHED: list[Searched] = []  # the study runs once per test session (about 15 s)


@pytest.fixture
def searched(tiny_study) -> Searched:  # type: ignore[no-untyped-def]
    """The tiny study of ``tiny_study(n_trials=3)``, run once; later tests reuse it read-only
    (its tmp folder stays until the session ends) and export into their own tmp_path."""
    if not _SEARCHED:
        study_file = tiny_study(n_trials=3)
        url = f"sqlite:///{study_file.parent / 'nas.db'}"
        result = run_nas("study", "run", str(study_file), "--storage", url)
        assert result.returncode == 0, result.stderr[-3000:]
        _SEARCHED.append(Searched(study_file, url, study_file.parent / "artifacts"))
    return _SEARCHED[0]


def export(searched: Searched, out: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_nas("export", "tiny", "--out", str(out), "--storage", searched.url, *args)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary folders an export may have left beside its output."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_front_export_writes_folders_and_index(searched: Searched, tmp_path: Path) -> None:
    out = tmp_path / "frontier"
    result = export(searched, out)  # --front is the default
    assert result.returncode == 0, result.stderr
    study = searched.study()
    front = study.best_trials
    assert front, "the tiny study should have a feasible front"
    index = json.loads((out / "index.json").read_text())
    rows, csv_rows = index["trials"], read_csv(out / "index.csv")
    assert len(rows) == len(csv_rows) == len(front)
    assert index["objectives"] == {"exact": "maximize", "params": "minimize"}
    by_number = {t.number: t for t in front}
    for row, csv_row in zip(rows, csv_rows, strict=True):
        trial = by_number[row["trial"]]
        assert [row[n] for n in study.metric_names] == trial.values
        assert [float(csv_row[n]) for n in study.metric_names] == trial.values
        assert row["n_params"] == trial.user_attrs["params"] == int(csv_row["n_params"])
        assert row["baseline"] is bool(trial.user_attrs.get("baseline"))
        assert row["feasible"] is True and csv_row["feasible"] == "True"
        assert {k: row[k] for k in trial.params} == trial.params and len(trial.params) == 11
        assert is_verifiable(trial)  # the run recorded every file's sha256
        folder = out / row["folder"]
        assert folder.name == f"trial-{trial.number}"
        files = set(trial.user_attrs["checkpoint_files"]) | {"README.md"}
        assert {p.name for p in folder.iterdir()} == files
        record = json.loads((folder / "nas.json").read_text())
        assert record["study"] == "tiny" and record["trial"] == trial.number
        assert record["values"] == dict(zip(study.metric_names, trial.values, strict=True))
        assert record["constraints"] == named_constraints(trial) and record["feasible"] is True
        assert record["storage"] == searched.url and record["exported_at"]
        card = (folder / "README.md").read_text()
        assert "AutoModelForQuestionAnswering.from_pretrained" in card
        assert f"trial {trial.number}" in card and "learning_rate" in card
        # the study finished, so its front was scored on the test split: the card says so
        test = study.user_attrs[f"test:{trial.number}"]
        assert record["test_metrics"] == test and record["teacher_metrics"]["test"]
        assert "Task metrics (test split: data no trial saw)" in card
        assert f"| exact | {test['exact']:.6g} |" in card and "Teacher (selection / test)" in card
    assert leftovers(tmp_path) == []


def test_exported_student_loads_and_reproduces_its_metric(
    searched: Searched, tmp_path: Path
) -> None:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from nas.config import load_study
    from nas.objective import prepare
    from nas.students import count_parameters
    from nas.train import predict, resolve_device

    out = tmp_path / "frontier"
    assert export(searched, out).returncode == 0
    prepared = prepare(load_study(searched.study_file))
    device = resolve_device(prepared.config.training.device)
    for trial in searched.study().best_trials:
        folder = out / f"trial-{trial.number}"
        model = AutoModelForQuestionAnswering.from_pretrained(str(folder))
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        assert count_parameters(model) == trial.user_attrs["params"]
        logits = predict(
            model,
            prepared.eval_features,
            "qa",
            tokenizer.pad_token_id,
            prepared.config.training.eval_batch_size,
            device,
        )
        scores = prepared.task.evaluate(
            prepared.splits.eval, prepared.eval_features, logits, prepared.data
        )
        assert scores["exact"] == pytest.approx(trial.user_attrs["metric:exact"], abs=1e-6)
        assert scores["f1"] == pytest.approx(trial.user_attrs["metric:f1"], abs=1e-6)


def test_trials_selects_the_given_trials(searched: Searched, tmp_path: Path) -> None:
    out = tmp_path / "chosen"
    result = export(searched, out, "--trials", "2,1")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["trial-1", "trial-2"]
    rows = json.loads((out / "index.json").read_text())["trials"]
    assert [row["trial"] for row in rows] == [2, 1]
    study = searched.study()
    for row in rows:
        assert row["exact"] == study.trials[row["trial"]].values[0]


@pytest.mark.parametrize(
    ("value", "fragment"), [("1,99", "no trial 99"), ("1;2", "'1;2' is not a comma")]
)
def test_bad_trial_numbers_are_usage_errors(
    searched: Searched, tmp_path: Path, value: str, fragment: str
) -> None:
    result = export(searched, tmp_path / "out", "--trials", value)
    assert_usage_error(result, fragment)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_existing_out_is_kept_unless_force(searched: Searched, tmp_path: Path) -> None:
    out = tmp_path / "frontier"
    assert export(searched, out).returncode == 0
    (out / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert_usage_error(export(searched, out), str(out), "exists", "--force")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # a file of the user's in the export: --force refuses, naming it, and keeps everything
    refused = export(searched, out, "--force", "--trials", "1")
    assert_usage_error(refused, "not a previous nas export", "notes.txt")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    (out / "notes.txt").unlink()
    forced = export(searched, out, "--force", "--trials", "1")
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in out.iterdir()) == ["index.csv", "index.json", "trial-1"]
    assert leftovers(tmp_path) == []


def _forced(searched: Searched, out: Path, root: Path | None = None) -> None:
    study = searched.study()
    export_trials(study, select_trials(study, [0]), out, root, searched.url, force=True)


def test_force_replaces_only_a_previous_export(
    searched: Searched, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--force never deletes a folder nas did not write, the current folder or one above
    it, nor the folders holding the study's storage or checkpoints."""
    from nas.export import ExportError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    with pytest.raises(ExportError, match=r"not a previous nas export \(it holds keep.txt\)"):
        _forced(searched, mine)
    assert (mine / "keep.txt").read_text() == "precious"
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ExportError, match="is not a folder"):
        _forced(searched, tmp_path / "a-file")
    work = tmp_path / "work" / "sub"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for out in (Path("."), work.parent, Path("..")):
        with pytest.raises(ExportError, match="current folder or one above it"):
            _forced(searched, out)
    assert work.is_dir()
    db_folder = Path(searched.url.removeprefix("sqlite:///")).parent
    for out in (db_folder, searched.artifacts):  # the storage's folder, the checkpoints
        with pytest.raises(ExportError, match="which the study needs"):
            _forced(searched, out, searched.artifacts)
    assert searched.study().trials  # the study and its files are still there


def test_missing_artifact_names_the_trial_and_writes_nothing(
    searched: Searched, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts-copy"
    shutil.copytree(searched.artifacts, artifacts, ignore=shutil.ignore_patterns("staging"))
    trial = searched.study().trials[2]
    (artifacts / trial.user_attrs["checkpoint_files"]["model.safetensors"]).unlink()
    out = tmp_path / "out"
    result = export(searched, out, "--trials", "1,2", "--artifact-root", str(artifacts))
    assert_usage_error(result, "trial 2", "model.safetensors", str(artifacts))
    assert not out.exists() and leftovers(tmp_path) == []
    # a forced export that fails leaves the previous export as it was
    assert export(searched, out, "--trials", "1").returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    forced = export(searched, out, "--force", "--trials", "2", "--artifact-root", str(artifacts))
    assert_usage_error(forced, "trial 2")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert leftovers(tmp_path) == []


def test_storage_password_is_masked(searched: Searched, tmp_path: Path) -> None:
    study = searched.study()
    url = "postgresql://nas:s3cret@db.example:5432/nas"
    export_trials(study, select_trials(study, [0]), tmp_path / "out", searched.artifacts, url)
    written = [p.read_text() for p in (tmp_path / "out").rglob("*.json")]
    written += [(tmp_path / "out" / "trial-0" / "README.md").read_text()]
    assert all("s3cret" not in text for text in written)
    record = json.loads((tmp_path / "out" / "trial-0" / "nas.json").read_text())
    assert record["storage"] == "postgresql://nas:***@db.example:5432/nas"


def in_memory_study() -> optuna.Study:
    study = optuna.create_study(study_name="mem", directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[50.0, 1000.0]))  # no checkpoint_files
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    return study


def test_selecting_a_failed_trial_is_an_error() -> None:
    with pytest.raises(ExportError, match=r"trial 1 of study 'mem' is FAIL, not COMPLETE"):
        select_trials(in_memory_study(), [0, 1])


def test_a_trial_without_checkpoint_is_an_error(tmp_path: Path) -> None:
    study = in_memory_study()
    with pytest.raises(ExportError, match=r"trial 0 of study 'mem' has no checkpoint.*/nowhere"):
        export_trials(study, study.trials[:1], tmp_path / "out", Path("/nowhere"), "sqlite://")
    assert list(tmp_path.iterdir()) == []


def test_artifact_root_comes_from_flag_then_trial_then_config_then_default() -> None:
    study = in_memory_study()
    plain = study.trials[0]
    assert resolve_artifact_root(None, study, plain).url == str(Path(".nas/artifacts").resolve())
    study.set_user_attr("config", {"artifact_root": "/data/artifacts"})
    assert resolve_artifact_root(None, study, plain).url == "/data/artifacts"
    recorded = optuna.trial.create_trial(
        values=[1.0, 2.0], user_attrs={"artifact_root": "s3://bucket/ckpt/"}
    )
    root = resolve_artifact_root(None, study, recorded)
    assert (root.url, root.bucket, root.prefix) == ("s3://bucket/ckpt", "bucket", "ckpt/")
    flag = resolve_artifact_root("elsewhere", study, recorded)
    assert flag.url == str(Path("elsewhere").resolve()) and flag.bucket is None


# ----------------------------------------------------------------------------- verification


def test_a_changed_checkpoint_names_the_trial_and_file_and_writes_nothing(tmp_path: Path) -> None:
    study, url, root = stored_study(tmp_path)
    model = stored_model(study, root, 1)
    model.write_bytes(MODEL_BYTES[:1000])  # truncated
    with pytest.raises(ChecksumError, match=r"trial 1 of study 'stored': checkpoint file "):
        export_trials(study, study.trials, tmp_path / "out", None, url)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    flipped = bytearray(MODEL_BYTES)
    flipped[511] ^= 0x01
    model.write_bytes(bytes(flipped))  # one bit flipped, same size
    result = run_nas("export", "stored", "--out", str(tmp_path / "out"), "--storage", url,
                     "--trials", "0,1")  # fmt: skip
    assert_usage_error(result, "trial 1", "model.safetensors", "sha256", "not the file")
    assert "cannot be verified" not in result.stderr
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    rows = export_trials(study, study.trials[:1], tmp_path / "out", None, url)  # intact
    assert (tmp_path / "out" / "trial-0" / "model.safetensors").read_bytes() == MODEL_BYTES
    assert [row["trial"] for row in rows] == [0]


def test_an_older_study_exports_with_one_warning_and_its_total_size_checked(
    tmp_path: Path,
) -> None:
    study, url, root = stored_study(tmp_path, older=True)
    assert not is_verifiable(study.trials[0])
    out = tmp_path / "out"
    result = run_nas("export", "stored", "--out", str(out), "--storage", url, "--trials", "0")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "cannot be verified" in line]
    assert len(warnings) == 1 and "trial(s) 0 " in warnings[0], result.stderr
    assert (out / "trial-0" / "model.safetensors").read_bytes() == MODEL_BYTES
    stored_model(study, root, 0).write_bytes(MODEL_BYTES[:1000])
    with pytest.raises(ChecksumError, match=r"trial 0 .*total \d+ bytes, \d+ recorded"):
        export_trials(study, study.trials[:1], tmp_path / "again", None, url)
    assert not (tmp_path / "again").exists() and leftovers(tmp_path) == []


def test_a_config_json_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    study, url, _ = stored_study(tmp_path, older=True)  # trial 1 stored "not json {"
    with pytest.raises(ExportError, match=r"^trial 1: its config.json is not valid JSON") as err:
        export_trials(study, study.trials[1:], tmp_path / "out", None, url)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
