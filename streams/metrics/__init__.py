"""Metrics: the declarations, the in-memory totals, the exporter, the label sets, the docs."""
