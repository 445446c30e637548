"""Migrations: file discovery, statement splitting, and applying every migration on current
ClickHouse (chdb, in-process), including the raw tables' dedupe of redelivered events.

The same files must also run on the local ClickHouse 18.16: tests/integration/test_migrate.py.
chdb allows one data directory per process at a time, so every session here is closed at
teardown.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from chdb import session as chdb_session

from streams.clickhouse.migrations import (
    DEFAULT_MIGRATIONS_DIR,
    AppliedRecord,
    ChecksumMismatch,
    Execute,
    Migration,
    MigrationError,
    MigrationFailed,
    apply_migrations,
    discover_migrations,
    pending,
    read_applied,
    split_statements,
)
from tests.unit.chdb_store import chdb_executor

DB = "salewatch_test"
RAW_TABLES = ("clicks_raw", "carts_raw", "orders_raw", "tickets_raw")


@pytest.fixture
def execute(tmp_path: Path) -> Iterator[Execute]:
    session = chdb_session.Session(path=str(tmp_path / "chdb"))
    try:
        yield chdb_executor(session)
    finally:
        session.close()


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def table(name: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {{database}}.{name} (x UInt8) ENGINE = MergeTree ORDER BY x;"
    )


# ------------------------------------------------------------------ statement splitting


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param("SELECT 1;", ["SELECT 1"], id="one statement"),
        pytest.param("SELECT 1", ["SELECT 1"], id="last semicolon optional"),
        pytest.param("SELECT 1;\nSELECT 2;\n", ["SELECT 1", "SELECT 2"], id="two statements"),
        pytest.param("SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"], id="two on one line"),
        pytest.param("SELECT\n  1\n\n  + 2;", ["SELECT\n  1\n  + 2"], id="blank lines dropped"),
        pytest.param("-- only a comment\n", [], id="comment-only file"),
        pytest.param(";;\n;", [], id="empty statements dropped"),
        pytest.param("-- a; b\nSELECT 1;", ["SELECT 1"], id="semicolon in line comment"),
        pytest.param("SELECT 1; -- done; really\n", ["SELECT 1"], id="comment after semicolon"),
        pytest.param("SELECT 1, -- why\n2;", ["SELECT 1,\n2"], id="comment inside statement"),
        pytest.param("SELECT /* ; */ 1;", ["SELECT   1"], id="semicolon in block comment"),
        pytest.param("SELECT 'a;b';", ["SELECT 'a;b'"], id="semicolon in string"),
        pytest.param("SELECT '--x';", ["SELECT '--x'"], id="dashes in string"),
        pytest.param(r"SELECT 'it\'s;';", [r"SELECT 'it\'s;'"], id="backslash-escaped quote"),
        pytest.param("SELECT 'it''s;';", ["SELECT 'it''s;'"], id="doubled quote"),
        pytest.param("SELECT '';SELECT 2", ["SELECT ''", "SELECT 2"], id="empty string"),
        pytest.param("SELECT 1 AS `a;b`;", ["SELECT 1 AS `a;b`"], id="semicolon in backticks"),
        pytest.param('SELECT 1 AS "a;b";', ['SELECT 1 AS "a;b"'], id="semicolon in double quotes"),
    ],
)
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert split_statements(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param("SELECT 'abc;", id="unterminated string"),
        pytest.param("SELECT 1 /* ; ", id="unterminated block comment"),
    ],
)
def test_split_statements_rejects_unterminated(sql: str) -> None:
    with pytest.raises(MigrationError, match="unterminated"):
        split_statements(sql)


# ------------------------------------------------------------------ discovery


def test_shipped_migrations_are_numbered_in_order() -> None:
    migrations = discover_migrations(DEFAULT_MIGRATIONS_DIR)
    ids = [m.id for m in migrations]
    assert ids[:4] == ["0001_clicks_raw", "0002_carts_raw", "0003_orders_raw", "0004_tickets_raw"]
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})


CREATE_IF_NOT_EXISTS = re.compile(r"CREATE\s+(?:\w+\s+)*?IF\s+NOT\s+EXISTS\s", re.I)
TABLE_NAME = re.compile(
    r"\b(?:TABLE|VIEW|TO|FROM|JOIN)\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.{}`]+)", re.I
)


@pytest.mark.parametrize(
    "migration", discover_migrations(DEFAULT_MIGRATIONS_DIR), ids=lambda m: m.id
)
def test_shipped_migrations_follow_the_conventions(migration: Migration) -> None:
    """The rules of the streams/clickhouse/migrations.py docstring, for each migration file."""
    for statement in migration.statements:
        if statement.upper().startswith("CREATE"):
            assert CREATE_IF_NOT_EXISTS.match(statement), "CREATE without IF NOT EXISTS"
        if statement.upper().startswith("ALTER"):
            assert len(migration.statements) == 1, "an ALTER needs a migration of its own"
        for name in TABLE_NAME.findall(statement):
            assert name.startswith(("{database}.", "system.")), f"{name}: use {{database}}.name"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param({"1_x.sql": "SELECT 1"}, "NNNN_snake_case_name", id="three digits short"),
        pytest.param({"0001-x.sql": "SELECT 1"}, "NNNN_snake_case_name", id="dash"),
        pytest.param({"0001_X.sql": "SELECT 1"}, "NNNN_snake_case_name", id="upper case"),
        pytest.param({"0001_x.sql": "-- nothing\n"}, "no SQL statement", id="empty"),
        pytest.param({"0001_x.sql": "SELECT 'a"}, "unterminated", id="bad quoting"),
        pytest.param(
            {"0010_a.sql": "SELECT 1", "0010_b.sql": "SELECT 2"},
            "two migrations numbered 0010",
            id="duplicate number",
        ),
    ],
)
def test_discover_refuses(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        discover_migrations(write(tmp_path / "m", files))


def test_discover_ignores_other_files_and_sorts_by_version(tmp_path: Path) -> None:
    directory = write(
        tmp_path / "m",
        {"0010_b.sql": table("b"), "0002_a.sql": table("a"), "README.md": "# notes"},
    )
    assert [m.id for m in discover_migrations(directory)] == ["0002_a", "0010_b"]


@pytest.mark.parametrize(
    ("edited", "same_checksum"),
    [
        pytest.param("-- new comment\nSELECT 1;\n", True, id="comment added"),
        pytest.param("SELECT 1;   \n\n\n", True, id="trailing blank lines"),
        pytest.param("SELECT 1", True, id="final semicolon dropped"),
        pytest.param("SELECT 2;", False, id="statement changed"),
        pytest.param("SELECT 1;\nSELECT 2;", False, id="statement added"),
    ],
)
def test_checksum_covers_statements_not_comments(
    tmp_path: Path, edited: str, same_checksum: bool
) -> None:
    (before,) = discover_migrations(write(tmp_path / "a", {"0001_x.sql": "SELECT 1;\n"}))
    (after,) = discover_migrations(write(tmp_path / "b", {"0001_x.sql": edited}))
    assert (before.checksum == after.checksum) is same_checksum


# ------------------------------------------------------------------ pending (pure)


def record(migration: Migration, checksum: str | None = None) -> AppliedRecord:
    return AppliedRecord(
        migration.version, migration.name, checksum or migration.checksum, "2024-11-11 00:00:00"
    )


def test_pending_skips_applied_and_keeps_out_of_order_ones(tmp_path: Path) -> None:
    m1, m2, m3 = discover_migrations(
        write(tmp_path, {"0001_a.sql": table("a"), "0002_b.sql": table("b"), "0011_c.sql": "x"})
    )
    assert pending([m1, m2, m3], {}) == [m1, m2, m3]
    # 0002 arrived (another branch) after 0011 had been applied: still applied
    assert pending([m1, m2, m3], {1: record(m1), 11: record(m3)}) == [m2]
    assert pending([m1, m2, m3], {1: record(m1), 2: record(m2), 11: record(m3)}) == []


def test_pending_refuses_changed_migration(tmp_path: Path) -> None:
    (m1,) = discover_migrations(write(tmp_path, {"0001_a.sql": table("a")}))
    with pytest.raises(ChecksumMismatch, match=r"0001_a was applied .* but the file now has"):
        pending([m1], {1: record(m1, checksum="0" * 64)})


# ------------------------------------------------------------------ applying on chdb


def test_apply_every_migration_then_nothing(execute: Execute) -> None:
    migrations = discover_migrations(DEFAULT_MIGRATIONS_DIR)

    first = apply_migrations(execute, DB, migrations)
    second = apply_migrations(execute, DB, migrations)

    assert [a.migration.id for a in first] == [m.id for m in migrations]
    assert all(a.seconds >= 0 for a in first)
    assert second == []
    applied = read_applied(execute, DB)
    assert {v: r.checksum for v, r in applied.items()} == {
        m.version: m.checksum for m in migrations
    }
    rows = execute(f"SELECT version FROM {DB}.schema_migrations")
    assert len(rows) == len(migrations), "a re-run must not record versions again"


def test_raw_tables_have_the_dedupe_key(execute: Execute) -> None:
    apply_migrations(execute, DB, discover_migrations(DEFAULT_MIGRATIONS_DIR))
    rows = execute(
        "SELECT name, engine, sorting_key, partition_key FROM system.tables "
        f"WHERE database = '{DB}' AND name LIKE '%\\_raw' ORDER BY name"
    )
    assert [tuple(r) for r in rows] == [
        (name, "ReplacingMergeTree", "event_type, event_time, event_id", "toYYYYMM(event_time)")
        for name in sorted(RAW_TABLES)
    ]


# the topic-specific columns of one row per raw table, as SQL literals
TOPIC_COLUMNS: dict[str, dict[str, str]] = {
    "clicks_raw": {
        "page_type": "'detail'",
        "item_id": "'sku-1'",
        "category": "'shoes'",
        "traffic_source": "'ads'",
        "load_ms": "NULL",
    },
    "carts_raw": {
        "item_id": "'sku-1'",
        "category": "'shoes'",
        "quantity": "2",
        "price": "199.90",
    },
    "orders_raw": {
        "order_id": "'o-1'",
        "amount": "399.80",
        "currency": "'CNY'",
        "payment_method": "'alipay'",
        "coupon_code": "''",
        "failure_reason": "''",
        "`items.item_id`": "['sku-1']",
        "`items.category`": "['shoes']",
        "`items.quantity`": "[2]",
        "`items.price`": "[199.90]",
    },
    "tickets_raw": {
        "ticket_id": "'t-1'",
        "order_id": "'o-1'",
        "kind": "'refund'",
        "reason": "'damaged'",
    },
}


def insert_event(
    execute: Execute, name: str, event_id: str, ts_ms: int, offset: int, ingested_at: int
) -> None:
    columns = {
        "event_id": f"'{event_id}'",
        "event_type": "'some_type'",
        "event_time": f"toDateTime({ts_ms // 1000}, 'UTC')",
        "ts_ms": str(ts_ms),
        "user_id": "'u-1'",
        "session_id": "'s-1'",
        "channel": "'app'",
        "region": "'CN-GD'",
        "schema_version": "1",
        "kafka_partition": "3",
        "kafka_offset": str(offset),
        "ingested_at": f"toDateTime({ingested_at}, 'UTC')",
        **TOPIC_COLUMNS[name],
    }
    execute(f"INSERT INTO {DB}.{name} ({', '.join(columns)}) SELECT {', '.join(columns.values())}")


@pytest.mark.parametrize("name", RAW_TABLES)
def test_raw_table_collapses_a_redelivered_event_with_final(execute: Execute, name: str) -> None:
    apply_migrations(execute, DB, discover_migrations(DEFAULT_MIGRATIONS_DIR))
    execute(f"SYSTEM STOP MERGES {DB}.{name}")  # keep the parts apart: FINAL must dedupe
    ts_ms = 1_731_283_200_123  # 2024-11-11 00:00:00.123 UTC
    # separate INSERTs make separate parts, as separate worker batches would
    insert_event(execute, name, "e-1", ts_ms, offset=10, ingested_at=1_731_283_201)
    insert_event(execute, name, "e-2", ts_ms, offset=11, ingested_at=1_731_283_201)
    # e-1 again: redelivered after a worker restart, at a later offset, ingested later
    insert_event(execute, name, "e-1", ts_ms, offset=42, ingested_at=1_731_283_260)

    assert execute(f"SELECT count() FROM {DB}.{name}") == [[3]]
    assert execute(f"SELECT count() FROM {DB}.{name} FINAL") == [[2]]
    assert execute(
        f"SELECT event_id, kafka_offset, ts_ms FROM {DB}.{name} FINAL ORDER BY event_id"
    ) == [["e-1", 42, ts_ms], ["e-2", 11, ts_ms]]


def test_changed_migration_is_refused_and_nothing_applied(execute: Execute, tmp_path: Path) -> None:
    directory = shutil.copytree(DEFAULT_MIGRATIONS_DIR, tmp_path / "m")
    apply_migrations(execute, DB, discover_migrations(directory))
    clicks = directory / "0001_clicks_raw.sql"
    clicks.write_text(clicks.read_text().replace("load_ms Nullable(UInt32)", "load_ms UInt32"))
    write(directory, {"0099_new.sql": table("new_table")})

    with pytest.raises(ChecksumMismatch, match="0001_clicks_raw was applied"):
        apply_migrations(execute, DB, discover_migrations(directory))

    assert 99 not in read_applied(execute, DB)
    assert execute(f"EXISTS TABLE {DB}.new_table") == [[0]]


def test_failed_migration_is_not_recorded_and_retried(execute: Execute, tmp_path: Path) -> None:
    directory = write(
        tmp_path / "m",
        {
            "0001_a.sql": table("a"),
            "0002_b.sql": table("b") + "\nCREATE TABLE IF NOT EXISTS {database}.c (x Nope);",
        },
    )
    with pytest.raises(MigrationFailed, match=r"0002_b failed at statement 2 of 2: .*Nope"):
        apply_migrations(execute, DB, discover_migrations(directory))
    assert set(read_applied(execute, DB)) == {1}

    write(directory, {"0002_b.sql": table("b") + "\n" + table("c")})
    retried = apply_migrations(execute, DB, discover_migrations(directory))

    assert [a.migration.id for a in retried] == ["0002_b"]
    assert set(read_applied(execute, DB)) == {1, 2}


def test_database_comes_from_the_argument(execute: Execute) -> None:
    migrations = discover_migrations(DEFAULT_MIGRATIONS_DIR)
    apply_migrations(execute, "other_db", migrations)
    rows = execute("SELECT name FROM system.tables WHERE database = 'other_db' ORDER BY name")
    assert {r[0] for r in rows} >= {*RAW_TABLES, "schema_migrations"}
    assert read_applied(execute, DB) == {}
