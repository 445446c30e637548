"""Closed sets of label values: what may appear as a Prometheus label or a rollup dimension.

Events carry free-form strings (channel, page type, region, ...). Anything outside these
sets is counted as ``other`` so that label cardinality stays bounded no matter what
producers send. Raw ClickHouse tables keep the original value; rollups and metrics use the
normalised one.
"""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "other"

CHANNELS = frozenset({"app", "web", "mini_program", "h5", OTHER})
PAGE_TYPES = frozenset(
    {"home", "search", "list", "detail", "cart", "checkout", "pay_result", OTHER}
)
TRAFFIC_SOURCES = frozenset({"direct", "search", "ads", "social", "email", "affiliate", OTHER})
PAYMENT_METHODS = frozenset({"alipay", "wechat_pay", "card", "union_pay", "cod", OTHER})
FAILURE_REASONS = frozenset(
    {
        "insufficient_funds",
        "card_declined",
        "timeout",
        "risk_control",
        "bank_error",
        "user_cancelled",
        OTHER,
    }
)
TICKET_KINDS = frozenset({"return", "refund", "exchange", "complaint", "inquiry", OTHER})
TICKET_REASONS = frozenset(
    {"quality", "damaged", "wrong_item", "size", "late_delivery", "not_as_described", OTHER}
)
# Top-level product categories; a category like "apparel/shoes" counts under "apparel".
DEFAULT_CATEGORIES = frozenset(
    {"apparel", "electronics", "beauty", "home", "food", "baby", "sports", "books", OTHER}
)
CATEGORY_SEPARATORS = ("/", ">")


def closed(value: object, allowed: frozenset[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else ``other``."""
    if isinstance(value, str) and value in allowed:
        return value
    return OTHER


def top_category(category: object, allowed: frozenset[str] = DEFAULT_CATEGORIES) -> str:
    """The top-level category of a path like ``apparel/shoes/running``, or ``other``."""
    if not isinstance(category, str):
        return OTHER
    top = category
    for sep in CATEGORY_SEPARATORS:
        top = top.split(sep, 1)[0]
    return closed(top.strip().lower(), allowed)


def closed_set(values: Iterable[str]) -> frozenset[str]:
    """A closed set from configuration: the given values plus ``other``."""
    return frozenset(values) | {OTHER}
