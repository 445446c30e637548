"""The dead-letter envelope: what a refused event looks like on the ``dead_letters`` topic.

One JSON object per refused event (or per refused message, when the whole message is bad):

    {"reason": "wrong_type", "detail": "amount: expected number, got str",
     "source_topic": "orders", "partition": 3, "offset": 1234, "dead_lettered_at": <ms>,
     "original_size": 87, "truncated": false,
     "original": "<the bytes as UTF-8 text>"}           # when the bytes are valid UTF-8
     "original_b64": "<base64 of the bytes>"             # otherwise

The original is kept up to ``MAX_ORIGINAL_BYTES`` so that a 10 MB blob cannot make a
dead letter too large for Kafka; ``original_size`` and ``truncated`` say when it was cut.
The message key is the source key (or none), so replays can re-partition identically.
"""

from __future__ import annotations

import base64

import orjson

from streams.events.decode import Rejected

MAX_ORIGINAL_BYTES = 64 * 1024


def dead_letter_value(
    rejected: Rejected, source_topic: str, partition: int, offset: int, now_ms: int
) -> bytes:
    """The JSON value of one dead letter."""
    return envelope_value(
        rejected.reason,
        rejected.detail,
        source_topic,
        partition,
        offset,
        now_ms,
        rejected.original,
    )


def envelope_value(
    reason: str,
    detail: str,
    source_topic: str,
    partition: int,
    offset: int,
    now_ms: int,
    original: bytes,
) -> bytes:
    """The JSON value of one dead letter, from its parts (any refusal, not only decoding)."""
    kept = original[:MAX_ORIGINAL_BYTES]
    envelope: dict[str, object] = {
        "reason": reason,
        "detail": detail,
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "dead_lettered_at": now_ms,
        "original_size": len(original),
        "truncated": len(kept) < len(original),
    }
    try:
        envelope["original"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        envelope["original_b64"] = base64.b64encode(kept).decode("ascii")
    return orjson.dumps(envelope)


def original_bytes(envelope: dict[str, object]) -> bytes:
    """Recover the (possibly truncated) original bytes from a decoded envelope."""
    if "original" in envelope:
        return str(envelope["original"]).encode("utf-8")
    return base64.b64decode(str(envelope["original_b64"]))
