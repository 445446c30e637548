"""Runtime configuration: every endpoint, port, secret and tunable in one typed place.

Values come from the environment (prefix ``SALEWATCH_``, e.g. ``SALEWATCH_KAFKA_BOOTSTRAP``)
or a ``.env`` file. Unknown ``SALEWATCH_*`` variables are rejected so that a typo in a
setting name fails loudly at start-up instead of being silently ignored.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.sale import DEFAULT_SALE_FILE

ENV_PREFIX = "SALEWATCH_"

DEFAULT_REGIONS = (
    "CN-BJ",
    "CN-SH",
    "CN-GD",
    "CN-ZJ",
    "CN-JS",
    "CN-SC",
    "CN-HB",
    "CN-SD",
    "CN-FJ",
    "CN-HN",
)


class Settings(BaseSettings):
    """All salewatch settings. Every service listens on 127.0.0.1 unless overridden."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    state_dir: Path = Field(Path(".salewatch"), description="local stack state and logs")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "lz4",
        description="codec of the record batches salewatch's own producers write (simulate, "
        "collector, dead letters, orders_by_session); the reader decodes every codec",
    )
    kafka_startup_timeout_s: float = Field(
        300, ge=0, description="how long a starting worker waits for the brokers"
    )
    kafka_send_timeout_s: float = Field(
        30,
        gt=0,
        le=600,
        description="how long the worker's producer (dead letters, orders_by_session) waits "
        "for the broker to acknowledge a send before the batch fails (Faust's default: "
        "1,200 s); a failed send stops the worker (exit 3), its batch is read again",
    )
    topic_partitions: int = Field(4, ge=1, le=256)
    topic_prefix: str = Field(
        "",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="prefix of every Kafka topic name (isolates test runs and tenants)",
    )

    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = Field(9000, ge=1, le=65535, description="native protocol port")
    clickhouse_http_port: int = Field(8123, ge=1, le=65535)
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = Field("salewatch", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_connect_timeout_s: float = Field(
        3, gt=0, le=300, description="ClickHouse native-protocol connect timeout"
    )
    clickhouse_send_receive_timeout_s: float = Field(
        60,
        gt=0,
        le=3600,
        description="ClickHouse socket send/receive timeout: a query or insert whose "
        "server stops answering fails after this long (an insert is then retried)",
    )
    clickhouse_cluster: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="name of a ClickHouse cluster (remote_servers): migrate creates replicated "
        "local tables on every node and Distributed tables over them; unset: one node",
    )
    zookeeper_port: int = Field(
        2181,
        ge=1,
        le=65535,
        description="ZooKeeper of the local cluster (stack up --clickhouse-cluster)",
    )
    clickhouse_worker_user: str = Field(
        "salewatch_worker",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="user `salewatch migrate` creates for the worker (INSERT, SELECT only)",
    )
    clickhouse_worker_password: SecretStr | None = Field(
        None,
        description="that user's password; unset: migrate creates no worker user",
    )

    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = Field(9090, ge=1, le=65535)
    alertmanager_host: str = "127.0.0.1"
    alertmanager_port: int = Field(9093, ge=1, le=65535)
    scrape_interval_s: int = Field(5, ge=1, le=60)
    metrics_targets: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:9108", "127.0.0.1:9109"],
        description="worker /metrics endpoints Prometheus scrapes (local stack)",
    )

    app_id: str = Field("salewatch", description="Faust app id = Kafka consumer group")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9108, ge=1, le=65535, description="worker /metrics port")

    collector_host: str = Field("127.0.0.1", description="`salewatch collect` listen address")
    collector_port: int = Field(9110, ge=1, le=65535, description="`salewatch collect` port")
    collector_region: str = Field("other", description="region of collected page views")

    batch_size: int = Field(5000, ge=1, le=100_000, description="max events per ClickHouse batch")
    batch_within_s: float = Field(1.0, gt=0, le=60, description="max wait to fill a batch")
    insert_linger_s: float = Field(
        1.0,
        ge=0,
        le=10,
        description="how long a counted batch waits for later ones to join its ClickHouse "
        "insert (0: insert at once); an insert starts sooner when 4 x batch_size events are "
        "waiting or a revocation or stop is draining. Fewer, larger inserts cost ClickHouse "
        "less CPU in parts and merges; adds up to this much to freshness in ClickHouse, "
        "none to /metrics",
    )
    insert_backlog_max_events: int = Field(
        500_000,
        ge=1000,
        le=50_000_000,
        description="events counted but not yet stored in ClickHouse before reading pauses",
    )
    revoke_drain_timeout_s: float = Field(
        4.5,
        gt=0,
        lt=6,
        description="how long a revocation waits for counted events to be stored; below "
        "the reader's 6 s rebalance timeout (then the partitions are released anyway and "
        "their next owner reads the unstored events again)",
    )
    max_live_sessions: int = Field(
        1_000_000,
        ge=1000,
        description="sessions a worker keeps in memory (~200 B each); beyond it the least "
        "recently active are forgotten early (their next event starts a new session)",
    )
    max_order_categories: int = Field(
        1_000_000,
        ge=1000,
        description="orders whose category a worker remembers for their payments; beyond it "
        "the oldest are forgotten (their payments count under category other)",
    )
    dedupe_capacity: int = Field(
        200_000,
        ge=1000,
        description="recent event ids a worker remembers to skip duplicates (~60 B each)",
    )
    allowed_lateness_s: int = Field(120, ge=0, le=3600)
    window_clock: Literal["wall", "event"] = Field(
        "wall", description="what closes windows: wall time (live) or event time (replays)"
    )
    max_event_age_days: int = Field(30, ge=1, description="older events are dead-lettered")
    max_future_s: int = Field(24 * 3600, ge=0, description="events further ahead are rejected")
    regions: list[str] = Field(default_factory=lambda: list(DEFAULT_REGIONS))
    sale_file: Path = Field(
        DEFAULT_SALE_FILE,
        description="the sale (start, end, GMV target, office time zone, previous sale, flash "
        "sales) `salewatch recap` reads; the dashboards are generated from the repository's",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value

    @property
    def kafka_compression_type(self) -> str | None:
        """``kafka_compression`` as the Python clients take it (``None`` for ``none``)."""
        return None if self.kafka_compression == "none" else self.kafka_compression

    def kafka_topic(self, topic: str) -> str:
        """The Kafka name of a logical topic (``orders`` → ``<prefix>orders``)."""
        return self.topic_prefix + topic

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.prometheus_host}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.alertmanager_host}:{self.alertmanager_port}"


class ConfigError(Exception):
    """A setting is wrong; the message names the environment variable to fix."""


def unknown_env_settings(environ: dict[str, str] | None = None) -> list[str]:
    """Return ``SALEWATCH_*`` variables that name no setting (typos)."""
    env = os.environ if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(k for k in env if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning every problem into one ConfigError."""
    unknown = unknown_env_settings()
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ENV_PREFIX + "_".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid setting(s): " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, loaded once."""
    return load_settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``SALEWATCH_*`` environment that reproduces ``settings`` in a subprocess (the
    benchmarks' and the tests' workers)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:  # unset (e.g. no cluster): absent, not the text "None"
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        text = json.dumps(value) if isinstance(value, list) else str(value)
        env[ENV_PREFIX + name.upper()] = text
    return env
