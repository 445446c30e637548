"""The collector's HTTP service on a real local port (aiohttp test server), with a fake sink.

What a shop's browsers can send and what comes out: a valid beacon → one ``page_view`` on
the sink after the settle time; oversized → 413, wrong types → 400, a flood → 429, none
of which produces anything; and the collector's own /metrics counts each outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from streams.collector.config import CollectorConfig
from streams.collector.server import Collector
from streams.events.decode import Limits, validate_event
from tests.unit.collector.test_beacon import FakeClock, beacon_body, metric
from tests.unit.events_factory import NOW_MS

T = TypeVar("T")
CONFIG = CollectorConfig(region="CN-GD", settle_s=5.0, rate_per_s=1.0, burst=5)


class ListSink:
    """Records what would go to Kafka: (key, event)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, key: str, value: bytes) -> None:
        self.sent.append((key, orjson.loads(value)))


class Harness:
    def __init__(self, config: CollectorConfig = CONFIG) -> None:
        self.clock = FakeClock()
        self.sink = ListSink()
        self.collector = Collector(
            config, self.sink, tick_s=3600, clock=self.clock, wall_clock_ms=lambda: NOW_MS
        )

    def run(self, scenario: Callable[[TestClient[Any, Any]], Awaitable[T]]) -> T:
        async def main() -> T:
            async with TestClient(TestServer(self.collector.app())) as client:
                return await scenario(client)

        return asyncio.run(main())

    async def settle(self) -> None:
        """Let the settle time pass and run one tick."""
        self.clock.now += self.collector.config.settle_s + 0.01
        await self.collector.produce(self.collector.pages.due())

    def metric(self, name: str, **labels: str) -> float:
        text = self.collector.metrics.registry
        from prometheus_client import generate_latest

        for family in text_string_to_metric_families(generate_latest(text).decode()):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        raise KeyError(name)


async def post(client: TestClient[Any, Any], body: object, **kwargs: Any) -> int:
    data = orjson.dumps(body) if isinstance(body, dict | list) else body
    # what navigator.sendBeacon sends for a string body
    headers = {"Content-Type": "text/plain;charset=UTF-8", **kwargs.pop("headers", {})}
    async with client.post("/beacon", data=data, headers=headers, **kwargs) as response:
        await response.read()
        return response.status


def test_valid_beacon_produces_one_page_view_keyed_by_session() -> None:
    h = Harness()

    async def scenario(client: TestClient[Any, Any]) -> None:
        assert await post(client, beacon_body()) == 204
        assert h.sink.sent == [], "held until the page load settles"
        await h.settle()

    h.run(scenario)
    [(key, event)] = h.sink.sent
    assert key == "s-1"
    assert event["event_type"] == "page_view" and event["event_id"] == "wv:pl-1"
    assert (event["load_ms"], event["lcp_ms"], event["ttfb_ms"]) == (1835, 1835, 120)
    assert (event["ts"], event["region"], event["page_type"]) == (NOW_MS, "CN-GD", "detail")
    assert validate_event(event, "clicks", NOW_MS, Limits()) == event
    assert h.metric("salewatch_collector_beacons_accepted_total") == 1
    assert h.metric("salewatch_collector_page_views_produced_total") == 1


def test_several_beacons_of_one_page_load_make_one_event() -> None:
    h = Harness()

    async def scenario(client: TestClient[Any, Any]) -> None:
        early = beacon_body(metrics=[metric("TTFB", 95.0)])
        hidden = beacon_body(metrics=[metric("LCP", 3100.0), metric("CLS", 0.04)])
        hidden_again = beacon_body(metrics=[metric("CLS", 0.31), metric("INP", 560.0)])
        other_page = beacon_body(page_load_id="pl-2", metrics=[metric("LCP", 900.0)])
        for body in (early, hidden, hidden_again, other_page):
            assert await post(client, body) == 204
        await h.settle()
        assert await post(client, hidden_again) == 204, "late: accepted, dropped"
        await h.settle()

    h.run(scenario)
    events = {event["event_id"]: event for _, event in h.sink.sent}
    assert len(h.sink.sent) == 2
    merged = events["wv:pl-1"]
    assert {k: merged[k] for k in ("ttfb_ms", "lcp_ms", "load_ms", "cls", "inp_ms")} == {
        "ttfb_ms": 95,
        "lcp_ms": 3100,
        "load_ms": 3100,
        "cls": 0.31,
        "inp_ms": 560,
    }
    assert events["wv:pl-2"]["load_ms"] == 900
    assert h.metric("salewatch_collector_beacons_late_total") == 1


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        pytest.param(b"x" * (16 * 1024 + 1), {}, id="content-length"),
        pytest.param(
            orjson.dumps(beacon_body(padding="x" * 20_000)), {}, id="valid-json-but-too-big"
        ),
    ],
)
def test_oversized_beacon_is_413_and_produces_nothing(body: bytes, headers: dict[str, str]) -> None:
    h = Harness()

    async def scenario(client: TestClient[Any, Any]) -> int:
        status = await post(client, body, headers=headers)
        await h.settle()
        return status

    assert h.run(scenario) == 413
    assert h.sink.sent == []
    assert h.metric("salewatch_collector_beacons_rejected_total", reason="too_large") == 1


def test_oversized_chunked_beacon_without_length_is_413() -> None:
    h = Harness()

    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 1024

    async def scenario(client: TestClient[Any, Any]) -> int:
        return await post(client, chunks())

    assert h.run(scenario) == 413
    assert h.sink.sent == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"{not json", "malformed_json", id="malformed"),
        pytest.param(beacon_body(session_id=42), "wrong_type", id="session-id-int"),
        pytest.param(beacon_body(metrics=[metric("LCP", "slow")]), "wrong_type", id="value-str"),
        pytest.param(beacon_body(metrics="LCP=1200"), "wrong_type", id="metrics-str"),
        pytest.param([beacon_body()], "not_an_object", id="array"),
        pytest.param(beacon_body(metrics=[metric("FCP", 1.0)]), "no_vitals", id="no-vitals"),
    ],
)
def test_bad_beacon_is_400_and_produces_nothing(body: object, reason: str) -> None:
    h = Harness()

    async def scenario(client: TestClient[Any, Any]) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        async with client.post("/beacon", data=data) as response:
            answer = (response.status, await response.json())
        await h.settle()
        return answer

    status, answer = h.run(scenario)
    assert (status, answer["error"]) == (400, reason)
    assert h.sink.sent == []
    assert h.metric("salewatch_collector_beacons_rejected_total", reason=reason) == 1


def test_flood_from_one_address_is_429_and_only_the_burst_counts() -> None:
    h = Harness()

    async def scenario(client: TestClient[Any, Any]) -> list[int]:
        statuses = []
        for i in range(12):
            statuses.append(await post(client, beacon_body(page_load_id=f"pl-{i}")))
        h.clock.now += 1.0  # one token back at 1 beacon/s
        statuses.append(await post(client, beacon_body(page_load_id="pl-after")))
        await h.settle()
        return statuses

    statuses = h.run(scenario)
    assert statuses == [204] * 5 + [429] * 7 + [204]
    assert sorted(e["event_id"] for _, e in h.sink.sent) == sorted(
        [f"wv:pl-{i}" for i in range(5)] + ["wv:pl-after"]
    )
    assert h.metric("salewatch_collector_beacons_rejected_total", reason="rate_limited") == 7


@pytest.mark.parametrize(
    ("trust", "statuses"),
    [
        pytest.param(False, [204, 429], id="untrusted-header-ignored"),
        pytest.param(True, [204, 204], id="behind-proxy-per-client"),
    ],
)
def test_rate_limit_key_behind_a_proxy(trust: bool, statuses: list[int]) -> None:
    config = CollectorConfig(rate_per_s=0.001, burst=1, trust_forwarded_for=trust)
    h = Harness(config)

    async def scenario(client: TestClient[Any, Any]) -> list[int]:
        return [
            await post(client, beacon_body(), headers={"X-Forwarded-For": f"1.2.3.4, 10.0.0.{i}"})
            for i in (1, 2)
        ]

    assert h.run(scenario) == statuses


def test_shutdown_produces_what_is_still_settling() -> None:
    h = Harness()

    async def scenario(client: TestClient[Any, Any]) -> None:
        assert await post(client, beacon_body()) == 204

    h.run(scenario)  # leaving the client shuts the app down
    assert [e["event_id"] for _, e in h.sink.sent] == ["wv:pl-1"]


def test_health_metrics_and_preflight() -> None:
    h = Harness()

    async def scenario(client: TestClient[Any, Any]) -> tuple[int, str, int, str]:
        async with client.get("/healthz") as health:
            status = health.status
        async with client.get("/metrics") as metrics:
            text = await metrics.text()
        async with client.options("/beacon") as preflight:
            allow = preflight.headers["Access-Control-Allow-Origin"]
            return status, text, preflight.status, allow

    status, text, preflight, allow = h.run(scenario)
    assert status == 200 and (preflight, allow) == (204, "*")
    assert 'salewatch_collector_beacons_rejected_total{reason="rate_limited"} 0.0' in text
