"""Write converted events as JSON lines: ``{"topic": T, <event fields>}`` per line, the
format ``salewatch simulate --out`` writes and ``salewatch backtest`` reads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

import orjson

from streams.events.contract import TOPICS, Topic

_PREFIX = {topic: b'{"topic":"%s",' % topic.encode() for topic in TOPICS}


def write_events(events: Iterable[tuple[Topic, dict[str, Any]]], out: IO[bytes]) -> int:
    """Write every ``(topic, event)`` as one line; return the number written."""
    write, dumps, prefix = out.write, orjson.dumps, _PREFIX
    n = 0
    for topic, event in events:
        write(prefix[topic] + dumps(event)[1:] + b"\n")
        n += 1
    return n
