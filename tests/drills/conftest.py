"""Drills: the sale nights (``test_sale_nights.py``, backtests in event time, part of
``make test``) and the live drill (``test_live_drill.py``, a payment outage at real speed on
the local stack)."""
