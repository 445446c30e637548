"""The event contract (wire format v1), its decoder and its JSON Schema generator."""
