"""streams.clickhouse.sink: transient errors retried, refused rows bisected out and
dead-lettered, fatal errors raised — against a stand-in client that fails like
clickhouse-driver does (the real server: tests/faults/test_clickhouse_refuses.py)."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from clickhouse_driver.errors import NetworkError, ServerException, TypeMismatchError

from streams.clickhouse.errors import classify, reject_reason
from streams.clickhouse.sink import ClickHouseFatalError, ClickHouseSink
from streams.metrics.totals import Totals
from streams.settings import Settings

COLUMNS = ("event_id", "quantity", "kafka_partition", "kafka_offset")


@dataclass
class FakeClient:
    """Refuses a whole insert when any row's quantity is negative (like the driver's
    UInt32 check); fails ``transient`` times first with a network error."""

    transient: int = 0
    fatal: bool = False
    stored: list[tuple[Any, ...]] = field(default_factory=list)
    attempts: int = 0

    def execute(self, query: str, rows: list[tuple[Any, ...]]) -> None:
        self.attempts += 1
        if self.fatal:
            raise ServerException("Table salewatch.carts_raw doesn't exist.", code=60)
        if self.transient:
            self.transient -= 1
            raise NetworkError("Connection refused")
        if any(r[1] < 0 for r in rows):
            raise TypeMismatchError("Type mismatch in VALUES section. Column quantity")
        self.stored.extend(rows)

    def disconnect(self) -> None:
        pass


def sink_with(client: FakeClient) -> tuple[ClickHouseSink, Totals, list[bytes]]:
    letters: list[bytes] = []

    async def send(items: list[tuple[bytes | None, bytes]]) -> None:
        letters.extend(value for _, value in items)

    totals = Totals()
    sink = ClickHouseSink(
        Settings(), totals, client=client, send_dead_letters=send, source_topic="carts"
    )
    return sink, totals, letters


def rows(n: int, bad: set[int]) -> list[tuple[Any, ...]]:
    return [(f"e{i}", -1 if i in bad else 1, 2, 100 + i) for i in range(n)]


@pytest.mark.parametrize(
    ("n", "bad"),
    [
        pytest.param(1, {0}, id="one row, refused"),
        pytest.param(100, {37}, id="one bad row in 100"),
        pytest.param(100, {0, 99}, id="first and last"),
        pytest.param(64, set(range(64)), id="every row"),
        pytest.param(1000, {3, 500, 501, 998}, id="four in 1000"),
    ],
)
def test_refused_rows_are_dead_lettered_and_the_rest_stored(n: int, bad: set[int]) -> None:
    client = FakeClient()
    sink, totals, letters = sink_with(client)
    batch = rows(n, bad)
    asyncio.run(sink.insert("carts_raw", COLUMNS, batch))
    assert sorted(client.stored) == sorted(r for i, r in enumerate(batch) if i not in bad)
    envelopes = [orjson.loads(v) for v in letters]
    assert sorted(e["offset"] for e in envelopes) == sorted(100 + i for i in bad)
    for e in envelopes:
        assert e["reason"] == "clickhouse_rejected" and e["source_topic"] == "carts"
        assert e["partition"] == 2 and e["detail"].startswith("type_mismatch: Code: 53")
        assert orjson.loads(e["original"])["event_id"] == f"e{e['offset'] - 100}"
    assert totals.get(
        "salewatch_clickhouse_rows_rejected_total", ("carts_raw", "type_mismatch")
    ) == len(bad)
    assert totals.get("salewatch_clickhouse_rows_written_total", ("carts_raw",)) == n - len(bad)
    assert totals.get("salewatch_dead_letters_total", ("carts",)) == len(bad)
    if len(bad) == 1:  # bisection, not one insert per row
        assert client.attempts <= 2 * (n.bit_length() + 1)


def test_transient_errors_are_retried_then_everything_is_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("streams.clickhouse.sink.RETRY_WAIT", lambda state: 0)
    client = FakeClient(transient=3)
    sink, totals, letters = sink_with(client)
    asyncio.run(sink.insert("carts_raw", COLUMNS, rows(10, set())))
    assert len(client.stored) == 10 and not letters
    assert totals.get("salewatch_clickhouse_write_errors_total", ("carts_raw",)) == 3


def test_a_fatal_error_raises_one_line_naming_the_table() -> None:
    client = FakeClient(fatal=True)
    sink, _, letters = sink_with(client)
    with pytest.raises(ClickHouseFatalError, match=r"carts_raw.*Code: 60") as info:
        asyncio.run(sink.insert("carts_raw", COLUMNS, rows(10, set())))
    assert "\n" not in str(info.value) and client.attempts == 1 and not letters


@pytest.mark.parametrize(
    ("exc", "kind", "reason"),
    [
        (NetworkError("refused"), "transient", "other"),
        (ConnectionResetError(), "transient", "other"),
        (ServerException("Too many parts", code=252), "transient", "other"),
        (ServerException("Memory limit", code=241), "transient", "other"),
        (ServerException("unheard of", code=99999), "transient", "other"),
        (TypeMismatchError("Column q: argument out of range"), "rows", "type_mismatch"),
        (ServerException("Cannot parse", code=27), "rows", "cannot_parse"),
        (ServerException("too large", code=131), "rows", "too_large"),
        (AttributeError("'int' object has no attribute 'encode'"), "rows", "bad_value"),
        (struct.error("format requires"), "rows", "bad_value"),
        (ServerException("Unknown table", code=60), "fatal", "other"),
        (ServerException("Wrong password", code=193), "fatal", "other"),
        (ServerException("No such column", code=16), "fatal", "other"),
        (RuntimeError("a bug"), "fatal", "other"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_classify(exc: BaseException, kind: str, reason: str) -> None:
    assert classify(exc) == kind
    if kind == "rows":
        assert reject_reason(exc) == reason
