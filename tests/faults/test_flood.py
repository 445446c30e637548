"""Flood: 10x the normal rate: 500 events/s normal, 5,000 events/s flood, one event per
Kafka message (the worst case for the worker). The backlog (produced - stored) grows, then
drains; the worker's RSS (/proc/PID/status VmRSS) stays bounded.

The issue asks for 2 minutes of flood: ``FLOOD_S=120 pytest -m integration
tests/faults/test_flood.py -s`` runs that (~4 min); the suite runs 30 s to stay within its
time budget. The flood is produced with librdkafka: one kafka-python thread reached only
~2,000-2,800 events/s here, a 4-6x flood instead of 10x.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.faults.conftest import rss_kib
from tests.faults.support import Producer, carts_and_orders
from tests.integration.support import ch_scalar, running_worker

pytestmark = pytest.mark.integration

NORMAL = 500
FLOOD_S = int(os.environ.get("FLOOD_S", "30"))
RSS_LIMIT_MIB = 700


def _stored(settings: Settings) -> int:
    return int(ch_scalar(settings, "SELECT count() FROM orders_raw")) + int(
        ch_scalar(settings, "SELECT count() FROM carts_raw")
    )


def test_flood_lag_drains_memory_bounded(isolated: Settings, tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    warm = carts_and_orders(NORMAL * 10, now - 60_000, 10_000, tag="n")
    flood = carts_and_orders(NORMAL * 10 * FLOOD_S, now - 50_000, FLOOD_S * 1000, tag="f")
    total = len(warm) + len(flood)
    samples: list[tuple[float, int, int, int]] = []  # (t, sent, stored, rss KiB)
    with running_worker(isolated, tmp_path / "worker.log") as worker:
        assert worker.proc is not None
        pid = worker.proc.pid
        rss_start = rss_kib(pid)
        normal = Producer(isolated, [(t, k, v) for t, k, v, _ in warm], per_second=NORMAL)
        flooder = Producer(
            isolated,
            [(t, k, v) for t, k, v, _ in flood],
            per_second=NORMAL * 10,
            chunk=500,
            fast=True,
        )
        t0 = time.monotonic()
        normal.start()
        normal.join(30)
        flood_at = time.monotonic() - t0
        flooder.start()
        while True:
            stored = _stored(isolated)
            sent = normal.sent + flooder.sent
            samples.append((time.monotonic() - t0, sent, stored, rss_kib(pid)))
            if stored >= total or time.monotonic() - t0 > flood_at + FLOOD_S + 120:
                break
            time.sleep(1)
        flooder.join(10)
        assert worker.proc.poll() is None, "worker died"
    flood_end = min((t for t, s, *_ in samples if s >= total), default=samples[-1][0])
    backlog = [(round(t, 1), s - st) for t, s, st, _ in samples]
    max_backlog = max(b for _, b in backlog)
    drained_at = samples[-1][0]
    rss_max = max(r for *_, r in samples)
    flood_rate = len(flood) / flooder.seconds
    print(
        f"\nflood: {len(flood)} events in {flooder.seconds:.1f}s ({flood_rate:,.0f}/s; "
        f"asked: {FLOOD_S}s) after {len(warm)} at {NORMAL}/s; "
        f"max backlog {max_backlog} events; producing ended {flood_end:.1f}s, all stored at "
        f"{drained_at:.1f}s (t0 = start); RSS {rss_start // 1024} -> max {rss_max // 1024} MiB; "
        f"backlog samples {backlog[::5]}"
    )
    assert flood_rate >= NORMAL * 10 * 0.85, "the flood was not 10x the normal rate"
    assert samples[-1][2] >= total, "the backlog did not drain"
    assert max_backlog > 0
    assert rss_max // 1024 < RSS_LIMIT_MIB
    assert (
        ch_scalar(isolated, "SELECT count() FROM orders_raw FINAL")
        + ch_scalar(isolated, "SELECT count() FROM carts_raw FINAL")
        == total
    )
