"""``salewatch recap``: the day-after report of a sale, from ClickHouse (and Prometheus).

``queries`` holds the SQL (raw tables with ``FINAL``, bounded by the recap's window; every
query runs on ClickHouse 18.16 and on current ClickHouse), ``compute`` turns rows into the
numbers of ``recap.json``, ``alerts`` reads the alerts that fired from Prometheus,
``render`` writes the self-contained ``index.html``.
"""
