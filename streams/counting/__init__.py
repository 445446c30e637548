"""The counting core of issue 4: events → Prometheus totals and ClickHouse rollup rows.

Pure Python, no Faust, Kafka or ClickHouse I/O; the worker and the backtest drive it
through :class:`streams.counting.pipeline.Pipeline`. One module per job:

* ``windows``: event-time tumbling windows with allowed lateness, closed by a clock;
* ``funnel``: sessions (30-minute inactivity) and the funnel steps, session stores;
* ``dedupe``: the bounded memory of recent event ids;
* ``tally``: the additive facts of a set of events, keyed by normalised labels;
* ``classify``: one event → tally increments (the per-event hot path);
* ``counters``: tally → cumulative Prometheus counters, distinct-user gauges;
* ``sketch``: HyperLogLog for distinct counts; ``active_users``: sliding distinct users;
* ``rollups``: tally → ClickHouse rollup rows, ``ROLLUP_COLUMNS``;
* ``pipeline``: the facade.
"""
