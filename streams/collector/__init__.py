"""The beacon collector behind ``salewatch collect``: real page speed from real browsers.

Shops add the browser snippet (``collector/snippet/``), which measures Core Web Vitals with
the ``web-vitals`` library and posts them, one beacon per page load when the page is hidden.
This package turns those beacons into ``page_view`` events on the ``clicks`` topic, read top
to bottom:

* ``beacon`` — parse and validate one beacon body (pure; reasons are metric labels);
* ``ratelimit`` — a token bucket per client address;
* ``merge`` — the beacons of one page load become one ``page_view`` event;
* ``sink`` — where events go: an aiokafka producer (tests use a list);
* ``metrics`` — the collector's own Prometheus metrics;
* ``config`` — host, port, region and limits (flags, then environment, then defaults);
* ``server`` — the aiohttp app (``POST /beacon``, ``GET /healthz``, ``GET /metrics``) and
  its lifecycle.
"""
