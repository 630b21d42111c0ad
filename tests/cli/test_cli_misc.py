"""`nas student` and `nas teacher train` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.cli_run import assert_usage_error
from support.cli_run import run_nas as nas


def test_student_reports_parts_count_and_memory(tmp_path: Path) -> None:
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    source = tmp_path / "source"
    config = DistilBertConfig(vocab_size=500, dim=64, n_layers=4, n_heads=4, hidden_dim=256)
    DistilBertForMaskedLM(config).save_pretrained(source)
    params = {"n_layers": 2, "n_heads": 2, "hidden_size": 32, "ffn_dim": 64}
    result = nas(
        "student",
        "--source",
        str(source),
        "--task",
        "squad_v2",
        "--params",
        json.dumps(params),
        "--batch-size",
        "8",
        "--seq-len",
        "128",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["params"] == sum(part["params"] for part in report["parts"])
    # embeddings: (500 + 512) * 32 + LayerNorm 2 * 32; head: 32 * 2 + 2
    assert report["parts"][0]["params"] == (500 + 512) * 32 + 64
    assert report["parts"][-1]["params"] == 66
    assert report["memory_bytes"]["total"] > report["memory_bytes"]["weights"] > 0
    text = nas(
        "student", "--source", str(source), "--task", "sst2", "--params", json.dumps(params)
    )
    assert text.returncode == 0 and "estimated training memory" in text.stdout
    bad = nas(
        "student",
        "--source",
        str(source),
        "--task",
        "squad_v2",
        "--params",
        json.dumps({**params, "n_heads": 3}),
    )
    assert bad.returncode == 2 and "does not divide" in bad.stderr


def test_student_out_writes_the_sliced_untrained_student(
    tmp_path: Path, tiny_tokenizer_dir: Path, shared_data: Path
) -> None:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DistilBertConfig,
        DistilBertForMaskedLM,
    )

    source = tmp_path / "source"
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=64, n_layers=2, n_heads=4)
    DistilBertForMaskedLM(config).save_pretrained(source)
    tokenizer.save_pretrained(str(source))
    params = json.dumps({"n_layers": 1, "n_heads": 2, "hidden_size": 32, "ffn_dim": 64})
    args = ("student", "--source", str(source), "--task", "sst2", "--params", params)
    out = tmp_path / "student"
    first = nas(*args, "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "data-free ranking (LayerNorm gains): pass --data" in first.stderr
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert (model.config.dim, model.config.n_layers) == (32, 1)
    assert AutoTokenizer.from_pretrained(str(out)).get_vocab() == tokenizer.get_vocab()
    record = json.loads((out / "nas.json").read_text())
    assert record["ranking"].startswith("data-free") and record["trained"] is False
    again = nas(*args, "--out", str(out))
    assert_usage_error(again, f"--out {out} exists")
    study = tmp_path / "study.yaml"
    data = {
        "train_file": str(shared_data / "sst2" / "train.tsv"),
        "eval_file": str(shared_data / "sst2" / "dev.tsv"),
        "test_fraction": 0.1,
        "max_train_samples": 40,
        "max_seq_length": 32,
    }
    study.write_text(
        yaml.safe_dump(
            {
                "name": "calibrated",
                "task": "sst2",
                "data": data,
                "teacher": {"path": str(source)},
                "search_space": "search_spaces/quickstart.yaml",
                "cache_dir": str(tmp_path / "cache"),
            }
        )
    )
    calibrated = nas(*args, "--data", str(study), "--out", str(tmp_path / "calibrated"))
    assert calibrated.returncode == 0, calibrated.stderr
    assert "running the source over 40 train features" in calibrated.stderr
    record = json.loads((tmp_path / "calibrated" / "nas.json").read_text())
    assert record["ranking"].startswith("activation ranking over")
    assert "40 calibration features" in record["ranking"]
    assert len(list((tmp_path / "cache" / "calibration").glob("*/stats.safetensors"))) == 1


def test_teacher_train_refuses_to_overwrite(tiny_study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    study = tiny_study()
    out = tmp_path / "teacher"
    first = nas("teacher", "train", str(study), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert (out / "model.safetensors").is_file() and (out / "teacher.json").is_file()
    record = json.loads((out / "teacher.json").read_text())
    assert record["task"] == "synthetic_qa" and "exact" in record["metrics"]
    again = nas("teacher", "train", str(study), "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    raw = yaml.safe_load(study.read_text())
    del raw["teacher"]["train"]
    study.write_text(yaml.safe_dump(raw))
    missing = nas("teacher", "train", str(study), "--out", str(tmp_path / "other"))
    assert missing.returncode == 2 and "teacher.train is not set" in missing.stderr


# ----------------------------------------------------------------------------- bad input
# Each case is refused with one line naming the value, exit code 2, before any data is loaded or
# teacher trained, and without writing anything (no nas.db, no cache, no Ray folder).


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the CLI in-process; assert exit 2 and one error line; return that line."""
    from nas.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def _bad_study(tmp_path: Path, tiny_study, **overrides: object) -> Path:  # type: ignore[no-untyped-def]
    name = overrides.pop("name", "tiny")  # the fixture names the file after the study
    path = tiny_study(cache_dir=str(tmp_path / "cache"), **overrides)
    raw = yaml.safe_load(path.read_text())
    raw["name"] = name
    raw["storage"] = "sqlite:///nas.db"  # the storage a bad run would create, in the cwd
    path.write_text(yaml.safe_dump(raw))
    return path


def _nothing_written(tmp_path: Path, *also: Path) -> None:
    assert not (tmp_path / "nas.db").exists()
    assert not (tmp_path / "cache").exists()  # no data, no teacher, no Ray folder
    for path in also:
        assert not path.exists(), path


def test_trial_run_checks_params_before_training_the_teacher(
    tmp_path: Path,
    tiny_study,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.chdir(tmp_path)
    study = str(_bad_study(tmp_path, tiny_study))
    cases = {
        '{"n_layers": -3}': "n_layers = -3 is outside the search space ([1, 4])",
        '{"dropout": 0.1}': "unknown parameter 'dropout'",
        '{"n_layers": "3"}': "n_layers = '3' is not a number",
    }
    for params, message in cases.items():
        line = _refused(capsys, "trial", "run", "--study", study, "--params", params)
        assert message in line and "--params" in line, line
    _nothing_written(tmp_path)


def test_a_baseline_outside_the_space_fails_before_prepare(
    tmp_path: Path,
    tiny_study,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from conftest import TINY_BASELINE

    monkeypatch.chdir(tmp_path)
    study = str(_bad_study(tmp_path, tiny_study, baseline={**TINY_BASELINE, "n_layers": 9}))
    for argv in (("study", "run", study), ("trial", "run", "--study", study)):
        line = _refused(capsys, *argv)
        assert "baseline: n_layers = 9 is outside the search space" in line, line
    _nothing_written(tmp_path)


def test_study_names_are_keys_never_paths(
    tmp_path: Path,
    tiny_study,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.chdir(tmp_path)
    cases = {
        "../../../../x/ESCAPED": "contains a path separator",
        "a\\b": "contains a path separator",
        "a" * 300: "has 300 characters, over 200",
        "bad..name": "contains '..'",
        "tab\there": "contains a control character",
    }
    for name, message in cases.items():
        line = _refused(capsys, "study", "run", str(_bad_study(tmp_path, tiny_study, name=name)))
        assert message in line and "name = " in line, line
    _nothing_written(tmp_path, tmp_path / "x")


def test_n_trials_and_workers_must_be_at_least_one(
    tmp_path: Path,
    tiny_study,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.chdir(tmp_path)
    study = str(_bad_study(tmp_path, tiny_study))
    for flag, value in (("--n-trials", "0"), ("--n-trials", "-2"), ("--workers", "0")):
        line = _refused(capsys, "study", "run", study, flag, value)
        assert f"argument {flag}: {value} must be at least 1" in line, line
    line = _refused(capsys, "study", "run", study, "--n-trials", "many")
    assert "'many' is not an integer" in line
    _nothing_written(tmp_path)


def test_a_categorical_too_large_for_mysql_fails_before_the_study_exists(
    tmp_path: Path,
    tiny_study,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from conftest import TINY_BASELINE

    monkeypatch.chdir(tmp_path)
    space = tmp_path / "space.yaml"
    shipped = (Path(__file__).parents[2] / "search_spaces" / "quickstart.yaml").read_text()
    lines = [line for line in shipped.splitlines() if not line.startswith("ffn_dim")]
    choices = list(range(64, 64 + 6 * 10_000, 6))
    space.write_text("\n".join([*lines, f"ffn_dim: {{type: categorical, choices: {choices}}}"]))
    study = _bad_study(
        tmp_path, tiny_study, search_space=str(space), baseline={**TINY_BASELINE, "ffn_dim": 64}
    )
    url = "mysql+pymysql://root@127.0.0.1:9/test"  # never reached: the check needs no server
    line = _refused(capsys, "study", "run", str(study), "--storage", url)
    assert "parameter ffn_dim" in line and "68,246 bytes" in line and "65,535" in line, line
    assert "fewer choices" in line and "PostgreSQL or SQLite" in line
    _nothing_written(tmp_path)


# ----------------------------------------------------------------------------- reading a study


def _create_studies(url: str, *names: str) -> None:
    """Plain Optuna studies, created without Optuna's log line (its handler would keep this
    test's captured stderr and fail on it in the next test)."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        for name in names:
            optuna.create_study(storage=url, study_name=name)
    finally:
        optuna.logging.set_verbosity(before)


def test_read_commands_create_no_database_and_name_its_path(
    tmp_path: Path,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NAS_STORAGE", raising=False)
    commands = [
        ("study", "status", "x"),
        ("study", "front", "x"),
        ("study", "report", "x", "--out", "r.html"),
        ("study", "list"),
        ("export", "x", "--out", "out"),
        ("dashboard", "x"),
    ]
    for argv in commands:
        line = _refused(capsys, *argv)
        assert f"(the file {tmp_path / 'nas.db'}): the file does not exist" in line, line
    assert list(tmp_path.iterdir()) == []  # no nas.db, no -wal, no report
    _create_studies("sqlite:///nas.db", "b", "a")
    line = _refused(capsys, "study", "status", "x")
    assert f"no study 'x' in sqlite:///nas.db (the file {tmp_path / 'nas.db'})" in line
    assert "studies there: 'a', 'b'" in line


def test_read_only_storage_is_one_line_before_any_work(
    tmp_path: Path,
    tiny_study,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:

    monkeypatch.chdir(tmp_path)
    study = _bad_study(tmp_path, tiny_study)
    _create_studies(f"sqlite:///{tmp_path / 'ro.db'}", "tiny")
    url = f"sqlite:///file:{tmp_path / 'ro.db'}?mode=ro&uri=true"
    for argv in (("study", "run", str(study)), ("study", "front", "tiny", "--test")):
        line = _refused(capsys, *argv, "--storage", url)
        assert "ro.db is read-only here" in line and "chmod u+w" in line, line
    _nothing_written(tmp_path)


def test_a_closed_stdout_ends_quietly_with_141(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    _create_studies(f"sqlite:///{tmp_path / 'nas.db'}", "a")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before nas writes: `nas study list | head -0`
    try:
        result = subprocess.run(
            [sys.executable, "-m", "nas", "study", "list"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "NAS_STORAGE": ""},
        )
    finally:
        os.close(write)
    assert (result.returncode, result.stderr) == (141, "")


def test_status_and_list_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from support.study_factory import hand_built_study

    from nas.cli import main

    url = f"sqlite:///{tmp_path / 'hand.db'}"
    hand_built_study(url)
    assert main(["study", "status", "hand", "--storage", url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["states"] == {"COMPLETE": 5, "COMPLETE (infeasible)": 1, "FAIL": 2}
    assert status["failures"] == {"oom": 1, "nan_loss": 1}
    assert [p["trial"] for p in status["front"]] == [5, 2, 0, 1]
    assert status["baseline"]["trial"] == 0 and status["objectives"] == ["exact", "params"]
    assert main(["study", "list", "--storage", url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == [{"name": "hand", "trials": 8, "directions": ["maximize", "minimize"]}]


def test_quiet_drops_progress_and_the_dashboard_request_log(
    tmp_path: Path,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    import argparse
    import socket

    import bottle
    from support.study_factory import hand_built_study

    from nas.cli import main
    from nas.cli._common import progress, set_log_level

    set_log_level(argparse.Namespace(quiet=True))
    progress("hidden")
    set_log_level(argparse.Namespace(log_level="info"))
    progress("shown")
    assert capsys.readouterr().err == "[nas] shown\n"
    url = f"sqlite:///{tmp_path / 'hand.db'}"
    hand_built_study(url)
    served: list[dict[str, object]] = []
    monkeypatch.setattr(bottle, "run", lambda app, **kw: served.append(kw))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    for flags in ([], ["--quiet"], ["--log-level", "error"]):
        assert main(["dashboard", "hand", "--storage", url, "--port", port, *flags]) == 0
        out = capsys.readouterr().out
        assert ("published nas's front" in out) is not flags, out
        assert "optuna-dashboard: http://127.0.0.1:" in out  # the address is always shown
    assert [kw["quiet"] for kw in served] == [False, True, True]  # bottle: no line per request
    main(["study", "list", "--storage", url])  # a command without the options: info again
    progress("shown again")
    assert capsys.readouterr().err.endswith("[nas] shown again\n")
