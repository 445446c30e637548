"""The collector's HTTP service (aiohttp): beacons in, one ``page_view`` per page load out.

Routes:

* ``POST /beacon`` — one beacon (``streams.collector.beacon``). Checked cheapest first:
  rate limit per client address (429), body size (413, before and while reading), JSON
  and contract (400), room to wait (503). Accepted → 204, also for a late beacon of a page
  load already produced (dropped; the browser cannot act on an error anyway). The body may
  be ``text/plain`` (what ``navigator.sendBeacon`` sends for a string: no CORS preflight)
  or ``application/json``; the content type is not checked. ``OPTIONS`` answers a
  preflight for ``fetch`` senders.
* ``GET /healthz`` — 200 while serving; ``GET /metrics`` — the collector's own metrics.

A ticker emits settled page loads (``streams.collector.merge``) every ``tick_s`` to the
sink, keyed by ``session_id`` (EVENTS.md); at shutdown the waiting ones are emitted before
the producer is flushed, so a clean stop loses no accepted beacon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, disable_created_metrics, generate_latest

from streams.collector.beacon import BadBeacon, BeaconRejectReason, parse_beacon
from streams.collector.config import PORT_ENV, CollectorConfig
from streams.collector.merge import Overloaded, PageLoads, wall_ms
from streams.collector.metrics import CollectorMetrics
from streams.collector.ratelimit import RateLimiter
from streams.collector.sink import EventSink, KafkaSink, SinkUnavailable
from streams.settings import Settings

log = logging.getLogger(__name__)

_STATUS: dict[BeaconRejectReason, int] = {"too_large": 413, "rate_limited": 429, "overloaded": 503}


class Collector:
    """One collector: limiter, page-load merger, metrics and sink behind an aiohttp app."""

    def __init__(
        self,
        config: CollectorConfig,
        sink: EventSink,
        metrics: CollectorMetrics | None = None,
        *,
        tick_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.config = config
        self.sink = sink
        self.metrics = metrics or CollectorMetrics()
        self.tick_s = tick_s
        self.limiter = RateLimiter(config.rate_per_s, config.burst, clock=clock)
        self.pages = PageLoads(
            config.region,
            settle_s=config.settle_s,
            max_pending=config.max_pending,
            clock=clock,
            wall_clock_ms=wall_clock_ms,
        )
        self._cors = {"Access-Control-Allow-Origin": config.allow_origin}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_post("/beacon", self.beacon)
        app.router.add_route("OPTIONS", "/beacon", self.preflight)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.prometheus)
        app.cleanup_ctx.append(self._ticking)
        return app

    def client(self, request: web.Request) -> str:
        if self.config.trust_forwarded_for:
            hops = request.headers.get("X-Forwarded-For", "")
            # the last hop is the one our own proxy appended; earlier ones are client-made
            last = hops.rsplit(",", 1)[-1].strip()
            if last:
                return last
        return request.remote or "unknown"

    def _reject(self, reason: BeaconRejectReason, detail: str) -> web.Response:
        self.metrics.reject(reason)
        headers = dict(self._cors)
        if reason == "rate_limited":
            headers["Retry-After"] = "1"
        return web.json_response(
            {"error": reason, "detail": detail}, status=_STATUS.get(reason, 400), headers=headers
        )

    async def beacon(self, request: web.Request) -> web.Response:
        if not self.limiter.allow(self.client(request)):
            return self._reject("rate_limited", "too many beacons from this address")
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return self._reject("too_large", f"body over {limit} bytes")
        try:
            raw = await request.read()  # a body without Content-Length is capped here
        except web.HTTPRequestEntityTooLarge:
            return self._reject("too_large", f"body over {limit} bytes")
        try:
            beacon = parse_beacon(raw, self.config.region)
            outcome = self.pages.add(beacon)
        except BadBeacon as exc:
            return self._reject(exc.reason, exc.detail)
        except Overloaded as exc:
            return self._reject("overloaded", str(exc))
        if outcome == "late":
            self.metrics.late.inc()
        else:
            self.metrics.accepted.inc()
            self.metrics.pending.set(len(self.pages))
        return web.Response(status=204, headers=self._cors)

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(
            status=204,
            headers={
                **self._cors,
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": "86400",
            },
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "pending_page_loads": len(self.pages)})

    async def prometheus(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def produce(self, events: Sequence[dict[str, Any]]) -> None:
        for event in events:
            await self.sink.send(event["session_id"], orjson.dumps(event))
            self.metrics.produced.inc()
        self.metrics.pending.set(len(self.pages))

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.produce(self.pages.due())
            except Exception:  # one bad round must not stop the collector
                log.exception("producing settled page loads failed")

    async def _ticking(self, app: web.Application) -> AsyncIterator[None]:
        ticker = asyncio.create_task(self._tick_forever())
        yield
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await self.produce(self.pages.drain())


async def serve(
    config: CollectorConfig, settings: Settings, stop: asyncio.Event | None = None
) -> int:
    """Run the collector until SIGTERM/SIGINT (or ``stop``); the exit code of the command."""
    # this process only: no *_created series next to each counter
    disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = CollectorMetrics()

    def produce_failed(exc: BaseException) -> None:
        metrics.produce_errors.inc()
        log.warning("a page_view event was not delivered to Kafka: %s", exc)

    topic = settings.kafka_topic("clicks")
    sink = KafkaSink(
        settings.kafka_bootstrap,
        topic,
        settings.topic_partitions,
        produce_failed,
        compression=settings.kafka_compression_type,
    )
    try:
        await sink.start()
    except SinkUnavailable as exc:
        print(f"salewatch collect: {exc}", file=sys.stderr)
        return 1
    collector = Collector(config, sink, metrics)
    runner = web.AppRunner(collector.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except OSError as exc:
        print(
            f"salewatch collect: cannot listen on {config.host}:{config.port} ({exc.strerror});"
            f" set --port or {PORT_ENV}",
            file=sys.stderr,
        )
        await runner.cleanup()
        await sink.stop()
        return 1
    print(
        f"salewatch collect: listening on http://{config.host}:{config.port}/beacon,"
        f" producing to {topic} at {settings.kafka_bootstrap}",
        flush=True,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()  # stops accepting, then emits what is still waiting
        await sink.stop()  # delivers what is queued
    return 0
