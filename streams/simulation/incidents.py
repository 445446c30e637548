"""Incidents to inject into a simulated day, and the ``--incident`` spec grammar.

Spec: ``KIND[:ARG]@START+DURATION[:SEVERITY]``, START and DURATION are offsets from the
simulated start (``parse_duration`` syntax), e.g. ``payment_outage:alipay@30m+10m:0.9``.
SEVERITY means something per kind (``INCIDENT_KINDS``) and has a default, so most specs
leave it out. A bad spec raises ``SpecError`` whose message says what is wrong and
what is expected; the CLI prints it and exits 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streams.metrics.labels import OTHER, PAYMENT_METHODS
from streams.simulation.timespec import SpecError, format_duration, parse_duration

IncidentKindName = Literal[
    "checkout_slow",
    "payment_outage",
    "orders_lost",
    "ticket_surge",
    "traffic_drop",
    "pipeline_stall",
    "pipeline_lag",
]


@dataclass(frozen=True)
class IncidentKind:
    """What an incident kind does, what its SEVERITY means and which values are allowed."""

    name: IncidentKindName
    effect: str
    severity_meaning: str
    default_severity: float
    min_severity: float  # exclusive
    max_severity: float  # inclusive
    needs_arg: bool = False
    arg_values: tuple[str, ...] = ()  # allowed ARGs (empty: no ARG); see needs_arg


PAYMENT_OUTAGE_METHODS = tuple(sorted(PAYMENT_METHODS - {OTHER}))
STALL_TOPICS = ("carts", "clicks", "orders", "tickets")  # pipeline_stall/pipeline_lag ARGs

INCIDENT_KINDS: dict[str, IncidentKind] = {
    k.name: k
    for k in (
        IncidentKind(
            "checkout_slow",
            "detail/cart/checkout pages load slower and fewer sessions complete checkout",
            "load-time multiplier (checkout abandonment rises with it)",
            4.0,
            1.0,
            100.0,
        ),
        IncidentKind(
            "payment_outage",
            "payments with METHOD fail (failure_reason bank_error/timeout); users retry",
            "fraction of that method's payment attempts that fail",
            1.0,
            0.0,
            1.0,
            needs_arg=True,
            arg_values=PAYMENT_OUTAGE_METHODS,
        ),
        IncidentKind(
            "orders_lost",
            "order events are not emitted while clicks and carts go on",
            "fraction of order events lost",
            1.0,
            0.0,
            1.0,
        ),
        IncidentKind(
            "ticket_surge",
            "extra after-sales tickets (late delivery, complaints) about recent paid orders",
            "multiplier of the normal ticket-opening rate",
            20.0,
            1.0,
            10_000.0,
        ),
        IncidentKind(
            "traffic_drop",
            "fewer new sessions start (e.g. an upstream CDN or app outage)",
            "fraction of new sessions lost",
            0.8,
            0.0,
            1.0,
        ),
        IncidentKind(
            "pipeline_stall",
            "nothing at all is emitted (the producer side of the pipeline is stuck);"
            " with :TOPIC only that topic",
            "fraction of events not emitted",
            1.0,
            0.0,
            1.0,
            arg_values=STALL_TOPICS,
        ),
        IncidentKind(
            "pipeline_lag",
            "events of TOPIC (default clicks) reach the pipeline SEVERITY seconds late: a"
            " silence, then a backlog; beyond the allowed lateness they are not counted",
            "delay in seconds",
            90.0,
            0.0,
            3600.0,
            arg_values=STALL_TOPICS,
        ),
    )
}


@dataclass(frozen=True)
class Incident:
    """One incident: ``kind`` (with ``arg``, the payment method) over an offset window."""

    kind: IncidentKindName
    start_s: float
    duration_s: float
    severity: float
    arg: str | None = None

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def window_ms(self, sim_start_ms: int) -> tuple[int, int]:
        """The half-open event-time window ``[start, end)`` in epoch ms."""
        start = sim_start_ms + round(self.start_s * 1000)
        return start, start + round(self.duration_s * 1000)

    def spec(self) -> str:
        """The canonical spec string (parses back to an equal ``Incident``)."""
        kind = self.kind if self.arg is None else f"{self.kind}:{self.arg}"
        return (
            f"{kind}@{format_duration(self.start_s)}+{format_duration(self.duration_s)}"
            f":{self.severity:g}"
        )


def parse_incident(spec: str) -> Incident:
    """Parse ``KIND[:ARG]@START+DURATION[:SEVERITY]`` into an ``Incident``."""
    expected = "expected KIND[:ARG]@START+DURATION[:SEVERITY], e.g. payment_outage:alipay@30m+10m"
    head, at, window = spec.strip().partition("@")
    if not at or not head or not window:
        raise SpecError(f"bad incident {spec!r}: {expected}")
    name, _, arg = head.partition(":")
    kind = INCIDENT_KINDS.get(name)
    if kind is None:
        known = ", ".join(INCIDENT_KINDS)
        raise SpecError(f"bad incident {spec!r}: unknown kind {name!r} (one of {known})")
    if kind.needs_arg and not arg:
        methods = ", ".join(PAYMENT_OUTAGE_METHODS)
        raise SpecError(f"bad incident {spec!r}: {name} needs :METHOD ({methods})")
    if kind.needs_arg and arg not in kind.arg_values:
        methods = ", ".join(PAYMENT_OUTAGE_METHODS)
        raise SpecError(f"bad incident {spec!r}: unknown payment method {arg!r} ({methods})")
    if arg and not kind.arg_values:
        raise SpecError(f"bad incident {spec!r}: {name} takes no :ARG")
    if arg and arg not in kind.arg_values:
        topics = ", ".join(kind.arg_values)
        raise SpecError(f"bad incident {spec!r}: unknown topic {arg!r} ({topics})")
    start_text, plus, rest = window.partition("+")
    if not plus:
        raise SpecError(f"bad incident {spec!r}: missing +DURATION; {expected}")
    duration_text, colon, severity_text = rest.partition(":")
    try:
        start_s = parse_duration(start_text)
        duration_s = parse_duration(duration_text)
    except SpecError as exc:
        raise SpecError(f"bad incident {spec!r}: {exc}") from None
    if duration_s <= 0:
        raise SpecError(f"bad incident {spec!r}: DURATION must be > 0")
    severity = kind.default_severity
    if colon:
        try:
            severity = float(severity_text)
        except ValueError:
            raise SpecError(
                f"bad incident {spec!r}: SEVERITY {severity_text!r} is not a number"
            ) from None
        if not kind.min_severity < severity <= kind.max_severity:
            raise SpecError(
                f"bad incident {spec!r}: SEVERITY for {name} is the {kind.severity_meaning},"
                f" in ({kind.min_severity:g}, {kind.max_severity:g}]"
            )
    if kind.name == "pipeline_lag" and not arg:
        arg = "clicks"  # the busiest topic; a replay needs an undelayed one to keep time
    return Incident(kind.name, start_s, duration_s, severity, arg or None)


@dataclass(frozen=True)
class ActiveWindow:
    """An incident resolved to absolute event time, for fast ``start <= ts < end`` checks."""

    start_ms: int
    end_ms: int
    severity: float
    arg: str | None


class IncidentSchedule:
    """The incidents of one run by kind, resolved to epoch-ms windows.

    Overlapping incidents of one kind do not add up: the strongest active one applies.
    """

    def __init__(self, incidents: tuple[Incident, ...], sim_start_ms: int) -> None:
        self.windows: dict[str, list[ActiveWindow]] = {}
        for inc in incidents:
            start, end = inc.window_ms(sim_start_ms)
            self.windows.setdefault(inc.kind, []).append(
                ActiveWindow(start, end, inc.severity, inc.arg)
            )

    def has(self, kind: IncidentKindName) -> bool:
        return kind in self.windows

    def severity(self, kind: IncidentKindName, ts: int, arg: str | None = None) -> float:
        """The severity of ``kind`` (for ``arg``) active at ``ts``, or 0.0 if none is."""
        best = 0.0
        for w in self.windows.get(kind, ()):
            if w.start_ms <= ts < w.end_ms and (arg is None or w.arg == arg):
                best = max(best, w.severity)
        return best

    def severity_on_topic(self, kind: IncidentKindName, ts: int, topic: str) -> float:
        """Like ``severity``, for incidents on ``topic`` or on every topic (no ARG)."""
        best = 0.0
        for w in self.windows.get(kind, ()):
            if w.start_ms <= ts < w.end_ms and w.arg in (None, topic):
                best = max(best, w.severity)
        return best
