"""The worker's ClickHouse user that ``salewatch migrate`` creates: the SQL it sends, when it
skips, and that the password never leaves the process (only its SHA-256 is sent, and
neither is printed, logged or put in an error).

On current ClickHouse (chdb, engine 26.x) ``CREATE USER`` cannot be applied: embedded chdb
has no writable user directory (code 514), and its default user has no access_management
(code 497). Both answers are asserted here, since they are exactly what migrate must turn
into a skip line. What chdb can check is the grants: it loads them from a ``users.xml``
``<grants>`` section through the same GRANT parser, so the privileges and objects are proved
valid on 26.x and ``SHOW GRANTS`` lists exactly those. Creating the user and logging in as
it needs a ClickHouse server ≥ 20.4, which these machines do not have (local is 18.16: see
tests/integration/test_migrate.py for its skip).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from chdb import session as chdb_session
from pydantic import SecretStr

from streams.clickhouse.migrations import (
    DEFAULT_MIGRATIONS_DIR,
    Execute,
    Row,
    apply_migrations,
    discover_migrations,
)
from streams.clickhouse.worker_user import (
    WorkerUser,
    WorkerUserFailed,
    ensure_worker_user,
    password_sha256,
    worker_tables,
    worker_user_statements,
)
from streams.settings import ConfigError, load_settings
from tests.unit.chdb_store import chdb_executor

DB = "salewatch_test"
MIGRATIONS = discover_migrations(DEFAULT_MIGRATIONS_DIR)
PASSWORD = "s3cret-'quote\\-passwørd"
HASH = hashlib.sha256(PASSWORD.encode()).hexdigest()
IDENTIFIED = f"IDENTIFIED WITH sha256_hash BY '{HASH}'"
CURRENT = "26.9.2.1"

RAW_TABLES = ["clicks_raw", "carts_raw", "orders_raw", "tickets_raw"]
ROLLUP_TABLES = [
    "traffic_1m",
    "funnel_1m",
    "cart_events_1m",
    "orders_1m",
    "payment_failures_1m",
    "category_sales_1m",
    "page_load_1m",
    "tickets_1m",
    "active_users_1m",
    "window_emitters",
]


class Recorder:
    """An :data:`Execute` that records statements and fails the n-th one with ``error``."""

    def __init__(self, fail_at: int = 0, error: Exception | None = None) -> None:
        self.statements: list[str] = []
        self.fail_at = fail_at
        self.error = error

    def __call__(self, sql: str) -> list[Row]:
        self.statements.append(sql)
        if len(self.statements) == self.fail_at and self.error is not None:
            raise self.error
        return []


def ensure(
    execute: Execute,
    *,
    password: str | None = PASSWORD,
    version: str = CURRENT,
    migrating_user: str = "default",
    name: str = "salewatch_worker",
) -> tuple[bool, str]:
    result = ensure_worker_user(
        execute,
        WorkerUser(name, None if password is None else SecretStr(password)),
        server_version=version,
        migrating_user=migrating_user,
        database=DB,
        tables=worker_tables(MIGRATIONS),
    )
    return result.created, result.line


# ------------------------------------------------------------------ the SQL


def test_worker_tables_are_the_raw_and_rollup_tables_of_the_migrations() -> None:
    assert worker_tables(MIGRATIONS) == RAW_TABLES + ROLLUP_TABLES


@pytest.mark.parametrize(
    ("user", "database", "tables", "expected"),
    [
        pytest.param(
            "salewatch_worker",
            "salewatch",
            ["clicks_raw", "traffic_1m"],
            [
                f"CREATE USER IF NOT EXISTS salewatch_worker {IDENTIFIED}",
                f"ALTER USER salewatch_worker {IDENTIFIED}",
                "GRANT SELECT ON salewatch.* TO salewatch_worker",
                "GRANT INSERT ON salewatch.clicks_raw TO salewatch_worker",
                "GRANT INSERT ON salewatch.traffic_1m TO salewatch_worker",
            ],
            id="select on the database, insert per table",
        ),
        pytest.param(
            "w2",
            "other_db",
            [],
            [
                f"CREATE USER IF NOT EXISTS w2 {IDENTIFIED}",
                f"ALTER USER w2 {IDENTIFIED}",
                "GRANT SELECT ON other_db.* TO w2",
            ],
            id="names from the settings, no tables",
        ),
    ],
)
def test_worker_user_statements(
    user: str, database: str, tables: list[str], expected: list[str]
) -> None:
    assert worker_user_statements(user, HASH, database, tables) == expected


ALLOWED = re.compile(
    r"^(CREATE USER IF NOT EXISTS \w+ IDENTIFIED WITH sha256_hash BY '[0-9a-f]{64}'"
    r"|ALTER USER \w+ IDENTIFIED WITH sha256_hash BY '[0-9a-f]{64}'"
    rf"|GRANT SELECT ON {DB}\.\* TO \w+"
    rf"|GRANT INSERT ON {DB}\.\w+ TO \w+)$"
)


def test_shipped_grants_are_select_and_insert_on_the_migrated_tables_only() -> None:
    recorder = Recorder()
    assert ensure(recorder)[0] is True
    assert all(ALLOWED.match(s) for s in recorder.statements), recorder.statements
    inserts = [s.split()[3] for s in recorder.statements if s.startswith("GRANT INSERT")]
    assert inserts == [f"{DB}.{t}" for t in RAW_TABLES + ROLLUP_TABLES]
    assert not any(f"{DB}.schema_migrations" in s for s in recorder.statements)


@pytest.mark.parametrize(
    "password",
    [
        pytest.param(PASSWORD, id="quotes, backslash, unicode"),
        pytest.param("correct horse battery staple", id="spaces"),
        pytest.param("x" * 200, id="long"),
    ],
)
def test_only_the_sha256_of_the_password_is_sent(password: str) -> None:
    recorder = Recorder()
    ensure(recorder, password=password)
    digest = hashlib.sha256(password.encode()).hexdigest()
    assert password_sha256(SecretStr(password)) == digest
    assert [digest in s for s in recorder.statements[:2]] == [True, True]
    assert not any(password in s for s in recorder.statements)


# ------------------------------------------------------------------ when it skips

ERROR_497 = RuntimeError(
    "Code: 497. DB::Exception: default: Not enough privileges. To execute this query, it's "
    "necessary to have the grant CREATE USER ON salewatch_worker. (ACCESS_DENIED)"
)
ERROR_514 = RuntimeError(
    "Code: 514. DB::Exception: Could not insert user `salewatch_worker` because there is no "
    "writeable access storage in user directories. (ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND)"
)
ERROR_495 = RuntimeError(
    "Code: 495. DB::Exception: Cannot insert user `salewatch_worker` to users_xml because "
    "this storage is readonly. (ACCESS_STORAGE_READONLY)"
)


@pytest.mark.parametrize(
    ("kwargs", "recorder", "sent", "says"),
    [
        pytest.param(
            {"password": None},
            Recorder(),
            0,
            "SALEWATCH_CLICKHOUSE_WORKER_PASSWORD is not set",
            id="no password",
        ),
        pytest.param(
            {"password": ""},
            Recorder(),
            0,
            "SALEWATCH_CLICKHOUSE_WORKER_PASSWORD is not set",
            id="empty password",
        ),
        pytest.param(
            {"migrating_user": "salewatch_worker"},
            Recorder(),
            0,
            "it is the user running migrate",
            id="migrating as the worker",
        ),
        pytest.param(
            {"version": "18.16.1"},
            Recorder(),
            0,
            "ClickHouse 18.16.1 has no SQL user management (CREATE USER/GRANT need 20.4 or "
            "later); configure the user in the server's users.xml, see "
            "docs/reliability.md#security",
            id="18.16",
        ),
        pytest.param({"version": "20.3.21.2"}, Recorder(), 0, "no SQL user management", id="20.3"),
        pytest.param(
            {},
            Recorder(1, ERROR_497),
            1,
            "refuses CREATE USER to 'default' (no access_management for it)",
            id="access_management off",
        ),
        pytest.param(
            {}, Recorder(1, ERROR_514), 1, "has no writable user directory", id="no user storage"
        ),
        pytest.param(
            {}, Recorder(1, ERROR_495), 1, "defined in the server's users.xml", id="in users.xml"
        ),
    ],
)
def test_skips_with_one_line(
    kwargs: dict[str, str | None], recorder: Recorder, sent: int, says: str
) -> None:
    created, line = ensure(recorder, **kwargs)  # type: ignore[arg-type]
    assert created is False
    assert line.startswith("worker user salewatch_worker: skipped, ")
    assert says in line
    assert "\n" not in line
    assert len(recorder.statements) == sent


@pytest.mark.parametrize("version", ["20.4.2.9", "24.1.1.1", CURRENT])
def test_applies_every_statement_on_servers_with_user_management(version: str) -> None:
    recorder = Recorder()
    created, line = ensure(recorder, version=version)
    assert created is True
    assert recorder.statements == worker_user_statements(
        "salewatch_worker", HASH, DB, RAW_TABLES + ROLLUP_TABLES
    )
    assert line == (
        "worker user salewatch_worker: up to date (password from "
        f"SALEWATCH_CLICKHOUSE_WORKER_PASSWORD; SELECT on {DB}.*; INSERT on 14 tables: "
        + ", ".join(RAW_TABLES + ROLLUP_TABLES)
        + ")"
    )


@pytest.mark.parametrize(
    ("fail_at", "error"),
    [
        # a syntax error echoes the statement, hash included
        pytest.param(
            1, RuntimeError("Code: 62. Syntax error: failed at position 8: {sql}"), id="62"
        ),
        pytest.param(3, RuntimeError("Code: 497. Not enough privileges: {sql}"), id="grant 497"),
        pytest.param(2, RuntimeError(f"Code: 36. password {PASSWORD!r} is bad"), id="echo"),
    ],
)
def test_failure_names_the_statement_but_no_secret(
    fail_at: int, error: RuntimeError, caplog: pytest.LogCaptureFixture
) -> None:
    statements = worker_user_statements("salewatch_worker", HASH, DB, RAW_TABLES)
    recorder = Recorder(fail_at, RuntimeError(str(error).format(sql=statements[fail_at - 1])))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(WorkerUserFailed) as failed:
        ensure(recorder)

    message = str(failed.value)
    verb = " ".join(statements[fail_at - 1].split()[:2])
    assert message.startswith(f"worker user salewatch_worker: statement {fail_at} of ")
    assert f"({verb}) failed: Code: " in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__
    for secret in (PASSWORD, HASH):
        assert secret not in message
        assert secret not in caplog.text


# ------------------------------------------------------------------ settings


def test_settings_default_and_hide_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().clickhouse_worker_user == "salewatch_worker"
    assert load_settings().clickhouse_worker_password is None

    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_WORKER_USER", "w_1")
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_WORKER_PASSWORD", PASSWORD)
    settings = load_settings()
    worker = WorkerUser.from_settings(settings)

    assert worker.name == "w_1"
    assert worker.password is not None and worker.password.get_secret_value() == PASSWORD
    for text in (repr(settings), str(settings), repr(worker), settings.model_dump_json()):
        assert PASSWORD not in text and HASH not in text


@pytest.mark.parametrize("name", ["w; DROP USER default", "w-1", "1w", "", "`w`"])
def test_worker_user_name_must_be_an_identifier(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The name goes into SQL unquoted, so only identifiers are accepted."""
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_WORKER_USER", name)
    with pytest.raises(ConfigError, match="SALEWATCH_CLICKHOUSE_WORKER_USER"):
        load_settings()


# ------------------------------------------------------------------ current ClickHouse (chdb)

USERS_XML = """<clickhouse>
  <profiles><default/></profiles>
  <quotas><default/></quotas>
  <users>
    <default>
      <password></password>
      <networks><ip>::/0</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <access_management>{access_management}</access_management>
    </default>
    {worker}
  </users>
</clickhouse>
"""

WORKER_XML = """<salewatch_worker>
      <password_sha256_hex>{hash}</password_sha256_hex>
      <networks><ip>::/0</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <grants>{grants}</grants>
    </salewatch_worker>"""


@contextmanager
def chdb_with_users(tmp_path: Path, access_management: int, worker: str = "") -> Iterator[Execute]:
    """A chdb session whose users come from our own users.xml (not from the working dir)."""
    users = tmp_path / "users.xml"
    users.write_text(USERS_XML.format(access_management=access_management, worker=worker))
    config = tmp_path / "config.xml"
    config.write_text(
        "<clickhouse><user_directories><users_xml>"
        f"<path>{users}</path></users_xml></user_directories></clickhouse>"
    )
    session = chdb_session.Session(path=f"{tmp_path / 'chdb'}?config-file={config}")
    try:
        yield chdb_executor(session)
    finally:
        session.close()


@pytest.mark.parametrize(
    ("access_management", "says"),
    [
        pytest.param(0, "refuses CREATE USER to 'default' (no access_management", id="off"),
        pytest.param(1, "has no writable user directory", id="on, but embedded"),
    ],
)
def test_chdb_refuses_create_user_and_migrate_skips(
    tmp_path: Path, access_management: int, says: str
) -> None:
    with chdb_with_users(tmp_path, access_management) as execute:
        apply_migrations(execute, DB, MIGRATIONS)
        version = str(execute("SELECT version()")[0][0])
        created, line = ensure(execute, version=version)
        assert int(version.split(".")[0]) >= 26
        assert created is False
        assert says in line
        assert f"ClickHouse {version} " in line


def test_chdb_grants_exactly_what_the_statements_say(tmp_path: Path) -> None:
    """The GRANT statements, loaded by 26.x's own parser, give SELECT on the database and
    INSERT on each migrated table, and nothing else."""
    tables = worker_tables(MIGRATIONS)
    grants = [
        s.removesuffix(" TO salewatch_worker")
        for s in worker_user_statements("salewatch_worker", HASH, DB, tables)
        if s.startswith("GRANT ")
    ]
    worker = WORKER_XML.format(hash=HASH, grants="".join(f"<query>{g}</query>" for g in grants))
    with chdb_with_users(tmp_path, 1, worker) as execute:
        apply_migrations(execute, DB, MIGRATIONS)
        shown = {row[0] for row in execute("SHOW GRANTS FOR salewatch_worker")}
        migrated = {
            row[0]
            for row in execute(
                f"SELECT name FROM system.tables WHERE database = '{DB}' "
                "AND engine NOT IN ('MaterializedView') AND name != 'schema_migrations'"
            )
        }

    assert migrated == set(tables)
    assert shown == {f"GRANT SELECT ON {DB}.* TO salewatch_worker"} | {
        f"GRANT INSERT ON {DB}.{t} TO salewatch_worker" for t in tables
    }
