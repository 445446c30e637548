"""The one error a backtest reports to its user: a sentence saying what went wrong."""

from __future__ import annotations


class BacktestError(Exception):
    """The backtest cannot go on (missing tool, bad rules, Prometheus failed, no events)."""
