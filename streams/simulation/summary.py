"""Ground truth of a simulated stream: what a correct pipeline must count.

``summarize(events)`` and the incremental ``Summary`` (what the CLI prints at the end)
compute the same dict, so tests derive expected numbers from the generator itself. The
definitions follow EVENTS.md: funnel steps are counted once per session, a later step
implies the earlier ones; GMV is the sum of ``amount`` over ``payment_succeeded``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from streams.events.contract import TOPICS
from streams.metrics.defs import FUNNEL_STEPS
from streams.simulation.model import SimEvent

_STEP_OF = {"add_to_cart": 3, "order_created": 4, "payment_succeeded": 5}


class Summary:
    """Counts over a stream of ``SimEvent``; ``add`` each one, then ``as_dict``."""

    def __init__(self) -> None:
        self.by_type: dict[str, Counter[str]] = {t: Counter() for t in TOPICS}
        self.invalid_by_topic: Counter[str] = Counter()
        self.invalid_by_reason: Counter[str] = Counter()
        self.step: dict[str, int] = {}  # session id -> furthest funnel step (1..5)
        self.gmv_cents = 0
        self.refund_cents = 0
        self.payments: dict[str, Counter[str]] = defaultdict(Counter)
        self.first_ts: int | None = None
        self.last_ts: int | None = None

    def add(self, ev: SimEvent) -> None:
        if self.first_ts is None:
            self.first_ts = ev.ts
        self.last_ts = ev.ts
        e = ev.event
        if ev.raw is not None:
            self.invalid_by_topic[ev.topic] += 1
            self.invalid_by_reason[e.get("expected_reason", "unknown")] += 1
            return
        event_type = e["event_type"]
        self.by_type[ev.topic][event_type] += 1
        if ev.topic == "tickets":
            return
        if event_type == "page_view":
            step = 2 if e["page_type"] == "detail" else 1
        else:
            step = _STEP_OF.get(event_type, 0)
        sid = e["session_id"]
        if step > self.step.get(sid, 0):
            self.step[sid] = step
        if ev.topic != "orders":
            return
        if event_type == "payment_succeeded":
            self.gmv_cents += round(e["amount"] * 100)
            self.payments[e["payment_method"]]["succeeded"] += 1
        elif event_type == "payment_failed":
            self.payments[e["payment_method"]]["failed"] += 1
        elif event_type == "order_refunded":
            self.refund_cents += round(e["amount"] * 100)

    def as_dict(self) -> dict[str, Any]:
        by_topic = {t: sum(c.values()) for t, c in self.by_type.items()}
        steps = Counter(self.step.values())
        funnel, reached = {}, 0
        for n in range(len(FUNNEL_STEPS), 0, -1):
            reached += steps[n]
            funnel[FUNNEL_STEPS[n - 1]] = reached
        orders = self.by_type["orders"]
        invalid = sum(self.invalid_by_topic.values())
        return {
            "events": sum(by_topic.values()),
            "invalid": invalid,
            "messages_by_topic": {t: by_topic[t] + self.invalid_by_topic[t] for t in TOPICS},
            "by_topic": by_topic,
            "by_type": {t: dict(sorted(c.items())) for t, c in self.by_type.items()},
            "invalid_by_topic": {t: self.invalid_by_topic[t] for t in TOPICS},
            "invalid_by_reason": dict(sorted(self.invalid_by_reason.items())),
            "sessions": len(self.step),
            "funnel": {step: funnel[step] for step in FUNNEL_STEPS},
            "orders": orders["order_created"],
            "paid": orders["payment_succeeded"],
            "cancelled": orders["order_cancelled"],
            "refunded": orders["order_refunded"],
            "gmv": self.gmv_cents / 100,
            "refund_amount": self.refund_cents / 100,
            "payments_by_method": {m: dict(c) for m, c in sorted(self.payments.items())},
            "tickets_opened": self.by_type["tickets"]["ticket_opened"],
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }


def summarize(events: Iterable[SimEvent]) -> dict[str, Any]:
    """The ground-truth counts of ``events`` (see ``Summary.as_dict`` for the keys)."""
    summary = Summary()
    for ev in events:
        summary.add(ev)
    return summary.as_dict()
