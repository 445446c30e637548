"""Summaries of py-spy profiles (``py-spy record --format raw``: collapsed stacks).

``python -m bench.profile FILE [--top N] [--thread NAME]`` prints the functions with the
most samples, self (the leaf frame) and inclusive (anywhere on the stack, counted once per
sample); ``--categories FILE...`` prints, per profile, the share of samples of each part
of the worker (:data:`CATEGORIES`: the first marker found walking from the leaf up wins)
— how RESULTS.md shows where a worker's time goes. The Faust categories are for the
profiles of the worker before the batch reader (Faust agents), kept for comparison.
Profiles are recorded by ``python -m bench.record_profile``.
"""

from __future__ import annotations

import argparse
import gzip
import re
from collections import Counter
from pathlib import Path

# "process 123:"python -m streams.cli worker";thread (0x7f..);frame (file:line);... count"
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")
# helper threads that py-spy samples while they wait (it cannot tell their waits from
# work): the thread pool of the ClickHouse inserts between inserts, and the /metrics server
IDLE_HELPERS = "idle helper threads (insert pool, /metrics server): share of all samples"


def frame_name(frame: str) -> str:
    """``func (path/to/module.py:12)`` → ``func (module.py)``."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    short = "/".join(path.split("/")[-2:]) if "/" in path else path
    return f"{match.group('func')} ({short})"


def summarize(
    text: str, thread: str | None = "MainThread"
) -> tuple[Counter[str], Counter[str], int]:
    """(self samples, inclusive samples, total samples) per frame name."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if thread is not None and not any(thread in f for f in frames[:3]):
            continue
        names = [frame_name(f) for f in frames if "(" in f and not f.startswith("thread")]
        if not names:
            continue
        count = int(count_text)
        total += count
        own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    return own, inclusive, total


# (category, frame-name prefixes that mark it), most specific first
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("salewatch: ClickHouse insert (driver, in a thread)", ("ClickHouseSink._insert_once",)),
    ("salewatch: decode + validate", ("valid_events", "decode_message", "validate_event")),
    ("salewatch: counting (Pipeline)", ("Pipeline.process", "Pipeline.close_windows")),
    ("salewatch: raw rows", ("raw_row",)),
    (
        "salewatch: rest of the chain",
        (
            "BatchProcessor.handle",
            "BatchProcessor.prepare",
            "CountLocally.__call__",
            "count_orders",
        ),
    ),
    (
        "salewatch: Kafka producer (dead letters, orders_by_session)",
        ("forward_by_session", "send_dead_letters", "Producer.send", "Sender."),
    ),
    ("salewatch: reader and insert queue", ("SourceReader.", "InsertQueue.")),
    ("salewatch: agent glue (app.py, before the reader)", ("_agent_body",)),
    ("/metrics rendering", ("TextRenderer", "generate_latest", "TotalsCollector")),
    (
        "Faust: conductor (per message)",
        ("Conductor._compile_message_handler", "Topic.put", "FlowControlQueue", "create_event"),
    ),
    ("Faust: fetch loop (per message)", ("Consumer._drain_messages", "_drain_messages")),
    ("Faust: getmany (per message)", ("Consumer.getmany", "TopicBuffer", "records_iterator")),
    (
        "Faust: stream, take buffer, acks",
        ("Stream._c_aiter", "Stream._py_aiter", "Stream.take_events", "Stream.ack"),
    ),
    ("aiokafka consumer thread (Faust runs it in a mode ServiceThread)", ("WorkerThread.run",)),
    ("aiokafka: fetch and parse", ("Fetcher.", "AIOKafkaConsumer", "MemoryRecords")),
    (
        "event loop: scheduling and I/O wait",
        ("select (", "_run_once", "run_forever", "Worker.execute_from_commandline"),
    ),
)


def categorize(text: str) -> tuple[Counter[str], int]:
    """Samples per :data:`CATEGORIES` entry (``other`` for the rest), and their total.

    Samples of waiting helper threads go to :data:`IDLE_HELPERS` and not into the total.
    """
    shares: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        names = [frame_name(f) for f in stack.split(";")]
        if _idle_helper(names):
            shares[IDLE_HELPERS] += count
            continue
        total += count
        shares[_category(names)] += count
    return shares, total


def _idle_helper(names: list[str]) -> bool:
    leaf = names[-1]
    waiting_pool = leaf.startswith("_worker (futures/thread.py)")
    waiting_server = leaf.startswith("_PollLikeSelector.select") and any(
        n.startswith("BaseServer.serve_forever") for n in names
    )
    return waiting_pool or waiting_server


def _category(names: list[str]) -> str:
    for name in reversed(names):
        for category, markers in CATEGORIES:
            if any(m in name for m in markers):
                return category
    return "other"


def read(path: Path) -> str:
    """A profile file, plain or gzip-compressed (``bench/profiles/*.txt.gz``)."""
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", default="MainThread")
    parser.add_argument("--categories", type=Path, nargs="+", help="profiles to compare")
    args = parser.parse_args()
    if args.categories:
        results = [categorize(read(path)) for path in args.categories]
        names = [*(c for c, _ in CATEGORIES), "other", IDLE_HELPERS]
        print("| part | " + " | ".join(p.name.split(".")[0] for p in args.categories) + " |")
        print("|---|" + "---:|" * len(args.categories))
        for name in names:
            # the shares are of the busy samples; the idle helpers' of all samples
            cells = []
            for shares, total in results:
                base = total + shares[IDLE_HELPERS] if name == IDLE_HELPERS else total
                cells.append(f"{100 * shares[name] / max(base, 1):.1f} %")
            print(f"| {name} | " + " | ".join(cells) + " |")
        return
    own, inclusive, total = summarize(read(args.file), args.thread or None)
    print(f"{total} samples")
    print("self:")
    for name, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("inclusive:")
    for name, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
