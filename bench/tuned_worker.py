"""``salewatch worker`` with Faust-level options the worker does not expose (bench only).

Runs the unchanged ``streams.worker.run`` after applying, before the app is built:

* ``--uvloop``: the event loop is uvloop (``mode.loop.use("uvloop")``, what ``faust -L
  uvloop`` does);
* ``--no-monitor``: the app's ``Monitor`` sensor is not installed. It keeps per-event
  statistics (timestamps, deques, per-topic counters) for Faust's web views, which the
  worker does not serve (``web_enabled=False``);
* ``--fast-drain``: Faust's fetch loop (``Consumer._drain_messages``) hands each message
  to the conductor through ``Service.wait_first(callback(message),
  suspend_flow.wait())``, i.e. four new tasks and an ``asyncio.wait`` per message, only
  to abandon the message if a rebalance suspends the flow meanwhile. This variant awaits
  the callback directly while the flow is active and keeps ``wait_first`` otherwise. A
  prototype: a rebalance that starts while a callback waits on a full stream buffer is
  not cancelled mid-message (Faust drops stale-generation messages in the stream anyway);
  it needs a rebalance test before it could be proposed upstream.

* ``--memory-probe SECONDS``: every SECONDS, log the number of live objects of the 12
  most common types and ``sys.getallocatedblocks()`` (for the memory step: is RSS growth
  Python objects, or the allocator?).

Faust settings with an environment name (``STREAM_BUFFER_MAXSIZE``,
``BROKER_MAX_POLL_RECORDS``, ...) need no code: Faust reads them from the environment,
so the harness passes them to either worker that way.

    python -m bench.tuned_worker [--uvloop] [--no-monitor] [--fast-drain] [--memory-probe S]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _without_monitor(create_app: Any) -> Any:
    def create(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)
        init_dependencies = app.on_init_dependencies

        def on_init_dependencies() -> Any:
            dependencies = init_dependencies()
            app.sensors.remove(app.monitor)
            return dependencies

        app.on_init_dependencies = on_init_dependencies
        return app

    return create


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover
    # faust-streaming 0.15.3 Consumer._drain_messages with one change, marked below
    import asyncio

    from faust.transport.consumer import CONSUMER_FETCHING

    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    suspended = self.suspend_flow.is_set
    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        # the change: no wait_first (4 tasks) while the flow is active
                        if suspended():
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        else:
                            await callback(message)
                        set_read_offset(tp, offset)
                unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            return
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


def _memory_probe(every_s: float) -> None:
    import gc
    import threading
    import time
    from collections import Counter

    def probe() -> None:
        while True:
            time.sleep(every_s)
            counts = Counter(type(o).__name__ for o in gc.get_objects())
            top = ", ".join(f"{name}={n}" for name, n in counts.most_common(12))
            print(
                f"[memory-probe] blocks={sys.getallocatedblocks()} objects={sum(counts.values())}"
                f" {top}",
                flush=True,
            )

    threading.Thread(target=probe, name="memory-probe", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--no-monitor", action="store_true")
    parser.add_argument("--fast-drain", action="store_true")
    parser.add_argument("--memory-probe", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.memory_probe:
        _memory_probe(args.memory_probe)
    if args.fast_drain:
        from faust.transport.consumer import Consumer

        Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
    if args.uvloop:
        import mode.loop

        mode.loop.use("uvloop")
    if args.no_monitor:
        import streams.app

        streams.app.create_app = _without_monitor(streams.app.create_app)
    from streams.worker import run

    return run(argparse.Namespace(metrics_port=None, app_id=None, loglevel="info"))


if __name__ == "__main__":
    sys.exit(main())
