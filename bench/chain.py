"""The salewatch chain alone, in process: CPU µs per event without Kafka or Faust.

``BatchProcessor.handle`` (decode, validate, raw rows, per-batch metrics) plus the
counting pipeline (``CountLocally``), on batches of 5,000 messages of one topic, as the
worker's reader calls them; the ClickHouse sink and the dead-letter sender are no-ops
(inserts are measured in the worker runs). CPU time of this process, best of
``--repeat`` passes, each on a fresh pipeline.

It only uses APIs that older revisions have too, so the gain of each hot-path commit can
be measured by putting that revision's ``streams`` first on the path. Run it from outside
the checkout: ``python -m`` puts the current directory first on ``sys.path``, so from the
repository root the checkout's own ``streams`` would be measured instead:

    git archive REV streams | tar -x -C /tmp/rev
    cd /tmp && PYTHONPATH=/tmp/rev:/path/to/salewatch python -m bench.chain
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from bench.workload import WorkloadConfig, pre_produced

BATCH = 5000


class _NullSink:
    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
        return None


async def _no_dead_letters(items: list[tuple[bytes | None, bytes]]) -> None:
    return None


def measure(events: int = 200_000, repeat: int = 3) -> dict[str, float]:
    from streams.counting.clock import EventClock
    from streams.counting.pipeline import Pipeline
    from streams.metrics.totals import Totals
    from streams.settings import Settings
    from streams.worker.app import CountLocally
    from streams.worker.ingest import BatchProcessor, InMessage

    now_ms = int(time.time() * 1000)
    by_topic: dict[str, list[Any]] = {}
    config = WorkloadConfig(invalid_share=0.001)
    for offset, m in enumerate(pre_produced(config, events, now_ms - events // 20, 20_000)):
        by_topic.setdefault(m.topic, []).append(InMessage(m.value, m.key, m.partition, offset))

    async def one_pass() -> float:
        totals = Totals()
        count = CountLocally(Pipeline(totals), EventClock())
        processor = BatchProcessor(
            Settings.model_validate({}), totals, _NullSink(), _no_dead_letters, count=count
        )
        started = time.process_time()
        for topic, messages in by_topic.items():
            for i in range(0, len(messages), BATCH):
                await processor.handle(topic, messages[i : i + BATCH])  # type: ignore[arg-type]
        return time.process_time() - started

    best = min(asyncio.run(one_pass()) for _ in range(repeat))
    return {"events": events, "cpu_us_per_event": round(best / events * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.events, args.repeat)))


if __name__ == "__main__":
    main()
