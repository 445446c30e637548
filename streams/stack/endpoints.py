"""Which local address each service listens on, derived from Settings and checked.

The local stack binds 127.0.0.1 only. A setting that points a service at another host, or
two services at the same port, is a configuration error naming the variable to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.settings import ENV_PREFIX, ConfigError, Settings

LISTEN_HOST = "127.0.0.1"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})


@dataclass(frozen=True)
class Port:
    """A TCP port one service binds, and the setting that moves it."""

    number: int
    purpose: str  # e.g. "ClickHouse HTTP"
    setting: str  # environment variable, e.g. SALEWATCH_CLICKHOUSE_HTTP_PORT

    @property
    def address(self) -> str:
        return f"{LISTEN_HOST}:{self.number}"


def _env(field: str) -> str:
    return ENV_PREFIX + field.upper()


def kafka_port(settings: Settings) -> Port:
    """The broker port: the first ``host:port`` of ``kafka_bootstrap``."""
    host, _, port = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")
    if host not in LOOPBACK_NAMES:
        raise ConfigError(
            f"{_env('kafka_bootstrap')}={settings.kafka_bootstrap!r}: the local stack serves "
            f"Kafka on {LISTEN_HOST} only; use 127.0.0.1:<port>"
        )
    return Port(int(port), "Kafka", _env("kafka_bootstrap"))


def _local_port(settings: Settings, host_field: str, port_field: str, purpose: str) -> Port:
    host = getattr(settings, host_field)
    if host not in LOOPBACK_NAMES:
        raise ConfigError(
            f"{_env(host_field)}={host!r}: the local stack serves {purpose} on {LISTEN_HOST} only"
        )
    return Port(int(getattr(settings, port_field)), purpose, _env(port_field))


def clickhouse_native_port(settings: Settings) -> Port:
    return _local_port(settings, "clickhouse_host", "clickhouse_port", "ClickHouse native")


def clickhouse_http_port(settings: Settings) -> Port:
    return _local_port(settings, "clickhouse_host", "clickhouse_http_port", "ClickHouse HTTP")


def prometheus_port(settings: Settings) -> Port:
    return _local_port(settings, "prometheus_host", "prometheus_port", "Prometheus")


def alertmanager_port(settings: Settings) -> Port:
    return _local_port(settings, "alertmanager_host", "alertmanager_port", "Alertmanager")


def all_ports(settings: Settings) -> tuple[Port, ...]:
    """Every port of the stack; raises ConfigError if a host is remote or ports collide."""
    ports = (
        kafka_port(settings),
        clickhouse_native_port(settings),
        clickhouse_http_port(settings),
        prometheus_port(settings),
        alertmanager_port(settings),
    )
    seen: dict[int, Port] = {}
    for port in ports:
        other = seen.setdefault(port.number, port)
        if other is not port:
            raise ConfigError(
                f"{other.setting} and {port.setting} both use port {port.number}; "
                "give each service its own port"
            )
    return ports
