"""``salewatch convert``: public e-commerce datasets → EVENTS.md events (JSON lines).

Modules:

* ``jsonl`` — the output format, the same as ``salewatch simulate --out``: one event per
  line with its ``"topic"``, readable by ``salewatch backtest``;
* ``invented`` — deterministic, seeded values for fields a dataset does not have (prices,
  channels, regions, payment methods), chosen per entity so they stay consistent;
* ``taobao`` — the Tianchi/Taobao ``UserBehavior`` clickstream (pv, cart, fav, buy).

Converted data keeps its own (old) timestamps: replay it with ``salewatch backtest``,
whose clock is event time.
"""
