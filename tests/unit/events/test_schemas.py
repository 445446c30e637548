"""The three views of the event contract agree: field specs, TypedDicts, JSON Schema files."""

from __future__ import annotations

import json
import typing
from typing import Any, get_type_hints

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events import schemagen
from streams.events.contract import FIELDS, MODELS, TOPICS, Topic
from streams.events.decode import decode_message
from tests.unit.events.test_decode import ACCEPTED_EDGES, BAD_MESSAGES, LIMITS
from tests.unit.events_factory import NOW_MS, make_event

JSON_TYPE_OF_PY = {str: "string", int: "integer", float: "number"}
# verdicts JSON Schema cannot express (time bounds, byte size, Kafka-level values that are
# no JSON at all) are the validator's alone
NOT_IN_SCHEMA = {
    "null_value",
    "empty_value",
    "ts_in_future",
    "ts_too_old",
    "too_large",
    "malformed_json",
    "empty_batch",
    "batch_too_long",
}


def load_schema(topic: Topic) -> dict[str, Any]:
    path = schemagen.SCHEMA_DIR / f"{topic}.schema.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("topic", TOPICS)
def test_committed_schema_is_generated_from_specs(topic: Topic) -> None:
    path = schemagen.SCHEMA_DIR / f"{topic}.schema.json"
    assert path.read_text(encoding="utf-8") == schemagen.render(topic), (
        "run `python -m streams.events.schemagen` and commit the result"
    )
    jsonschema.Draft202012Validator.check_schema(load_schema(topic))


@pytest.mark.parametrize("topic", TOPICS)
def test_typed_model_matches_schema(topic: Topic) -> None:
    model = MODELS[topic]
    schema = load_schema(topic)
    assert set(model.__required_keys__) == set(schema["required"])
    assert set(model.__required_keys__) | set(model.__optional_keys__) == set(schema["properties"])
    hints = get_type_hints(model)
    for name, prop in schema["properties"].items():
        hint = hints[name]
        origin = typing.get_origin(hint)
        expected = "array" if origin is list else JSON_TYPE_OF_PY[hint]
        assert prop["type"] == expected, name
    assert [s.name for s in FIELDS[topic]] == list(schema["properties"])


def schema_verdict(topic: Topic, event: Any) -> bool:
    return jsonschema.Draft202012Validator(load_schema(topic)).is_valid(event)


def validator_verdict(topic: Topic, event: Any) -> bool:
    decoded = decode_message(orjson.dumps(event), topic, NOW_MS, LIMITS)
    return bool(decoded.events)


CORPUS = [
    pytest.param(t, v, id=name)
    for name, t, v, reason in BAD_MESSAGES
    if reason not in NOT_IN_SCHEMA and not isinstance(v, bytes)
] + [pytest.param(t, e, id=name) for name, t, e in ACCEPTED_EDGES]


@pytest.mark.parametrize(("topic", "event"), CORPUS)
def test_schema_and_validator_agree_on_corpus(topic: Topic, event: Any) -> None:
    assert schema_verdict(topic, event) == validator_verdict(topic, event)


# values of every JSON type; integral floats (1.0) are left out on purpose: JSON Schema
# counts 1.0 as an integer, the validator is stricter and refuses it (documented difference)
json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    st.text(max_size=70),
    st.lists(st.integers(min_value=0, max_value=9), max_size=2),
)


@pytest.mark.parametrize("topic", TOPICS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_schema_and_validator_agree_on_mutations(topic: Topic, data: st.DataObject) -> None:
    event = make_event(topic)
    field = data.draw(st.sampled_from([s.name for s in FIELDS[topic]]))
    if data.draw(st.booleans()):
        event.pop(field, None)
    else:
        event[field] = data.draw(json_values)
    if field == "ts" and isinstance(event.get("ts"), int):
        event["ts"] = NOW_MS  # time bounds are not in the schema
    assert schema_verdict(topic, event) == validator_verdict(topic, event), (field, event)
