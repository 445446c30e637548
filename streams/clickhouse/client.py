"""Build a ClickHouse client from Settings, and explain its failures in one line.

Everything that talks to ClickHouse over the native protocol (``salewatch migrate``, the
worker's sink) gets its ``clickhouse_driver.Client`` from :func:`make_client`, so endpoint,
credentials, timeouts and session settings are decided in one place. Errors raised by the
driver are turned into a single line naming the ``SALEWATCH_*`` setting most likely at fault
by :func:`describe_error`; :func:`checked_executor` raises them as :class:`ClickHouseError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as DriverError
from clickhouse_driver.errors import (
    NetworkError,
    ServerException,
    SocketTimeoutError,
    UnexpectedPacketFromServerError,
    UnknownPacketFromServerError,
)

from streams.settings import ENV_PREFIX, Settings

# Sent with every query. clickhouse-driver does not mark settings as important, so a server
# that does not know a setting ignores it silently: only put settings here whose absence is
# harmless, never ones that a correctness guarantee depends on.
SESSION_SETTINGS: dict[str, Any] = {
    # LowCardinality is experimental in 18.16 (the local server) and refused without this;
    # the local stack's profile sets it too, this covers servers whose profile does not.
    # Current ClickHouse keeps it as an obsolete no-op.
    "allow_experimental_low_cardinality_type": 1,
}

# Sent with every query when SALEWATCH_CLICKHOUSE_CLUSTER is set. The worker commits Kafka
# offsets once an insert returns, so an insert into a Distributed table must return only
# once every shard's part is written to one replica (18.16 queues it on local disk and sends
# it later by default: a crash before the send would lose rows whose offsets were
# committed). The worker checks at start that the server knows the setting, since the
# driver would drop it silently otherwise (streams.cli.worker.check_clickhouse).
CLUSTER_SESSION_SETTINGS: dict[str, Any] = {"insert_distributed_sync": 1}

# server error codes that mean "wrong user or password" (18.16 and current ClickHouse)
_AUTH_ERROR_CODES = frozenset({192, 193, 194, 516})
_UNKNOWN_DATABASE = 81

_ENDPOINT_SETTINGS = f"{ENV_PREFIX}CLICKHOUSE_HOST/{ENV_PREFIX}CLICKHOUSE_PORT"
_CREDENTIAL_SETTINGS = f"{ENV_PREFIX}CLICKHOUSE_USER/{ENV_PREFIX}CLICKHOUSE_PASSWORD"


def make_client(
    settings: Settings,
    *,
    use_database: bool = True,
    connect_timeout_s: float | None = None,
    send_receive_timeout_s: float | None = None,
    sync_request_timeout_s: float = 5.0,
    client_name: str = "salewatch",
    extra_settings: dict[str, Any] | None = None,
) -> Client:
    """Return a native-protocol client for ``settings.clickhouse_*``; it connects lazily.

    ``use_database=False`` connects to the user's default database, for callers (migrate)
    that create ``settings.clickhouse_database`` and so cannot require it to exist; they
    must qualify table names. ``extra_settings`` are added to :data:`SESSION_SETTINGS`
    (e.g. ``max_block_size``), with the same silently-ignored-if-unknown caveat. Timeouts
    default to ``SALEWATCH_CLICKHOUSE_CONNECT_TIMEOUT_S`` / ``_SEND_RECEIVE_TIMEOUT_S``.
    """
    return Client(
        host=settings.clickhouse_host,
        port=settings.clickhouse_port,
        user=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        database=settings.clickhouse_database if use_database else "",
        client_name=client_name,
        connect_timeout=connect_timeout_s or settings.clickhouse_connect_timeout_s,
        send_receive_timeout=send_receive_timeout_s or settings.clickhouse_send_receive_timeout_s,
        sync_request_timeout=sync_request_timeout_s,
        settings={
            **SESSION_SETTINGS,
            **(CLUSTER_SESSION_SETTINGS if settings.clickhouse_cluster else {}),
            **(extra_settings or {}),
        },
    )


def endpoint(settings: Settings) -> str:
    """``host:port`` of the native protocol endpoint, for messages."""
    return f"{settings.clickhouse_host}:{settings.clickhouse_port}"


class ClickHouseError(Exception):
    """A ClickHouse call failed; ``str()`` is one line naming the endpoint or setting to check.

    ``__cause__`` is the driver's exception.
    """


def checked_executor(client: Client, settings: Settings) -> Callable[[str], list[Any]]:
    """``client.execute`` for one SQL string, raising :class:`ClickHouseError` on failure.

    Only failures of the ClickHouse call are translated, so an unrelated ``OSError`` (say a
    closed stdout) is never reported as "cannot reach ClickHouse".
    """

    def execute(sql: str) -> list[Any]:
        try:
            rows: list[Any] = client.execute(sql)
        except Exception as exc:
            if is_driver_error(exc) or is_connection_error(exc):
                raise ClickHouseError(describe_error(exc, settings)) from exc
            raise
        return rows

    return execute


def probe(settings: Settings, *, timeout_s: float = 5.0) -> str:
    """Connect, check credentials and return the server version, failing within ~timeout_s.

    Worth doing before long-running work: the main client's read timeout must be long
    enough for slow DDL, so a wrong endpoint (say the HTTP port) would otherwise hang for
    that long before failing.
    """
    client = make_client(
        settings,
        use_database=False,
        connect_timeout_s=timeout_s,
        send_receive_timeout_s=timeout_s,
        sync_request_timeout_s=timeout_s,
    )
    try:
        rows = checked_executor(client, settings)("SELECT version()")
    finally:
        client.disconnect()
    return str(rows[0][0])


def is_driver_error(exc: BaseException) -> bool:
    """True for errors raised by clickhouse-driver (network, protocol or server)."""
    return isinstance(exc, DriverError)


def is_connection_error(exc: BaseException) -> bool:
    """True when the server could not be reached or stopped answering."""
    return isinstance(exc, NetworkError | SocketTimeoutError | OSError | EOFError)


def server_message(exc: BaseException) -> str:
    """The first line of an error, without ClickHouse's stack trace, at most 400 chars."""
    text = exc.message if isinstance(exc, ServerException) else str(exc)
    text = text.split("Stack trace:", 1)[0].replace("DB::Exception: ", "")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    code = getattr(exc, "code", None)
    if isinstance(exc, ServerException) and code and not first.startswith("Code:"):
        first = f"Code: {code}. {first}"
    return first if len(first) <= 400 else first[:397] + "..."


def describe_error(exc: BaseException, settings: Settings) -> str:
    """One line saying what went wrong talking to ClickHouse and which setting to check."""
    where = endpoint(settings)
    if isinstance(exc, SocketTimeoutError):
        return (
            f"ClickHouse at {where} did not answer in time ({server_message(exc)}); "
            f"check {_ENDPOINT_SETTINGS} (native protocol port, not the HTTP port)"
        )
    if is_connection_error(exc):
        return (
            f"cannot reach ClickHouse at {where} ({server_message(exc)}); "
            f"is it running? check {_ENDPOINT_SETTINGS} (native protocol port)"
        )
    if isinstance(exc, UnexpectedPacketFromServerError | UnknownPacketFromServerError):
        return (
            f"{where} does not speak the ClickHouse native protocol ({server_message(exc)}); "
            f"check {_ENDPOINT_SETTINGS} (native protocol port, not the HTTP port)"
        )
    code = getattr(exc, "code", None)
    if isinstance(exc, ServerException) and code in _AUTH_ERROR_CODES:
        return (
            f"ClickHouse at {where} refused user {settings.clickhouse_user!r} "
            f"({server_message(exc)}); check {_CREDENTIAL_SETTINGS}"
        )
    if isinstance(exc, ServerException) and code == _UNKNOWN_DATABASE:
        return (
            f"ClickHouse at {where}: database {settings.clickhouse_database!r} does not exist; "
            f"run `salewatch migrate` or check {ENV_PREFIX}CLICKHOUSE_DATABASE"
        )
    return f"ClickHouse at {where}: {server_message(exc)}"


def quiet_driver_logging() -> None:
    """Stop clickhouse-driver from printing a traceback for every failed connect.

    The driver logs each refused connection at WARNING with ``exc_info``; with no logging
    configured Python prints that to stderr, burying the one-line error we print instead.
    """
    logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
