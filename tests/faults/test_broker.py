"""The broker unreachable at start-up, then available; and a broker restart mid-run.

Both use a throwaway tansu on a free port (the shared broker is never stopped). tansu keeps
everything in memory: a restarted tansu has no topics, no committed offsets and no groups,
so "resumes" here means: the worker reconnects and stores what is produced after the
restart (events produced before were stored before; nothing is lost that the broker had
acknowledged while the worker was up). The recreated topics start again at offset 0, below
the offsets ClickHouse holds: the worker must read them from their start, not seek past
what ClickHouse says (``SourceReader.seek_past_stored``; it once skipped all 400 events).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.faults.conftest import ThrowawayTansu
from tests.faults.support import Producer, carts_and_orders, raw_counts
from tests.integration.support import WorkerProcess, wait_until

pytestmark = pytest.mark.integration


def _settings(isolated: Settings, broker: ThrowawayTansu) -> Settings:
    return isolated.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{broker.port}"})


def _stored(settings: Settings) -> int:
    return sum(c[0] for c in raw_counts(settings).values())


def test_broker_unreachable_at_startup_then_available(
    isolated: Settings, throwaway_tansu: ThrowawayTansu, tmp_path: Path
) -> None:
    settings = _settings(isolated, throwaway_tansu)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    import os
    import subprocess
    import sys

    from tests.integration.support import settings_env

    log = (tmp_path / "worker.log").open("ab")
    worker.proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"],
        env={**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        time.sleep(10)  # broker absent for 10 s
        assert worker.proc.poll() is None, f"worker gave up:\n{worker.log_text()[-1500:]}"
        text = worker.log_text()
        assert "SALEWATCH_KAFKA_BOOTSTRAP" in text and "Traceback" not in text, text[-1500:]
        throwaway_tansu.start()
        up_at = time.monotonic()
        events = carts_and_orders(500, int(time.time() * 1000) - 10_000, 5_000, tag="u")
        Producer(settings, [(t, k, v) for t, k, v, _ in events], per_second=1e9)._run()
        wait_until(lambda: _stored(settings), lambda n: n == 500, 90, "events after broker start")
        print(f"\nbroker up -> all stored in {time.monotonic() - up_at:.1f}s")
    finally:
        worker.stop()


def test_broker_restart_mid_run(
    isolated: Settings, throwaway_tansu: ThrowawayTansu, tmp_path: Path
) -> None:
    settings = _settings(isolated, throwaway_tansu)
    throwaway_tansu.start()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    now = int(time.time() * 1000)
    first = carts_and_orders(1000, now - 20_000, 5_000, tag="f")
    second = carts_and_orders(400, now - 10_000, 5_000, tag="s")
    try:
        worker.start()
        Producer(settings, [(t, k, v) for t, k, v, _ in first], per_second=1e9)._run()
        wait_until(lambda: _stored(settings), lambda n: n == 1000, 60, "first events stored")
        throwaway_tansu.stop(signal.SIGTERM)
        time.sleep(5)
        throwaway_tansu.start()
        up_at = time.monotonic()
        # the restarted broker is empty: produce the second part (topics auto-created)
        Producer(settings, [(t, k, v) for t, k, v, _ in second], per_second=1e9)._run()
        try:
            wait_until(
                lambda: _stored(settings),
                lambda n: n == 1400,
                60,
                "events produced after the broker restart",
            )
        finally:
            print(
                f"\nbroker restart: stored {_stored(settings) - 1000} of the 400 events "
                "produced after it"
            )
        recovery_s = time.monotonic() - up_at
        assert worker.proc is not None and worker.proc.poll() is None
        counts = raw_counts(settings)
        log = worker.log_text()
    finally:
        worker.stop()
    print(
        f"\nbroker restart: all 400 new events stored {recovery_s:.1f}s after it was back; "
        f"raw {counts}; tracebacks in log: {log.count('Traceback')}"
    )
    assert counts["orders_raw"][:2] == (700, 700) and counts["carts_raw"][:2] == (700, 700)


def test_broker_restart_while_the_worker_is_down_loses_nothing(
    isolated: Settings, throwaway_tansu: ThrowawayTansu, tmp_path: Path
) -> None:
    """The issue-15 scenario: 2,000 events stored, worker stopped, the broker restarted (a
    new incarnation of every partition, no committed offsets), 6,000 new events produced,
    worker started. The new log is longer than the offsets ClickHouse holds, so only the
    offset fence (``streams.worker.offset_fence``) tells that its records are not the stored ones:
    without it the worker sought past them (measured: 4,000 of 6,000 stored)."""
    settings = _settings(isolated, throwaway_tansu)
    throwaway_tansu.start()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    now = int(time.time() * 1000)
    first = carts_and_orders(2000, now - 30_000, 5_000, tag="f")
    second = carts_and_orders(6000, now - 20_000, 10_000, tag="s")
    try:
        worker.start()
        Producer(settings, [(t, k, v) for t, k, v, _ in first], per_second=1e9)._run()
        wait_until(lambda: _stored(settings), lambda n: n == 2000, 60, "first events stored")
        worker.stop()
        throwaway_tansu.stop(signal.SIGTERM)
        throwaway_tansu.start()
        Producer(settings, [(t, k, v) for t, k, v, _ in second], per_second=1e9)._run()
        worker.start()
        up_at = time.monotonic()
        try:
            wait_until(lambda: _stored(settings), lambda n: n == 8000, 90, "the 6,000 new events")
        finally:
            print(f"\nbroker restart while down: stored {_stored(settings) - 2000} of 6,000")
        recovery_s = time.monotonic() - up_at
        counts = raw_counts(settings)
        log = worker.log_text()
    finally:
        worker.stop()
    print(f"all stored {recovery_s:.1f}s after the worker started; raw {counts}")
    assert counts["orders_raw"][:2] == (4000, 4000) and counts["carts_raw"][:2] == (4000, 4000)
    assert "not resuming" in log and "event_id_differs" in log, log[-2000:]
    assert "Traceback" not in log, log[-2000:]
