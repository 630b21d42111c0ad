"""Storage URLs: masking, SQLite settings, ``nas storage check`` on every backend, journal runs."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState
from support.cli_run import assert_usage_error
from support.cli_run import run_nas as nas
from support.servers import POSTGRES
from support.together import run_together

from nas.config import load_study
from nas.errors import NasError
from nas.study.lifecycle import open_study
from nas.study.storage import mask_password, open_storage, redact


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://nas:s3cr%40t@db:5432/studies", "postgresql://nas:***@db:5432/studies"),
        ("postgresql://nas:pa:ss@db/studies", "postgresql://nas:***@db/studies"),
        ("postgresql://nas:p@ss@db/studies", "postgresql://nas:***@db/studies"),  # raw '@'
        ("postgresql://nas@srv:pw@db/studies", "postgresql://nas@srv:***@db/studies"),
        (
            "mysql+pymysql://u@db/s?charset=utf8&passwd=x1",
            "mysql+pymysql://u@db/s?charset=utf8&passwd=***",
        ),  # noqa: E501
        (
            "postgresql://u@db/s?password=x%40y&sslpassword=z",
            "postgresql://u@db/s?password=***&sslpassword=***",
        ),  # noqa: E501
        ("sqlite:///nas.db", "sqlite:///nas.db"),
        ("mysql+pymysql://root@h/db", "mysql+pymysql://root@h/db"),
        ("journal:/runs/study.log", "journal:/runs/study.log"),
    ],
)
def test_mask_password_hides_only_the_secret(url: str, masked: str) -> None:
    assert mask_password(url) == masked


def test_redact_removes_every_form_of_the_password() -> None:
    url = "postgresql://u:s3cr%40t%3Ax@db/s?password=q%2Bw"
    text = f"failed for {url}: password 's3cr@t:x' or s3cr%40t%3Ax or q+w rejected"
    clean = redact(text, url)
    assert "s3cr" not in clean and "q+w" not in clean and "q%2Bw" not in clean
    assert "postgresql://u:***@db/s?password=***" in clean


def test_unreachable_storage_is_a_user_error_without_the_password() -> None:
    with pytest.raises(NasError) as info:
        open_storage("postgresql://u:hun%40ter2@127.0.0.1:1/x")
    assert "hun" not in str(info.value) and "u:***@" in str(info.value)
    with pytest.raises(NasError, match="raw '@'; percent-encode") as raw:
        open_storage("postgresql://u:hunter@22@127.0.0.1:1/x")
    assert "hunter" not in str(raw.value) and "22" not in str(raw.value)


def test_sqlite_study_is_in_wal_mode_with_a_busy_timeout(
    tiny_study: Callable[..., Path], tmp_path: Path
) -> None:
    db = tmp_path / "nas.db"
    url = f"sqlite:///{db}"
    storage = open_storage(url)
    open_study(load_study(tiny_study()), storage, ["exact", "params"], url)
    with contextlib.closing(sqlite3.connect(db)) as plain:  # a reader that sets nothing
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    engine = storage.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000


def test_connections_to_a_new_file_switch_to_wal_together(tmp_path: Path) -> None:
    """SQLite refuses a journal-mode change at once ("database is locked", no busy wait) when
    connections to a new file make it together; with four at a time that happened in about 1
    start in 5 (drivers starting together on a new nas.db failed then)."""
    from nas.study.storage import enable_wal

    for attempt in range(25):
        db = tmp_path / f"{attempt}.db"
        connections = [sqlite3.connect(db, timeout=60, check_same_thread=False) for _ in range(4)]
        for connection in connections:
            connection.isolation_level = None  # as nas's engines run them
        errors = run_together(enable_wal, connections)
        for connection in connections:
            connection.close()
        assert errors == [], f"attempt {attempt}: {errors}"
        with contextlib.closing(sqlite3.connect(db)) as plain:
            assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ------------------------------------------------------------------ reading creates nothing


def test_open_existing_creates_no_file_and_no_tables(tmp_path: Path) -> None:
    from nas.study.storage import StorageError, open_existing

    for url in (f"sqlite:///{tmp_path / 'nas.db'}", f"journal:{tmp_path / 'nas.log'}"):
        with pytest.raises(StorageError) as info:
            open_existing(url)
        assert "the file does not exist (nothing was created)" in str(info.value)
        assert str(tmp_path) in str(info.value)  # the absolute path
    assert list(tmp_path.iterdir()) == []
    sqlite3.connect(tmp_path / "other.db").close()  # an empty SQLite file, not Optuna's
    with pytest.raises(StorageError, match="holds no Optuna studies"):
        open_existing(f"sqlite:///{tmp_path / 'other.db'}")
    with contextlib.closing(sqlite3.connect(tmp_path / "other.db")) as plain:
        assert plain.execute("SELECT name FROM sqlite_master").fetchall() == []
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    optuna.create_study(storage=url, study_name="a")
    assert [s.study_name for s in open_existing(url).get_all_studies()] == ["a"]


def test_location_gives_a_files_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nas.study.storage import location

    monkeypatch.chdir(tmp_path)
    assert location("sqlite:///nas.db") == f"sqlite:///nas.db (the file {tmp_path / 'nas.db'})"
    assert location("journal:runs/s.log").endswith(f"(the file {tmp_path / 'runs' / 's.log'})")
    assert location("postgresql://u:pw@db/x") == "postgresql://u:***@db/x"


def test_a_read_only_sqlite_file_is_one_line_with_the_fix(tmp_path: Path) -> None:
    from nas.study.storage import StorageError

    db = tmp_path / "nas.db"
    optuna.create_study(storage=f"sqlite:///{db}", study_name="a")
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"  # what a chmod 444 file gives a user
    with pytest.raises(StorageError) as info:
        open_storage(read_only)
    text = str(info.value)
    assert f"the SQLite file {db} is read-only here (attempt to write a readonly database)" in text
    assert f"chmod u+w {db} {tmp_path}" in text and "\n" not in text
    storage = open_storage(f"sqlite:///{db}")  # writable: the probe leaves nothing behind
    with contextlib.closing(sqlite3.connect(db)) as plain:
        tables = {row[0] for row in plain.execute("SELECT name FROM sqlite_master")}
    assert "nas_write_probe" not in tables and "studies" in tables
    assert [s.study_name for s in storage.get_all_studies()] == ["a"]


# ----------------------------------------------------------------------------- nas storage check


def test_check_sqlite_journal_and_an_empty_file(
    tiny_study: Callable[..., Path], tmp_path: Path
) -> None:
    config = load_study(tiny_study())
    for url in (f"sqlite:///{tmp_path / 'nas.db'}", f"journal:{tmp_path / 'nas.log'}"):
        open_study(config, open_storage(url), ["exact", "params"], url)
        result = nas("storage", "check", url)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == f"storage  {url}"
        assert "  tiny  1 trials" in lines  # the baseline, waiting
    sqlite_out = nas("storage", "check", f"sqlite:///{tmp_path / 'nas.db'}").stdout
    head = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'nas.db'}").get_head_version()
    assert "journal mode wal" in sqlite_out and f"schema   {head} " in sqlite_out
    assert "up to date" in sqlite_out
    assert "no SQL schema" in nas("storage", "check", f"journal:{tmp_path / 'nas.log'}").stdout
    sqlite3.connect(tmp_path / "empty.db").close()
    empty = nas("storage", "check", f"sqlite:///{tmp_path / 'empty.db'}")
    assert empty.returncode == 0 and "no tables yet" in empty.stdout
    assert "studies  0" in empty.stdout


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("postgresql+psycopg://postgres:tr%40st:pw@127.0.0.1:5432/test", "PostgreSQL "),
        ("mysql+pymysql://root@127.0.0.1:3306/test", "MariaDB "),
    ],
    ids=["postgresql", "mariadb"],
)
def test_check_servers(name: str, url: str, backend: str, tiny_study: Callable[..., Path]) -> None:
    config = load_study(tiny_study(name=name))
    open_study(config, open_storage(url), ["exact", "params"], url)  # trust: any password
    result = nas("storage", "check", url)
    assert result.returncode == 0, result.stderr
    assert "tr%40st" not in result.stdout + result.stderr and "tr@st" not in result.stdout
    assert result.stdout.splitlines()[0] == f"storage  {mask_password(url)}"
    assert f"backend  {backend}" in result.stdout and "up to date" in result.stdout
    assert re.search(rf"^  {name} +1 trials$", result.stdout, re.MULTILINE), result.stdout


def test_check_bad_urls_exit_2_with_the_password_masked(tmp_path: Path) -> None:
    cases = [
        ("postgresql://u:s3cret@127.0.0.1:1/x", "cannot connect to postgresql://u:***@"),
        ("postgres://u:s3cret@h/x", "knows no database 'postgres'"),
        ("postgresql://u:s3c@ret@h/x", "raw '@'"),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/nosuchdb?password=s3cret", "nosuchdb"),
        (f"sqlite:///{tmp_path / 'missing.db'}", "does not exist"),
        (f"journal:{tmp_path / 'missing.log'}", "does not exist"),
        ("not a url", "is not a SQLAlchemy URL or journal:FILE"),
    ]
    for url, fragment in cases:
        result = nas("storage", "check", url)
        assert_usage_error(result, fragment)
        assert "s3c" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "missing.db").exists()  # a check creates nothing


def test_check_an_old_schema_says_how_to_upgrade(tmp_path: Path) -> None:
    """A storage made by an older Optuna: its own migrations, stopped one version short."""
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    folder = Path(optuna.storages._rdb.storage.__file__).parent
    alembic = Config(str(folder / "alembic.ini"))
    alembic.set_main_option("script_location", str(folder / "alembic"))
    alembic.set_main_option("sqlalchemy.url", url)
    versions = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'v.db'}").get_all_versions()
    command.upgrade(alembic, versions[1])  # newest first: [head, the one before, ...]
    with pytest.raises(NasError, match="optuna storage upgrade"):
        open_storage(url)
    result = nas("storage", "check", url)
    assert result.returncode == 1, result.stderr
    assert f"schema   {versions[1]} (this Optuna writes {versions[0]})" in result.stdout
    command_line = f"  optuna storage upgrade --storage '{url}'"
    assert command_line in result.stdout.splitlines()
    assert "studies  not read" in result.stdout
    upgrade = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "optuna"), "storage", "upgrade"]
        + ["--storage", url],
        capture_output=True,
        text=True,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    again = nas("storage", "check", url)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout


# ----------------------------------------------------------------------------- journal end to end


def test_a_search_on_a_journal_file(tiny_study: Callable[..., Path], tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'study.log'}"
    result = nas("study", "run", str(tiny_study(n_trials=2)), "--storage", url, "--workers", "1")
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="tiny", storage=open_storage(url))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert study.trials[0].user_attrs["baseline"] is True
    assert all(t.user_attrs["checkpoint_files"] for t in study.trials)
    status = nas("study", "status", "tiny", "--storage", url)
    assert status.returncode == 0 and "COMPLETE" in status.stdout
    assert "  tiny  2 trials" in nas("storage", "check", url).stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_drivers_opening_a_new_database_together(tmp_path: Path, backend: str) -> None:
    """Optuna creates the schema on open; the drivers that lose that race open it again."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'new.db'}"
    else:  # a new PostgreSQL database, dropped afterwards
        database = f"t_{uuid.uuid4().hex[:8]}"
        admin = sqlalchemy.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {database}")
        url = POSTGRES.rsplit("/", 1)[0] + "/" + database
    start = threading.Barrier(4)
    errors: list[BaseException] = []
    storages: list[optuna.storages.BaseStorage] = []

    def driver() -> None:
        try:
            start.wait()
            storages.append(open_storage(url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=driver) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(storages) == 4
    finally:
        for storage in storages:
            storage.engine.dispose()  # type: ignore[attr-defined]
        if backend == "postgresql":
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP DATABASE {database} WITH (FORCE)")
