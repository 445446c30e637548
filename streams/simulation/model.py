"""What the simulator emits: ``SimEvent``, one Kafka message's worth of one event."""

from __future__ import annotations

from typing import Any, NamedTuple

from streams.events.contract import Topic


class SimEvent(NamedTuple):
    """One generated event, in the order the simulator emits it.

    ``event`` is the EVENTS.md object (valid per ``streams.events.decode.validate_event``) and
    ``key`` its Kafka message key (``KEY_FIELD`` of the topic). A deliberately invalid
    message, asked for with ``SimConfig.invalid_rate``, has ``raw`` set to the exact bytes to
    send and an empty ``event``. ``ts`` is the event time in epoch ms; for invalid messages it
    is the simulated time they are sent at (their bytes may claim another time, or none).
    A NamedTuple, not a dataclass: millions are created per run and tuples are cheapest.
    """

    ts: int
    topic: Topic
    key: str
    event: dict[str, Any]
    raw: bytes | None = None

    @property
    def valid(self) -> bool:
        return self.raw is None


def event_time(ev: SimEvent) -> int:
    """Sort key: the event time."""
    return ev.ts
