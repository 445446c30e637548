"""The Faust floor: a bare Faust agent that only decodes each event (run as a subprocess).

Faust's defaults throughout (asyncio loop, default sensors and monitor, one event at a
time through ``async for``), except what the local broker needs (tansu joins wait half the
session timeout, ``../shared/STACK.md``) and no web server. Topics are raw bytes and the
agent decodes with orjson, like the ceiling, so the difference between the two is Faust's
per-event machinery. ``--uvloop`` runs the same agent on uvloop (a Faust-level option).

When it has seen ``--expect`` events it writes its progress samples (monotonic time,
events) as JSON to ``--out``; the harness then stops it.

    python -m bench.faust_floor --app-id ID --topics a,b --expect N --out FILE
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

SAMPLE_EVERY = 5000


def build_app(app_id: str, bootstrap: str, topics: list[str], expect: int, out: Path) -> Any:
    import faust

    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=6,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=tempfile.mkdtemp(prefix="faust-floor-"),
        store="memory://",
    )
    topic = app.topic(*topics, value_serializer="raw", key_serializer="raw")
    samples: list[tuple[float, int]] = []

    async def floor(stream: Any) -> None:
        loads = orjson.loads
        events = 0
        next_sample = 0
        samples.append((time.perf_counter(), 0))
        async for value in stream:
            try:
                decoded = loads(value)
                events += len(decoded) if isinstance(decoded, list) else 1
            except orjson.JSONDecodeError:
                events += 1
            if events >= next_sample:
                samples.append((time.perf_counter(), events))
                next_sample += SAMPLE_EVERY
                if events >= expect:
                    out.write_text(json.dumps(samples))

    app.agent(topic, name="floor")(floor)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topics", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import mode.loop

        mode.loop.use("uvloop")
    import faust

    app = build_app(args.app_id, args.bootstrap, args.topics.split(","), args.expect, args.out)
    faust.Worker(app, loglevel="warning").execute_from_commandline()


if __name__ == "__main__":
    main()
