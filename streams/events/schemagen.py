"""Generate the published JSON Schema files of the event contract from ``streams.events.contract``.

``python -m streams.events.schemagen`` (re)writes ``schemas/events/v1/<topic>.schema.json``;
``tests/unit/events/test_schemas.py`` fails when the committed files are out of date, and
checks that the schemas and the validator give the same verdicts.

What JSON Schema cannot express is left to the validator and said in the description:
event time bounds (``ts`` within [now − retention, now + 24 h]) and the 64 KiB size limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.events.contract import (
    EVENT_TYPES,
    FIELDS,
    ITEM_FIELDS,
    MAX_EVENT_BYTES,
    SCHEMA_VERSION,
    TOPICS,
    FieldSpec,
    Topic,
)
from streams.events.decode import MAX_ORDER_ITEMS

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "events" / f"v{SCHEMA_VERSION}"


def _property(spec: FieldSpec) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": spec.kind}
    if spec.max_length is not None:
        prop["maxLength"] = spec.max_length
    if spec.minimum is not None:
        prop["minimum"] = spec.minimum
    if spec.maximum is not None:
        prop["maximum"] = spec.maximum
    if spec.name == "items":
        prop["maxItems"] = MAX_ORDER_ITEMS
        prop["items"] = _object(ITEM_FIELDS)
    return prop


def _object(fields: tuple[FieldSpec, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {spec.name: _property(spec) for spec in fields},
        "required": [spec.name for spec in fields if spec.required],
        "additionalProperties": True,
    }


def topic_schema(topic: Topic) -> dict[str, Any]:
    """The JSON Schema of one event of ``topic``."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"salewatch/events/v{SCHEMA_VERSION}/{topic}.schema.json",
        "title": f"salewatch {topic} event, wire format v{SCHEMA_VERSION}",
        "description": (
            f"One event of the Kafka topic `{topic}` (see EVENTS.md). A message may also be a "
            "JSON array of 1-1000 such events. Also enforced by the consumer but not "
            f"expressible here: ts within [now - retention, now + 24 h]; at most "
            f"{MAX_EVENT_BYTES} bytes per event."
        ),
        **_object(FIELDS[topic]),
    }
    schema["properties"]["event_type"]["enum"] = sorted(EVENT_TYPES[topic])
    return schema


def render(topic: Topic) -> str:
    return json.dumps(topic_schema(topic), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for topic in TOPICS:
        path = SCHEMA_DIR / f"{topic}.schema.json"
        path.write_text(render(topic), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
