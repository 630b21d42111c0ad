"""Storage URLs: resolving, masking the password, opening, and checking (``nas storage check``).

Any SQLAlchemy URL (SQLite, PostgreSQL, MySQL/MariaDB) opens as an Optuna ``RDBStorage``;
``journal:FILE`` as a ``JournalStorage`` file. A password never leaves this module unmasked:
every message that names a URL goes through :func:`mask_password`, every driver message through
:func:`redact`.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.storages import BaseStorage
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from nas.config import StudyConfig
from nas.errors import NasError

DEFAULT_STORAGE = "sqlite:///nas.db"
STORAGE_ENV = "NAS_STORAGE"
JOURNAL = "journal:"
SQLITE_BUSY_TIMEOUT_S = 60  # a writer waits this long for another process's lock
CONNECT_TIMEOUT_S = 10  # PostgreSQL/MySQL: a dead host fails in seconds, not minutes

# "scheme://user:" then everything up to the LAST '@': SQLAlchemy ends the password at the
# first '@', so a raw '@' in a password leaves the rest in the host; masking to the last one
# hides all of it (and refuse_raw_at turns such a URL down before it reaches a driver).
_USERINFO = re.compile(r"^([\w+.-]+://[^:/]*:).*@")
_QUERY_SECRET = re.compile(r"([?&](?:ssl)?(?:password|passwd|pwd)=)([^&]*)", re.IGNORECASE)
_DRIVER_TIMEOUTS = {"psycopg", "psycopg2", "pymysql", "mysqldb"}  # accept connect_timeout
_SCHEMA_RACE = re.compile(r"already exists|UNIQUE constraint failed|[Dd]uplicate (key|entry)")
_SCHEMA_RACE_TRIES = 5
# Bytes a TEXT column holds, by SQLAlchemy backend; PostgreSQL's text and SQLite's are unbounded
# in practice (1 GB, SQLITE_MAX_LENGTH).
_TEXT_BYTES = {"mysql": 65_535, "mariadb": 65_535}


class StorageError(NasError):
    """The storage URL cannot be opened."""


def resolve_storage(cli: str | None, config: StudyConfig | None = None) -> str:
    """The storage URL: ``--storage``, then the study config, then ``NAS_STORAGE``, then SQLite.

    Commands that name a study rather than a config file pass no config.
    """
    from_config = config.storage if config is not None else None
    return cli or from_config or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def mask_password(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``.

    Query-string passwords (``?password=``, ``passwd``, ``pwd``, ``sslpassword``) are masked
    too; a password holding a raw ``@`` is masked up to the last ``@``.
    """
    return _QUERY_SECRET.sub(r"\1***", _USERINFO.sub(r"\1***@", url))


def redact(text: str, url: str) -> str:
    """``text`` (a driver's error message, a log line) without any form of the URL's password."""
    text = text.replace(url, mask_password(url))
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _secrets(url: str) -> set[str]:
    found = set()
    userinfo = _USERINFO.match(url)
    if userinfo:
        found.add(url[userinfo.end(1) : userinfo.end() - 1])
    found.update(m.group(2) for m in _QUERY_SECRET.finditer(url))
    found |= {unquote(s) for s in found} | {unquote(s.replace("+", " ")) for s in found}
    return {s for s in found if s and s != "***"}


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL, or a one-line error that names the (masked) value and the fix."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # ArgumentError, or ValueError for a port that is not a number
        raise StorageError(
            f"storage {mask_password(url)!r} is not a SQLAlchemy URL or journal:FILE "
            f"({type(exc).__name__}); write e.g. postgresql+psycopg://user:password@host:5432/db,"
            " mysql+pymysql://user@host/db, sqlite:///nas.db or journal:study.log"
        ) from None
    try:
        parsed.get_dialect()
    except Exception:  # noqa: BLE001 - NoSuchModuleError: SQLAlchemy knows no such database
        raise StorageError(
            f"storage {mask_password(url)}: SQLAlchemy knows no database {parsed.drivername!r}; "
            "write postgresql+psycopg://, mysql+pymysql://, mariadb+pymysql://, sqlite:/// "
            "or journal:FILE"
        ) from None
    if parsed.host and "@" in parsed.host:
        raise StorageError(
            f"storage {mask_password(url)}: the password contains a raw '@'; percent-encode "
            "it (@ as %40, : as %3A, / as %2F), e.g. postgresql://user:p%40ss@host/db"
        )
    return parsed


def engine_kwargs(parsed: URL) -> dict[str, Any]:
    """Connection settings: pre-ping, and a bounded wait for a lock or an unreachable server."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    elif parsed.get_driver_name() in _DRIVER_TIMEOUTS and "connect_timeout" not in parsed.query:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return kwargs


def check_distributions_fit(
    url: str, distributions: Mapping[str, BaseDistribution], where: str = "search space"
) -> None:
    """Refuse, before the study exists, a distribution too large for the storage's column.

    Optuna stores each trial parameter's distribution as JSON in the TEXT column
    ``trial_params.distribution_json`` (optuna/storages/_rdb/models.py); MySQL's and MariaDB's
    TEXT holds 65,535 bytes, and a larger one fails only at the first trial's commit.
    """
    if url.startswith(JOURNAL):
        return
    backend = parse_url(url).get_backend_name()
    limit = _TEXT_BYTES.get(backend)
    if limit is None:
        return
    for name, dist in distributions.items():
        size = len(distribution_to_json(dist).encode())
        if size > limit:
            choices = getattr(dist, "choices", ())
            raise StorageError(
                f"{where}: parameter {name}: its distribution ({len(choices)} choices) takes "
                f"{size:,} bytes of JSON, over the {limit:,} that {backend} stores per parameter "
                f"(trial_params.distribution_json) for {mask_password(url)}; give it fewer "
                "choices (or an int/float range), or use a PostgreSQL or SQLite storage"
            )


def open_storage(url: str) -> BaseStorage:
    """An Optuna storage for a SQLAlchemy URL or ``journal:PATH`` (a JournalStorage file),
    created if missing, for commands that write (a SQLite file is checked to be writable)."""
    if url.startswith(JOURNAL):
        return _open_journal(url)
    parsed = parse_url(url)
    try:
        storage = _new_rdb(url, parsed)
    except Exception as exc:  # sqlalchemy and the drivers raise many types; all mean "cannot open"
        _raise_if_read_only(exc, url)
        raise StorageError(
            f"storage {mask_password(url)} cannot be opened ({first_line(exc, url)}); check the "
            "URL, that the server runs and the database exists (`nas storage check URL` says "
            "more), or use sqlite:///nas.db"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        sqlite_transactions(storage.engine)
        check_writable(url)
    return storage


def open_existing(url: str, writes: bool = False, fix: str = "") -> BaseStorage:
    """The storage at ``url`` for commands that use a study it holds: nothing is created (no
    SQLite or journal file, no tables). Read only, a SQLite file keeps its journal mode;
    ``writes``: the command writes into the study, so a read-only SQLite file fails now, in one
    line (``fix``: more advice), and the storage is opened as :func:`open_storage` opens it.

    Raises:
        StorageError: the file does not exist, or the database holds no Optuna tables; the
            message names its :func:`location`.
    """
    path = storage_file(url)
    if path is not None and not path.is_file():
        raise StorageError(
            f"no storage at {location(url)}: the file does not exist (nothing was created); "
            "run from the folder `nas study run` ran in, or pass --storage with its URL"
        )
    if url.startswith(JOURNAL):
        return _open_journal(url)
    parsed = parse_url(url)
    if "studies" not in _inspect(url, parsed)[1]:
        raise StorageError(
            f"{location(url)} holds no Optuna studies (no tables); pass --storage with the "
            "URL `nas study run` used"
        )
    if writes:
        check_writable(url, fix)
        return open_storage(url)
    try:
        storage = optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs(parsed), skip_table_creation=True
        )
    except Exception as exc:  # noqa: BLE001 - an old schema, a damaged or foreign database
        raise StorageError(
            f"storage {location(url)} cannot be read ({first_line(exc, url)}); "
            "`nas storage check URL` says more"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(storage.engine, "connect", _sqlite_busy_timeout)
        storage.engine.dispose()
    return storage


def storage_file(url: str) -> Path | None:
    """The file a SQLite or journal URL stores into (as given, maybe relative); None for a
    server or an in-memory database."""
    if url.startswith(JOURNAL):
        return Path(url.removeprefix(JOURNAL))
    parsed = parse_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):  # SQLite's URI form (?uri=true)
        database = database.removeprefix("file:").split("?")[0]
    return Path(database)


def location(url: str) -> str:
    """Where a storage is, for messages: the masked URL and, for a file, its absolute path."""
    path = storage_file(url)
    if path is None:
        return mask_password(url)
    return f"{mask_password(url)} (the file {path.expanduser().resolve()})"


def check_writable(url: str, fix: str = "") -> None:
    """A SQLite file that can only be read fails here, in one line, rather than at its first
    write deep inside a run (a 97-line traceback). The probe creates a table in an explicit
    transaction and rolls it back; ``fix`` is appended to the advice."""
    path = storage_file(url)
    if path is None or url.startswith(JOURNAL) or not path.is_file():
        return
    parsed = parse_url(url)
    args, kwargs = parsed.get_dialect()().create_connect_args(parsed)  # as SQLAlchemy connects
    connection = sqlite3.connect(
        str(args[0]),
        timeout=SQLITE_BUSY_TIMEOUT_S,
        isolation_level=None,
        uri=bool(kwargs.get("uri", False)),
    )
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("CREATE TABLE nas_write_probe (x INTEGER)")
        connection.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        _raise_if_read_only(exc, url, fix)
        raise StorageError(
            f"storage {location(url)} cannot be written ({first_line(exc, url)})"
        ) from None
    finally:
        connection.close()


def _raise_if_read_only(exc: BaseException, url: str, fix: str = "") -> None:
    text = str(exc)
    path = storage_file(url)
    if path is None or not ("readonly database" in text or "unable to open" in text):
        return
    if "unable to open" in text and not path.is_file():
        return  # a missing folder: the caller's message says so
    where = path.expanduser().resolve()
    raise StorageError(
        f"storage {mask_password(url)}: the SQLite file {where} is read-only here "
        f"({first_line(exc, url)}); make the file and its folder writable (chmod u+w {where} "
        f"{where.parent}: SQLite writes -wal and -shm files beside it), or copy the file "
        f"somewhere writable and pass --storage sqlite:///COPY{fix}"
    ) from None


def _new_rdb(url: str, parsed: URL) -> optuna.storages.RDBStorage:
    """RDBStorage, again if another process was creating the same new schema at that moment.

    Optuna creates the tables and stamps the schema version when it opens a database; two
    drivers starting on a new database race there and the loser fails on a unique key or an
    existing table. The winner's schema is complete a moment later, so opening again works.
    """
    for attempt in range(_SCHEMA_RACE_TRIES):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(parsed))
        except sqlalchemy.exc.SQLAlchemyError as exc:
            if attempt + 1 == _SCHEMA_RACE_TRIES or not _SCHEMA_RACE.search(str(exc)):
                raise
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


def _open_journal(url: str) -> BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = url.removeprefix(JOURNAL)
    try:
        return JournalStorage(JournalFileBackend(path))
    except Exception as exc:  # noqa: BLE001 - a missing folder, a permission, a corrupt log
        raise StorageError(
            f"journal storage {path!r} cannot be opened ({first_line(exc, url)}); check that "
            "its folder exists and is writable"
        ) from None


def first_line(exc: BaseException, url: str) -> str:
    """The first line of a driver's error, without SQLAlchemy's "(module.Error) " prefix."""
    text = re.sub(r"^\([\w.]+\) ", "", str(exc).strip())
    return redact(text.splitlines()[0][:300] if text else type(exc).__name__, url)


def sqlite_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """WAL, a busy timeout and real transactions on every connection of a SQLite engine.

    WAL lets readers (the dashboard, ``nas study status``) run beside a driver's writes. The
    busy timeout makes a writer wait for another process's lock instead of failing at once.
    ``BEGIN IMMEDIATE`` matters for two drivers on one file: Python's sqlite3 starts no
    transaction before a SELECT, so Optuna's read-check-write steps (``SELECT ... FOR UPDATE``,
    which SQLite ignores, then UPDATE) would let two processes both pass the check; taking the
    write lock at BEGIN serializes them, as a row lock does on PostgreSQL and MySQL.
    Connections the engine opened before these listeners (RDBStorage's set-up) are dropped.
    """
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    engine.dispose()


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # sqlite3 emits no BEGIN; _sqlite_begin does
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()
    enable_wal(dbapi_connection)


def enable_wal(dbapi_connection: Any) -> None:
    """``PRAGMA journal_mode = WAL`` (persistent in the file; a no-op once set), waiting for
    the lock as the busy timeout would: SQLite answers "database is locked" at once, without
    its busy handler, when connections to a new file change its journal mode together (about
    1 start in 5 with four drivers starting at the same moment)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02 + 0.08 * random.random())


def _sqlite_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


# ----------------------------------------------------------------------------- nas storage check


@dataclasses.dataclass(frozen=True)
class StorageCheck:
    """What ``nas storage check`` found. ``schema`` is None for a journal or an empty database."""

    url: str  # password masked
    backend: str  # e.g. "PostgreSQL 16.4", "SQLite 3.40.1, journal mode wal"
    schema: str | None
    head: str | None  # the schema version this Optuna writes
    known: tuple[str, ...]  # every schema version this Optuna can upgrade from
    studies: dict[str, int] | None  # name -> trials; None when the schema is too old to read

    @property
    def up_to_date(self) -> bool:
        return self.schema is None or self.schema == self.head


def check_storage(url: str) -> StorageCheck:
    """Connect without changing anything, and read the schema version and the studies."""
    if url.startswith(JOURNAL):
        path = Path(url.removeprefix(JOURNAL))
        if not path.is_file():
            raise StorageError(f"journal file {str(path)!r} does not exist; check the path")
        storage = _open_journal(url)
        return StorageCheck(url, "Optuna JournalStorage file", None, None, (), _studies(storage))
    parsed = parse_url(url)
    database = parsed.database or ""
    in_file = parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if in_file and not Path(database).is_file():
        raise StorageError(
            f"SQLite file {database!r} does not exist; check the path in {url} "
            "(`nas study run` creates the file)"
        )
    backend, tables = _inspect(url, parsed)
    if "studies" not in tables:
        return StorageCheck(mask_password(url), backend, None, None, (), {})
    try:
        rdb = optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs(parsed),
            skip_compatibility_check=True,
            skip_table_creation=True,
        )
        current, head = rdb.get_current_version(), rdb.get_head_version()
        studies = _studies(rdb) if current == head else None
        versions = tuple(rdb.get_all_versions())
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign schema
        raise StorageError(
            f"{mask_password(url)} has a 'studies' table but Optuna cannot read its schema "
            f"({first_line(exc, url)}); is it an Optuna storage?"
        ) from None
    return StorageCheck(mask_password(url), backend, current, head, versions, studies)


def _inspect(url: str, parsed: URL) -> tuple[str, set[str]]:
    """The server's name and version, and the tables there."""
    try:
        engine = sqlalchemy.create_engine(url, **engine_kwargs(parsed))
    except ImportError as exc:
        raise StorageError(
            f"the Python driver of {mask_password(url)} is not installed ({exc}); install it, "
            "or use postgresql+psycopg:// or mysql+pymysql:// (pip install 'nas-distill[postgres]'"
            " or '[mysql]')"
        ) from None
    try:
        with engine.connect() as connection:
            dialect = connection.dialect
            tables = set(sqlalchemy.inspect(connection).get_table_names())
            version = ".".join(str(p) for p in (dialect.server_version_info or ()))
            if dialect.name == "sqlite":
                mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
                return f"SQLite {sqlite3.sqlite_version}, journal mode {mode}", tables
    except Exception as exc:  # noqa: BLE001 - every driver has its own error types
        _raise_if_read_only(exc, url)
        raise StorageError(
            f"cannot connect to {mask_password(url)} ({first_line(exc, url)}); check the host, "
            "port, user and database, and that the server runs"
        ) from None
    finally:
        engine.dispose()
    name = {"postgresql": "PostgreSQL", "mysql": "MySQL"}.get(dialect.name, dialect.name)
    if getattr(dialect, "is_mariadb", False):
        name = "MariaDB"
    return f"{name} {version}".strip(), tables


def _studies(storage: BaseStorage) -> dict[str, int]:
    return {
        s.study_name: s.n_trials
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    }


def schema_advice(check: StorageCheck) -> str | None:
    """What to do about a schema that is not this Optuna's, or None when it is."""
    if check.up_to_date:
        return None
    if check.schema in check.known:
        return (
            f"the schema {check.schema} is older than Optuna {optuna.__version__}'s "
            f"{check.head}; back up the database, then upgrade it with\n"
            f"  optuna storage upgrade --storage '{check.url}'"
            + ("\n(write the password in place of ***)" if "***" in check.url else "")
        )
    return (
        f"the schema {check.schema} is newer than Optuna {optuna.__version__} knows (head "
        f"{check.head}); upgrade Optuna where nas runs: pip install -U optuna"
    )
