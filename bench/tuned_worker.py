"""``salewatch worker`` with Faust-level options the worker does not expose (bench only).

Runs the unchanged ``streams.worker.run`` after applying, before the app is built:

* ``--uvloop``: the event loop is uvloop (``mode.loop.use("uvloop")``, what ``faust -L
  uvloop`` does);
* ``--no-monitor``: the app's ``Monitor`` sensor is not installed. It keeps per-event
  statistics (timestamps, deques, per-topic counters) for Faust's web views, which the
  worker does not serve (``web_enabled=False``).

Faust settings with an environment name (``STREAM_BUFFER_MAXSIZE``,
``BROKER_MAX_POLL_RECORDS``, ...) need no code: Faust reads them from the environment,
so the harness passes them to either worker that way.

    python -m bench.tuned_worker [--uvloop] [--no-monitor]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--no-monitor", action="store_true")
    args = parser.parse_args(argv)
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
