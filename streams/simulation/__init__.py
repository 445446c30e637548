"""Pure generation of a simulated sale day (no I/O): traffic, sessions, incidents.

Public API:

* ``SimConfig`` — what to simulate; ``generate(config, seed)`` — the stream of ``SimEvent``
  in event-time order, identical for equal (config, seed);
* ``summarize(events)`` / ``Summary`` — the ground-truth counts of a stream;
* ``parse_incident``, ``parse_duration``, ``parse_time`` — the CLI's spec grammars
  (raising ``SpecError``); ``INCIDENT_KINDS`` documents every incident kind;
* ``to_messages`` — events to Kafka message values, optionally SDK-style arrays.

``streams.cli.simulate`` is the ``salewatch simulate`` command that writes the stream to Kafka
(``streams.kafka.producer``) or to a JSON-lines file.
"""

from streams.simulation.batching import Message, to_messages
from streams.simulation.config import SimConfig
from streams.simulation.generator import generate
from streams.simulation.incidents import INCIDENT_KINDS, Incident, parse_incident
from streams.simulation.model import SimEvent
from streams.simulation.summary import Summary, summarize
from streams.simulation.timespec import SpecError, format_duration, parse_duration, parse_time

__all__ = [
    "INCIDENT_KINDS",
    "Incident",
    "Message",
    "SimConfig",
    "SimEvent",
    "SpecError",
    "Summary",
    "format_duration",
    "generate",
    "parse_duration",
    "parse_incident",
    "parse_time",
    "summarize",
    "to_messages",
]
