"""``salewatch migrate`` against a real local ClickHouse 18.16 server.

The ``clickhouse`` fixture starts a throwaway clickhouse-server of its own (temp dir, free
ports) rather than using ``salewatch stack up``, so this file runs alone; it is to be
replaced by the shared stack fixture. Each test migrates its own database.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver.errors import ServerException

from streams.cli import main
from streams.cli.worker import check_clickhouse
from streams.clickhouse.client import make_client
from streams.clickhouse.migrations import DEFAULT_MIGRATIONS_DIR, discover_migrations
from streams.clickhouse.raw_rows import RAW_COLUMNS, raw_row
from streams.settings import load_settings
from tests.unit.events_factory import DROP, make_event

pytestmark = pytest.mark.integration

RAW_TABLES = ("clicks_raw", "carts_raw", "orders_raw", "tickets_raw")
MIGRATIONS = discover_migrations(DEFAULT_MIGRATIONS_DIR)

CONFIG_XML = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{state}/server.log</log>
        <errorlog>{state}/server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <path>{state}/data/</path>
    <tmp_path>{state}/tmp/</tmp_path>
    <user_files_path>{state}/user_files/</user_files_path>
    <format_schema_path>{state}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
"""

WORKER_PASSWORD = "n0t-in-any-output"
WORKER_DATABASE = "migrate_worker_recipe"

# LowCardinality is experimental in 18.16: without this profile setting CREATE TABLE fails.
# salewatch_worker is the users.xml recipe of docs/reliability.md#security for servers
# without SQL user management (18.16 has no per-table INSERT right: one database, no DDL).
USERS_XML = f"""<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
        </default>
        <salewatch_worker>
            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
            <allow_ddl>0</allow_ddl>
        </salewatch_worker>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <salewatch_worker>
            <password_sha256_hex>{hashlib.sha256(WORKER_PASSWORD.encode()).hexdigest()}</password_sha256_hex>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>salewatch_worker</profile>
            <quota>default</quota>
            <allow_databases><database>{WORKER_DATABASE}</database></allow_databases>
        </salewatch_worker>
    </users>
    <quotas><default></default></quotas>
</yandex>
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    tcp_port: int
    http_port: int


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A clickhouse-server started for this module, stopped (by its pid) at teardown."""
    binary = shutil.which("clickhouse-server")
    if binary is None:
        pytest.fail("clickhouse-server not installed: apt-get install -y clickhouse-server")
    state = tmp_path_factory.mktemp("clickhouse")
    server = Server(tcp_port=free_port(), http_port=free_port())
    (state / "config.xml").write_text(
        CONFIG_XML.format(state=state, tcp_port=server.tcp_port, http_port=server.http_port)
    )
    (state / "users.xml").write_text(USERS_XML)
    with (state / "stdout.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config-file={state / 'config.xml'}"],
            cwd=state,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/ping", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    logs = [(state / n) for n in ("stdout.log", "server.err.log")]
                    tail = "\n".join(p.read_text()[-2000:] for p in logs if p.exists())
                    pytest.fail(f"clickhouse-server did not become ready:\n{tail}")
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def database(clickhouse: Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the SALEWATCH_CLICKHOUSE_* settings at the test server and a fresh database."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_HOST", "127.0.0.1")
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_PORT", str(clickhouse.tcp_port))
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_HTTP_PORT", str(clickhouse.http_port))
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_DATABASE", name)
    return name


def query(sql: str, params: Any = None) -> list[Any]:
    client = make_client(load_settings(), use_database=False)
    try:
        rows: list[Any] = client.execute(sql, params)
        return rows
    finally:
        client.disconnect()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["migrate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_migrate_twice_applies_everything_then_nothing(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    for migration in MIGRATIONS:
        n = len(migration.statements)
        assert f"applied {migration.id} ({n} statement{'s' if n > 1 else ''}) in " in out
    assert "ClickHouse 18.16.1 at 127.0.0.1:" in out
    assert f"applied {len(MIGRATIONS)} migrations in " in out

    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    assert f"up to date at version {MIGRATIONS[-1].version:04d}, nothing to apply\n" in out

    assert query(f"SELECT version FROM {database}.schema_migrations ORDER BY version") == [
        (m.version,) for m in MIGRATIONS
    ]
    assert query(
        "SELECT name, engine, sorting_key FROM system.tables "
        f"WHERE database = '{database}' AND name LIKE '%\\_raw' ORDER BY name"
    ) == [(t, "ReplacingMergeTree", "event_type, event_time, event_id") for t in sorted(RAW_TABLES)]


def common(event_id: str, offset: int, ingested_at: datetime) -> dict[str, Any]:
    ts_ms = 1_731_283_200_123  # 2024-11-11 00:00:00.123 UTC
    return {
        "event_id": event_id,
        "event_type": "some_type",
        "event_time": datetime.fromtimestamp(ts_ms // 1000, UTC),
        "ts_ms": ts_ms,
        "user_id": "u-1",
        "session_id": "s-1",
        "channel": "app",
        "region": "CN-GD",
        "schema_version": 1,
        "kafka_partition": 3,
        "kafka_offset": offset,
        "ingested_at": ingested_at,
    }


TOPIC_COLUMNS: dict[str, dict[str, Any]] = {
    "clicks_raw": {
        "page_type": "detail",
        "item_id": "sku-1",
        "category": "shoes",
        "traffic_source": "ads",
        "load_ms": None,
    },
    "carts_raw": {
        "item_id": "sku-1",
        "category": "shoes",
        "quantity": 2,
        "price": Decimal("199.90"),
    },
    "orders_raw": {
        "order_id": "o-1",
        "amount": Decimal("399.80"),
        "currency": "CNY",
        "payment_method": "alipay",
        "coupon_code": "",
        "failure_reason": "",
        "items.item_id": ["sku-1"],
        "items.category": ["shoes"],
        "items.quantity": [2],
        "items.price": [Decimal("199.90")],
    },
    "tickets_raw": {"ticket_id": "t-1", "order_id": "o-1", "kind": "refund", "reason": "damaged"},
}


def test_clicks_raw_stores_web_vitals_null_when_absent(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Migration 0005 on 18.16: the worker's clicks rows (raw_row) go in with their vitals;
    an absent vital is NULL, which aggregates skip, and CLS 0.1 is not above 0.1."""
    assert run(capsys)[0] == 0
    measured = make_event(
        "clicks", event_id="e-1", lcp_ms=2100, load_ms=2100, inp_ms=180, cls=0.1, ttfb_ms=95
    )
    bare = make_event("clicks", event_id="e-2", load_ms=DROP)
    rows = [raw_row("clicks", e, 0, n, e["ts"] // 1000) for n, e in enumerate((measured, bare))]
    query(f"INSERT INTO {database}.clicks_raw ({', '.join(RAW_COLUMNS['clicks'])}) VALUES", rows)

    vitals = "load_ms, lcp_ms, inp_ms, cls, ttfb_ms"
    assert query(f"SELECT {vitals} FROM {database}.clicks_raw ORDER BY event_id") == [
        (2100, 2100, 180, 0.1, 95),
        (None, None, None, None, None),
    ]
    assert query(
        f"SELECT count(inp_ms), avg(inp_ms), countIf(cls > 0.1) FROM {database}.clicks_raw"
    ) == [(1, 180.0, 0)]


@pytest.mark.parametrize("table", RAW_TABLES)
def test_redelivered_event_collapses_with_final(
    database: str, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys)[0] == 0
    name = f"{database}.{table}"
    query(f"SYSTEM STOP MERGES {name}")  # keep the parts apart: FINAL must do the dedupe
    first, later = (
        datetime(2024, 11, 11, 0, 0, 1, tzinfo=UTC),
        datetime(2024, 11, 11, 0, 1, tzinfo=UTC),
    )
    # one INSERT per batch, as the worker does; e-1 is redelivered at a later offset
    for event_id, offset, ingested_at in (
        ("e-1", 10, first),
        ("e-2", 11, first),
        ("e-1", 42, later),
    ):
        row = {**common(event_id, offset, ingested_at), **TOPIC_COLUMNS[table]}
        query(f"INSERT INTO {name} ({', '.join(row)}) VALUES", [row])

    assert query(f"SELECT count() FROM {name}") == [(3,)]
    assert query(f"SELECT count() FROM {name} FINAL") == [(2,)]
    assert query(f"SELECT event_id, kafka_offset FROM {name} FINAL ORDER BY event_id") == [
        ("e-1", 42),
        ("e-2", 11),
    ]


def test_worker_user_is_skipped_on_18_16_in_one_line(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """18.16 has no CREATE USER/GRANT: migrate still succeeds and says so in its last line."""
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_WORKER_PASSWORD", WORKER_PASSWORD)
    for _ in range(2):  # with migrations to apply, and with none
        code, out, err = run(capsys)
        assert (code, err) == (0, "")
        assert out.splitlines()[-1] == (
            "worker user salewatch_worker: skipped, ClickHouse 18.16.1 has no SQL user "
            "management (CREATE USER/GRANT need 20.4 or later); configure the user in the "
            "server's users.xml, see docs/reliability.md#security"
        )
        assert WORKER_PASSWORD not in out
    assert query(f"SELECT count() FROM {database}.schema_migrations") == [(len(MIGRATIONS),)]


def test_worker_user_is_skipped_without_a_password(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == (
        "worker user salewatch_worker: skipped, SALEWATCH_CLICKHOUSE_WORKER_PASSWORD is not "
        "set (the worker connects as SALEWATCH_CLICKHOUSE_USER)"
    )


def test_dry_run_shows_the_worker_grants_but_no_secret(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_WORKER_PASSWORD", WORKER_PASSWORD)
    code, out, err = run(capsys, "--dry-run")
    assert (code, err) == (0, "")
    assert (
        "CREATE USER IF NOT EXISTS salewatch_worker IDENTIFIED WITH sha256_hash BY "
        "'<sha256 of SALEWATCH_CLICKHOUSE_WORKER_PASSWORD>';"
    ) in out
    assert f"GRANT SELECT ON {database}.* TO salewatch_worker;" in out
    assert f"GRANT INSERT ON {database}.orders_raw TO salewatch_worker;" in out
    digest = hashlib.sha256(WORKER_PASSWORD.encode()).hexdigest()
    assert WORKER_PASSWORD not in out and digest not in out


DDL_PROHIBITED, DATABASE_ACCESS_DENIED = 392, 291


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        pytest.param("CREATE TABLE {db}.x (x UInt8) ENGINE = Log", DDL_PROHIBITED, id="create"),
        pytest.param("DROP TABLE {db}.orders_raw", DDL_PROHIBITED, id="drop"),
        pytest.param("ALTER TABLE {db}.orders_raw DELETE WHERE 1", DDL_PROHIBITED, id="alter"),
        pytest.param("TRUNCATE TABLE {db}.orders_raw", DDL_PROHIBITED, id="truncate"),
        pytest.param(
            "SELECT count() FROM {other}.probe", DATABASE_ACCESS_DENIED, id="other database"
        ),
    ],
)
def test_users_xml_worker_recipe_on_18_16(
    database: str,
    statement: str,
    code: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The users.xml worker user of docs/reliability.md passes the worker's start-up check,
    inserts and reads, and is refused DDL and other databases."""
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_DATABASE", WORKER_DATABASE)
    query(f"DROP DATABASE IF EXISTS {WORKER_DATABASE}")  # one fixed name: allow_databases
    assert run(capsys)[0] == 0
    query(f"CREATE DATABASE {database}")
    query(f"CREATE TABLE {database}.probe (x UInt8) ENGINE = Log")
    worker_settings = load_settings(
        clickhouse_user="salewatch_worker", clickhouse_password=WORKER_PASSWORD
    )
    assert check_clickhouse(worker_settings) is None
    client = make_client(worker_settings)
    try:
        row = {
            **common("e-w", 1, datetime(2024, 11, 11, tzinfo=UTC)),
            **TOPIC_COLUMNS["orders_raw"],
        }
        client.execute(f"INSERT INTO orders_raw ({', '.join(row)}) VALUES", [row])
        assert client.execute("SELECT count() FROM orders_raw FINAL WHERE event_id = 'e-w'") == [
            (1,)
        ]
        with pytest.raises(ServerException) as refused:
            client.execute(statement.format(db=WORKER_DATABASE, other=database))
        assert refused.value.code == code
    finally:
        client.disconnect()
    assert query(f"EXISTS TABLE {WORKER_DATABASE}.orders_raw") == [(1,)]


def test_users_xml_worker_can_lift_allow_ddl_on_18_16(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured limit of the 18.16 recipe: allow_ddl=0 guards against mistakes only, since a
    client may send allow_ddl=1 with its query. Only SQL grants (20.4+) close this."""
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_DATABASE", WORKER_DATABASE)
    query(f"DROP DATABASE IF EXISTS {WORKER_DATABASE}")  # one fixed name: allow_databases
    assert run(capsys)[0] == 0
    worker_settings = load_settings(
        clickhouse_user="salewatch_worker", clickhouse_password=WORKER_PASSWORD
    )
    client = make_client(worker_settings)
    try:
        client.execute("CREATE TABLE lifted (x UInt8) ENGINE = Log", settings={"allow_ddl": 1})
    finally:
        client.disconnect()
    assert query(f"EXISTS TABLE {WORKER_DATABASE}.lifted") == [(1,)]


def test_status_and_dry_run_change_nothing(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--status")
    assert (code, err) == (0, "")
    assert [line.split()[:2] for line in out.splitlines()[2:-1]] == [
        [m.id, "pending"] for m in MIGRATIONS
    ]
    assert out.splitlines()[-1] == f"0 applied, {len(MIGRATIONS)} pending"

    code, out, err = run(capsys, "--dry-run")
    assert (code, err) == (0, "")
    assert f"would apply {len(MIGRATIONS)} migrations (dry run)" in out
    assert f"CREATE TABLE IF NOT EXISTS {database}.clicks_raw" in out
    assert query(f"SELECT count() FROM system.databases WHERE name = '{database}'") == [(0,)]

    assert run(capsys)[0] == 0
    code, out, err = run(capsys, "--status")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].endswith(f"database {database}")
    assert [line.split()[:2] for line in lines[2:-1]] == [[m.id, "applied"] for m in MIGRATIONS]
    assert lines[-1] == f"{len(MIGRATIONS)} applied, 0 pending"


def test_changed_migration_is_refused_in_one_line(
    database: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    directory = shutil.copytree(DEFAULT_MIGRATIONS_DIR, tmp_path / "m")
    assert run(capsys, "--path", str(directory))[0] == 0
    clicks = directory / "0001_clicks_raw.sql"
    clicks.write_text(clicks.read_text().replace("load_ms Nullable(UInt32)", "load_ms UInt32"))

    code, out, err = run(capsys, "--path", str(directory))
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "0001_clicks_raw was applied" in err

    code, out, err = run(capsys, "--status", "--path", str(directory))
    assert code == 1
    assert "0001_clicks_raw                          CHANGED" in out


def test_bad_sql_fails_in_one_line_and_keeps_earlier_migrations(
    database: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    directory = shutil.copytree(DEFAULT_MIGRATIONS_DIR, tmp_path / "m")
    (directory / "9999_broken.sql").write_text(
        "CREATE TABLE IF NOT EXISTS {database}.broken (x DateTime64(3)) ENGINE = Log;"
    )

    code, _, err = run(capsys, "--path", str(directory))

    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "migration 9999_broken failed at statement 1 of 1: ClickHouse at 127.0.0.1:" in err
    assert "Code: 50. Unknown data type family: DateTime64" in err  # 18.16 has no DateTime64
    applied = query(f"SELECT version FROM {database}.schema_migrations ORDER BY version")
    assert applied == [(m.version,) for m in MIGRATIONS]


def test_unreachable_clickhouse_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nothing listens there once the probe socket is closed
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_HOST", "127.0.0.1")
    monkeypatch.setenv("SALEWATCH_CLICKHOUSE_PORT", str(port))

    code, out, err = run(capsys)

    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert f"cannot reach ClickHouse at 127.0.0.1:{port}" in err
    assert "SALEWATCH_CLICKHOUSE_HOST/SALEWATCH_CLICKHOUSE_PORT" in err
