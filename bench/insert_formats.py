"""Could the raw inserts send a pre-serialised body instead of Python tuples? (issue 18)

Three questions, each answered against a real ClickHouse (``SALEWATCH_CLICKHOUSE_*``):

1. **Native protocol, inline data**: is ``INSERT INTO t (cols) FORMAT JSONEachRow <rows>``
   stored when clickhouse-driver sends it as a query (no tuples)? 18.16 ignores data in
   the query text on TCP: it sends the table's header and waits for Native blocks.
2. **Client CPU per row**: the worker's path (``client.execute(INSERT … VALUES, rows)``)
   against ``FORMAT JSONEachRow`` over HTTP (``orjson`` of one dict per row), on the raw
   rows of the bench workload (``bench.workload``, the worker's chain), alternating.
3. **Same values stored?** Edge rows (out-of-range integers, amounts with more than two
   decimals, doubles to the last bit, NULL timings, '' strings, quotes and newlines,
   Nested items) stored one at a time both ways into two fresh databases; then every
   column of ``SELECT *`` compared, and which way refused which row.

4. **A Native encoder of our own?** The lower bound of one in pure Python: the clicks
   columns of the same rows encoded with ``array``/``bytes`` (LowCardinality dictionaries,
   null maps, length-prefixed strings; no framing, nothing sent), against (2)'s driver.

With ``--chdb`` the JSONEachRow side of 3 also runs on the current engine in-process
(chdb has no TCP server, so the driver's side runs on the configured server only).

    python -m bench.insert_formats [--events 100000] [--rows 20000] [--rounds 5] [--chdb]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from array import array
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from clickhouse_driver import Client

from bench.workload import WorkloadConfig, pre_produced
from streams.clickhouse.client import SESSION_SETTINGS, make_client, server_message
from streams.clickhouse.migrations import apply_migrations, discover_migrations
from streams.metrics.totals import Totals
from streams.settings import Settings, load_settings
from streams.worker.ingest import BatchProcessor, InMessage

Rows = dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]

# (case, table, columns changed in the table's first bench row)
EDGE_ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("timings all NULL", "clicks_raw", {"load_ms": None, "cls": None, "lcp_ms": None}),
    ("CLS 0.0 and 0.1", "clicks_raw", {"cls": 0.1, "lcp_ms": 2100, "inp_ms": 0}),
    ("CLS with 16 digits", "clicks_raw", {"cls": 1.781548656443236}),
    ("CLS 3.933536230698396e-06", "clicks_raw", {"cls": 3.933536230698396e-06}),
    ("absent strings ''", "clicks_raw", {"item_id": "", "category": "", "traffic_source": ""}),
    ("quotes, tab, newline, unicode", "clicks_raw", {"item_id": "a'b\"c\\d\te\nf Ω✓"}),
    ("load_ms 5,000,000,000 (UInt32)", "clicks_raw", {"load_ms": 5_000_000_000}),
    ("price 222.99", "carts_raw", {"price": 222.99}),
    ("price 0.1 + 0.2", "carts_raw", {"price": 0.1 + 0.2}),
    ("price 1.005", "carts_raw", {"price": 1.005}),
    ("price 100 (int)", "carts_raw", {"price": 100}),
    ("quantity 5,000,000,000 (UInt32)", "carts_raw", {"quantity": 5_000_000_000}),
    ("schema_version 300 (UInt8)", "carts_raw", {"schema_version": 300}),
    ("no items", "orders_raw", {"items.item_id": [], "items.category": [],
                                 "items.quantity": [], "items.price": []}),
    ("two items", "orders_raw", {"items.item_id": ["i1", "i2"], "items.category": ["a", "b"],
                                  "items.quantity": [1, 3], "items.price": [0.5, 19.99]}),
    ("amount 1e-07", "orders_raw", {"amount": 1e-07}),
]  # fmt: skip


def bench_rows(events: int) -> Rows:
    """The raw rows the worker's chain builds for ``events`` bench events, per table."""

    class Capture:
        def __init__(self) -> None:
            self.rows: Rows = {}

        async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
            self.rows.setdefault(table, (tuple(columns), []))[1].extend(rows)

    async def no_dead_letters(items: list[tuple[bytes | None, bytes]]) -> None:
        return None

    now_ms = int(time.time() * 1000)
    by_topic: dict[str, list[InMessage]] = {}
    for offset, m in enumerate(pre_produced(WorkloadConfig(), events, now_ms - events, 1000)):
        by_topic.setdefault(m.topic, []).append(InMessage(m.value, m.key, m.partition, offset))
    sink = Capture()
    processor = BatchProcessor(Settings.model_validate({}), Totals(), sink, no_dead_letters)

    async def run() -> None:
        for topic, messages in by_topic.items():
            for i in range(0, len(messages), 5000):
                await processor.handle(topic, messages[i : i + 5000])  # type: ignore[arg-type]

    asyncio.run(run())
    return sink.rows


def http_url(settings: Settings, query: str, extra: Mapping[str, Any] | None = None) -> str:
    """The ClickHouse HTTP interface's URL for ``query`` (credentials and ``extra``
    settings as parameters)."""
    params = {
        "query": query,
        "user": settings.clickhouse_user,
        "password": settings.clickhouse_password.get_secret_value(),
        **(extra or {}),
    }
    return (
        f"http://{settings.clickhouse_host}:{settings.clickhouse_http_port}/?"
        + urllib.parse.urlencode(params)
    )


def json_each_row(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> bytes:
    return b"\n".join([orjson.dumps(dict(zip(columns, row, strict=True))) for row in rows])


def http_insert(settings: Settings, database: str, table: str, columns: Sequence[str]) -> Any:
    """``insert(rows)`` through the HTTP interface, FORMAT JSONEachRow; raises on refusal."""
    query = f"INSERT INTO {database}.{table} ({', '.join(columns)}) FORMAT JSONEachRow"
    url = http_url(settings, query, SESSION_SETTINGS)

    def insert(rows: Sequence[tuple[Any, ...]]) -> None:
        request = urllib.request.Request(url, data=json_each_row(columns, rows))
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    return insert


def native_insert(client: Client, database: str, table: str, columns: Sequence[str]) -> Any:
    """``insert(rows)`` as the worker's sink does it: tuples through clickhouse-driver."""
    query = f"INSERT INTO {database}.{table} ({', '.join(columns)}) VALUES"

    def insert(rows: Sequence[tuple[Any, ...]]) -> None:
        client.execute(query, rows)

    return insert


# clicks_raw columns by Native encoding (schemas/clickhouse/0001, 0005)
_LOW_CARDINALITY = {"event_type", "channel", "region", "page_type", "category", "traffic_source"}
_STRINGS = {"event_id", "user_id", "session_id", "item_id"}
_NULLABLE = {"load_ms": "I", "lcp_ms": "I", "inp_ms": "I", "cls": "d", "ttfb_ms": "I"}
_FIXED = {
    "event_time": "I",
    "ts_ms": "q",
    "schema_version": "B",
    "kafka_partition": "H",
    "kafka_offset": "Q",
    "ingested_at": "I",
}


def _strings(values: Any) -> bytes:
    """Length-prefixed UTF-8 (one-byte lengths: a lower bound, the bench's strings are short)."""
    out = []
    for value in values:
        encoded = value.encode()
        out.append(bytes((len(encoded),)))
        out.append(encoded)
    return b"".join(out)


def python_native_columns(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> bytes:
    """The column bodies of a Native block of clicks rows, in pure Python (a lower bound)."""
    parts = []
    for name, values in zip(columns, zip(*rows, strict=True), strict=True):
        if name in _LOW_CARDINALITY:
            keys: dict[Any, int] = {}
            index = [keys.setdefault(v, len(keys)) for v in values]
            parts += [_strings(keys), array("B" if len(keys) < 256 else "H", index).tobytes()]
        elif name in _STRINGS:
            parts.append(_strings(values))
        elif name in _NULLABLE:
            parts.append(bytes([v is None for v in values]))
            filled = [0 if v is None else v for v in values]
            parts.append(array(_NULLABLE[name], filled).tobytes())
        else:
            parts.append(array(_FIXED[name], values).tobytes())
    return b"".join(parts)


def fresh_database(settings: Settings, name: str) -> None:
    client = make_client(settings, use_database=False)
    try:
        apply_migrations(lambda sql: client.execute(sql), name, discover_migrations())
    finally:
        client.disconnect()


def inline_data_probe(settings: Settings, database: str, columns: Sequence[str], row: Any) -> str:
    """What the server does with JSONEachRow data in the query text sent on TCP."""
    client = make_client(
        settings, use_database=False, send_receive_timeout_s=3.0, sync_request_timeout_s=3.0
    )
    query = (
        f"INSERT INTO {database}.clicks_raw ({', '.join(columns)}) FORMAT JSONEachRow "
        + json_each_row(columns, [row]).decode()
    )
    try:
        client.execute(query)
    except TimeoutError as exc:
        return f"no answer in 3 s ({type(exc).__name__}): the server waits for Native blocks"
    except Exception as exc:
        return f"refused: {server_message(exc)}"
    finally:
        client.disconnect()
    stored = make_client(settings, use_database=False).execute(
        f"SELECT count() FROM {database}.clicks_raw WHERE event_id = %(id)s", {"id": row[0]}
    )
    return f"answered; rows stored: {stored[0][0]}"


def client_cpu(
    ways: Mapping[str, Callable[[Sequence[Any]], object]], rows: Sequence[Any], rounds: int
) -> dict[str, list[float]]:
    """CPU µs per row of this process for each way, rounds alternating."""
    out: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, insert in ways.items():
            started = time.process_time()
            insert(rows)
            out[name].append(round((time.process_time() - started) / len(rows) * 1e6, 2))
    return out


def stored_or_refused(insert: Callable[[Sequence[Any]], None], row: Any) -> str | None:
    try:
        insert([row])
    except urllib.error.HTTPError as exc:
        return f"refused: {exc.read().decode(errors='replace').split(', e.what')[0][:90]}"
    except Exception as exc:
        return f"refused: {server_message(exc)[:90]}"
    return None


def compare(settings: Settings, rows: Rows, chdb: bool) -> None:
    tag = uuid.uuid4().hex[:8]
    native_db, json_db = f"sw_fmt_{tag}_native", f"sw_fmt_{tag}_json"
    for name in (native_db, json_db):
        fresh_database(settings, name)
    client = make_client(settings, use_database=False)
    cases = []
    try:
        for n, (case, table, changes) in enumerate(EDGE_ROWS):
            columns, table_rows = rows[table]
            values = dict(zip(columns, table_rows[0], strict=True))
            row = tuple({**values, **changes, "event_id": f"edge-{n}"}.values())
            cases.append((case, table, columns, row, changes))
            native = stored_or_refused(native_insert(client, native_db, table, columns), row)
            json = stored_or_refused(http_insert(settings, json_db, table, columns), row)
            if native or json:
                print(f"  {case}: tuples {native or 'stored'}; JSONEachRow {json or 'stored'}")
        same = differ = 0
        for case, table, columns, row, _ in cases:
            select = f"SELECT * FROM {{db}}.{table} FINAL WHERE event_id = '{row[0]}'"
            a = client.execute(select.format(db=native_db))
            b = client.execute(select.format(db=json_db))
            if a and b and a != b:
                differ += 1
                diff = [(c, x, y) for c, x, y in zip(columns, a[0], b[0], strict=False) if x != y]
                print(f"  {case}: stored differently: {diff}")
            elif a == b:
                same += 1
        print(f"  rows stored alike: {same}; stored differently: {differ}")
        if chdb:
            compare_on_chdb(settings, cases, native_db)
    finally:
        for name in (native_db, json_db):
            client.execute(f"DROP DATABASE IF EXISTS {name}")
        client.disconnect()


def http_select(settings: Settings, sql: str) -> list[list[Any]]:
    """Rows of ``sql`` read through the HTTP interface as JSONCompact (text values)."""
    url = http_url(settings, f"{sql} FORMAT JSONCompact")
    with urllib.request.urlopen(url, timeout=60) as response:
        data: list[list[Any]] = orjson.loads(response.read())["data"]
    return data


def canonical(value: Any) -> Any:
    """A JSONCompact value comparable across engines (numbers by value, not by spelling:
    18.16 writes 64-bit integers quoted and decimals with trailing zeros)."""
    if isinstance(value, list):
        return [canonical(v) for v in value]
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return value


def compare_on_chdb(settings: Settings, cases: list[Any], native_db: str) -> None:
    """The JSONEachRow side on the current engine, against what the tuples stored."""
    chdb_session: Any = importlib.import_module("chdb.session")  # optional, untyped
    session = chdb_session.Session(path=tempfile.mkdtemp(prefix="sw-fmt-chdb-"))
    try:

        def execute(sql: str) -> list[list[Any]]:
            raw = session.query(sql, "JSONCompact").bytes()
            return orjson.loads(raw)["data"] if raw.strip() else []

        apply_migrations(execute, "sw_fmt", discover_migrations())
        version = execute("SELECT version()")[0][0]
        print(f"  current engine (chdb, ClickHouse {version}), JSONEachRow vs the tuples:")
        same = 0
        for case, table, columns, row, changes in cases:
            body = json_each_row(columns, [row]).decode()
            insert = f"INSERT INTO sw_fmt.{table} ({', '.join(columns)}) FORMAT JSONEachRow"
            select = f"SELECT * FROM {{db}}.{table} FINAL WHERE event_id = '{row[0]}'"
            want = http_select(settings, select.format(db=native_db))
            try:
                execute(f"{insert} {body}")
            except Exception as exc:
                refused = str(exc).splitlines()[0][:90]
                print(f"    {case}: refused ({refused}); tuples {'stored' if want else 'refused'}")
                continue
            got = execute(select.format(db="sw_fmt"))
            if not want:
                stored = {c: v for c, v in zip(columns, got[0], strict=True) if c in changes}
                print(f"    {case}: stored {stored}; the tuples were refused")
            elif canonical(got) != canonical(want):
                diff = [
                    (c, x, y)
                    for c, x, y in zip(columns, want[0], got[0], strict=True)
                    if canonical(x) != canonical(y)
                ]
                print(f"    {case}: stored differently (column, tuples, JSONEachRow): {diff}")
            else:
                same += 1
        print(f"    rows stored alike: {same} of {len(cases)}")
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.insert_formats", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=20_000, help="rows per insert")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chdb", action="store_true", help="also the current engine (chdb)")
    args = parser.parse_args()
    settings = load_settings()
    rows = bench_rows(args.events)
    tag = uuid.uuid4().hex[:8]
    database = f"sw_fmt_{tag}"
    fresh_database(settings, database)
    client = make_client(settings, use_database=False)
    try:
        print(f"ClickHouse {client.execute('SELECT version()')[0][0]}")
        columns, clicks = rows["clicks_raw"]
        print("1. native protocol, data in the query text:")
        print("  ", inline_data_probe(settings, database, columns, clicks[0]))
        print(f"2. client CPU µs per row, {args.rows:,} rows per insert, {args.rounds} rounds:")
        for table, (columns, table_rows) in rows.items():
            batch = table_rows[: args.rows]
            ways = {
                "tuples (driver)": native_insert(client, database, table, columns),
                "JSONEachRow (HTTP)": http_insert(settings, database, table, columns),
            }
            result = client_cpu(ways, batch, args.rounds)
            print(
                f"   {table} ({len(batch):,} rows): "
                + "; ".join(f"{k} {v} median {statistics.median(v)}" for k, v in result.items())
            )
        print("3. the same rows stored both ways (SELECT * compared):")
        compare(settings, rows, args.chdb)
        columns, clicks = rows["clicks_raw"]
        encode = {"Native columns in Python": lambda r: python_native_columns(columns, r)}
        result = client_cpu(encode, clicks[: args.rows], args.rounds)
        print(f"4. CPU µs per row, clicks_raw, no framing, nothing sent: {result}")
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {database}")
        client.disconnect()


if __name__ == "__main__":
    main()
