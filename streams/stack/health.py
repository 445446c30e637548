"""Health probes: each asks the service a real question, bounded by a short timeout.

Probes never raise; they return Health(healthy, detail) where detail is what the service
answered (a version, a topic count) or why the probe failed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from streams.settings import Settings
from streams.stack.endpoints import LISTEN_HOST

PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str


def _tcp_open(port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((LISTEN_HOST, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _http_get(url: str, timeout_s: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), response.read(512).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.reason
    except (OSError, ValueError) as exc:  # URLError, refused, timeout
        return 0, str(getattr(exc, "reason", exc))


def _failure(what: str, code: int, body: str) -> str:
    return f"{what} answered {code}" if code else f"{what}: {body.strip()[:80]}"


def http_ready(base_url: str, timeout_s: float = PROBE_TIMEOUT_S) -> Health:
    """Prometheus/Alertmanager: ``GET /-/ready`` answers 200."""
    code, body = _http_get(f"{base_url}/-/ready", timeout_s)
    if code == 200:
        return Health(True, "ready")
    return Health(False, _failure("/-/ready", code, body))


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """kafka-python logs every refused connection; the probe result says it once."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def kafka_metadata(port: int, timeout_s: float = PROBE_TIMEOUT_S) -> Health:
    """Kafka: TCP connect, then a Metadata request (list topics) via kafka-python."""
    if not _tcp_open(port, timeout_s):
        return Health(False, f"nothing accepts connections on {LISTEN_HOST}:{port}")
    from kafka import KafkaAdminClient  # slow import; only when something listens

    timeout_ms = int(timeout_s * 1000)
    with _quiet("kafka"):
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=f"{LISTEN_HOST}:{port}",
                client_id="salewatch-stack-probe",
                request_timeout_ms=timeout_ms,
                bootstrap_timeout_ms=timeout_ms,
            )
            try:
                topics = admin.list_topics()
            finally:
                admin.close()
        except Exception as exc:  # any client failure means "not healthy"
            return Health(False, f"metadata request failed: {exc}")
    return Health(True, f"{len(topics)} topic(s)")


def clickhouse(settings: Settings, timeout_s: float = PROBE_TIMEOUT_S) -> Health:
    """ClickHouse: HTTP ``/ping`` answers "Ok.", and ``SELECT version()`` over the native
    protocol as the configured user."""
    url = f"http://{LISTEN_HOST}:{settings.clickhouse_http_port}/ping"
    code, body = _http_get(url, timeout_s)
    if code != 200 or body.strip() != "Ok.":
        return Health(False, _failure("HTTP /ping", code, body))
    from clickhouse_driver import Client

    client = Client(
        host=LISTEN_HOST,
        port=settings.clickhouse_port,
        user=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        database="default",
        connect_timeout=timeout_s,
        send_receive_timeout=timeout_s,
        sync_request_timeout=timeout_s,
    )
    try:
        rows = client.execute("SELECT version()")
    except Exception as exc:  # any driver failure means "not healthy"
        return Health(False, f"SELECT version() failed: {str(exc).splitlines()[0]}")
    finally:
        client.disconnect()
    return Health(True, f"ClickHouse {rows[0][0]}")
