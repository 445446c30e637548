"""The event contract, wire format v1 (``../shared/EVENTS.md``), as typed models and specs.

Three views of one contract, kept in agreement by ``tests/unit/events/test_schemas.py``:

* ``FIELDS`` — a table of field specs per topic; the validator (``streams.events.decode``) and the
  JSON Schema generator (``streams.events.schemagen``) both read it;
* the ``TypedDict`` models below, for type-checking code that handles valid events;
* the published JSON Schema files under ``schemas/events/v1/``.

Fields not in the contract are allowed (producers may extend events compatibly) and are
ignored. Dimension values outside their closed sets are valid; they count as ``other``.
"""

# no `from __future__ import annotations`: TypedDict must see NotRequired[...] at runtime

from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

SCHEMA_VERSION = 1

Topic = Literal["clicks", "carts", "orders", "tickets"]
TOPICS: tuple[Topic, ...] = ("clicks", "carts", "orders", "tickets")
DEAD_LETTER_TOPIC = "dead_letters"
# internal: valid order events re-keyed by session_id, so the session's owner counts them
ORDERS_BY_SESSION_TOPIC = "orders_by_session"

EVENT_TYPES: dict[Topic, frozenset[str]] = {
    "clicks": frozenset({"page_view", "click"}),
    "carts": frozenset({"add_to_cart", "remove_from_cart"}),
    "orders": frozenset(
        {
            "order_created",
            "payment_succeeded",
            "payment_failed",
            "order_cancelled",
            "order_refunded",
        }
    ),
    "tickets": frozenset({"ticket_opened", "ticket_resolved"}),
}

# The Kafka message key field per topic (EVENTS.md): events of one key stay ordered.
KEY_FIELD: dict[Topic, str] = {
    "clicks": "session_id",
    "carts": "session_id",
    "orders": "order_id",
    "tickets": "ticket_id",
}

ID_MAX_LEN = 64
DIMENSION_MAX_LEN = 128
MAX_EVENT_BYTES = 64 * 1024  # EVENTS.md: a larger event is dead-lettered
MAX_BATCH_EVENTS = 1000  # EVENTS.md: an array message holds at most this many events
MAX_MESSAGE_BYTES = 1024 * 1024  # Kafka's default message.max.bytes; larger is not parsed
MAX_TIMING_MS = 600_000  # page timings (load_ms, lcp_ms, inp_ms, ttfb_ms): at most 10 minutes
MAX_CLS = 100.0  # layout shift score: typically < 1; far beyond that is a broken measurement

FieldKind = Literal["string", "integer", "number", "array"]


@dataclass(frozen=True)
class FieldSpec:
    """One field of an event: JSON type, whether required, and its bounds."""

    name: str
    kind: FieldKind
    required: bool = True
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None


def _id(name: str, required: bool = True) -> FieldSpec:
    return FieldSpec(name, "string", required, max_length=ID_MAX_LEN)


def _dim(name: str, required: bool = True) -> FieldSpec:
    return FieldSpec(name, "string", required, max_length=DIMENSION_MAX_LEN)


COMMON_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("schema_version", "integer", minimum=SCHEMA_VERSION, maximum=SCHEMA_VERSION),
    _id("event_id"),
    _dim("event_type"),
    FieldSpec("ts", "integer", minimum=0),
    _id("user_id"),
    _id("session_id"),
    _dim("channel"),
    _dim("region"),
)

ITEM_FIELDS: tuple[FieldSpec, ...] = (
    _id("item_id"),
    _dim("category"),
    FieldSpec("quantity", "integer", minimum=1),
    FieldSpec("price", "number", minimum=0),
)

TOPIC_FIELDS: dict[Topic, tuple[FieldSpec, ...]] = {
    "clicks": (
        _dim("page_type"),
        _id("item_id", required=False),
        _dim("category", required=False),
        _dim("traffic_source", required=False),
        FieldSpec("load_ms", "integer", required=False, minimum=0, maximum=MAX_TIMING_MS),
        # Core Web Vitals of the page load, measured in the browser (web-vitals library)
        FieldSpec("lcp_ms", "integer", required=False, minimum=0, maximum=MAX_TIMING_MS),
        FieldSpec("inp_ms", "integer", required=False, minimum=0, maximum=MAX_TIMING_MS),
        FieldSpec("cls", "number", required=False, minimum=0, maximum=MAX_CLS),
        FieldSpec("ttfb_ms", "integer", required=False, minimum=0, maximum=MAX_TIMING_MS),
    ),
    "carts": ITEM_FIELDS,
    "orders": (
        _id("order_id"),
        FieldSpec("amount", "number", minimum=0),
        FieldSpec("currency", "string", max_length=3),
        _dim("payment_method"),
        FieldSpec("items", "array", required=False),
        _id("coupon_code", required=False),
        _dim("failure_reason", required=False),
    ),
    "tickets": (
        _id("ticket_id"),
        _id("order_id", required=False),
        _dim("kind"),
        _dim("reason"),
    ),
}

FIELDS: dict[Topic, tuple[FieldSpec, ...]] = {
    topic: COMMON_FIELDS + TOPIC_FIELDS[topic] for topic in TOPICS
}


class BaseEvent(TypedDict):
    schema_version: int
    event_id: str
    event_type: str
    ts: int
    user_id: str
    session_id: str
    channel: str
    region: str


class ClickEvent(BaseEvent):
    page_type: str
    item_id: NotRequired[str]
    category: NotRequired[str]
    traffic_source: NotRequired[str]
    load_ms: NotRequired[int]
    lcp_ms: NotRequired[int]
    inp_ms: NotRequired[int]
    cls: NotRequired[float]
    ttfb_ms: NotRequired[int]


class CartEvent(BaseEvent):
    item_id: str
    category: str
    quantity: int
    price: float


class OrderItem(TypedDict):
    item_id: str
    category: str
    quantity: int
    price: float


class OrderEvent(BaseEvent):
    order_id: str
    amount: float
    currency: str
    payment_method: str
    items: NotRequired[list[OrderItem]]
    coupon_code: NotRequired[str]
    failure_reason: NotRequired[str]


class TicketEvent(BaseEvent):
    ticket_id: str
    order_id: NotRequired[str]
    kind: str
    reason: str


Event = ClickEvent | CartEvent | OrderEvent | TicketEvent

MODELS: dict[Topic, type[BaseEvent]] = {
    "clicks": ClickEvent,
    "carts": CartEvent,
    "orders": OrderEvent,
    "tickets": TicketEvent,
}
