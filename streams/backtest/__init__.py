"""``salewatch backtest``: would our alerts have fired? Replay events, evaluate real rules.

Modules, in the order the work flows:

* ``source`` — JSON-lines events files (``simulate --out``, plain EVENTS.md events,
  invalid raw messages) routed to topics;
* ``replay`` — event-time replay through the worker's validation and counting code,
  a Prometheus scrape of the totals at every tick;
* ``openmetrics`` — totals and query results as OpenMetrics text with timestamps;
* ``blocks`` — that text into TSDB blocks with ``promtool``, window by window;
* ``prometheus`` — a throwaway Prometheus over the blocks (start, query, restart, stop);
* ``rules`` — the project's rule files, levelled by dependency;
* ``evaluate`` — recording rules evaluated and written back level by level, alerts;
* ``alerting`` — ``for`` / ``keep_firing_for`` per evaluation step, as Prometheus does;
* ``report``, ``plot`` — the JSON report, the terminal table and summary, the PNG;
* ``run`` — ``run_backtest(events, settings, options, status)`` ties them together.
"""

from streams.backtest.errors import BacktestError
from streams.backtest.run import BacktestOptions, run_backtest

__all__ = ["BacktestError", "BacktestOptions", "run_backtest"]
