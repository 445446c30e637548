"""The collector's configuration: where it listens, its default region, and its limits.

Each value comes from its command-line flag, else (host, port, region) from its
environment variable, else the default below. The limits are sized for one collector
process on one core; see ``streams.collector.ratelimit`` for why the rate is generous.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from streams.events.contract import DIMENSION_MAX_LEN

# also fields of streams.settings.Settings (which validates every SALEWATCH_* variable)
HOST_ENV = "SALEWATCH_COLLECTOR_HOST"
PORT_ENV = "SALEWATCH_COLLECTOR_PORT"
REGION_ENV = "SALEWATCH_COLLECTOR_REGION"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9110
# a collector serves every region unless it is deployed per region; unknown counts as other
DEFAULT_REGION = "other"


class CollectorConfigError(ValueError):
    """A collector setting is wrong; the message names the flag or variable."""


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """Everything ``salewatch collect`` needs besides the Kafka settings."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    max_body_bytes: int = 16 * 1024  # the snippet's beacons are < 1 KiB
    rate_per_s: float = 20.0  # beacons per second per client address, after the burst
    burst: int = 100
    settle_s: float = 5.0  # how long the beacons of one page load are merged
    max_pending: int = 100_000  # page loads waiting to settle; beyond that 503
    trust_forwarded_for: bool = False  # behind a proxy: client = last X-Forwarded-For hop
    allow_origin: str = "*"  # beacons come from the shop's pages, another origin

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise CollectorConfigError(f"port {self.port} (--port / {PORT_ENV}) not in 1-65535")
        if not 0 < len(self.region) <= DIMENSION_MAX_LEN:
            raise CollectorConfigError(f"region (--region / {REGION_ENV}) must be 1-128 chars")
        if self.max_body_bytes < 256 or self.rate_per_s <= 0 or self.burst < 1:
            raise CollectorConfigError("--max-body-bytes >= 256, --rate > 0, --burst >= 1")
        if self.settle_s < 0 or self.max_pending < 1:
            raise CollectorConfigError("--settle-s >= 0, --max-pending >= 1")


def from_flags_and_env(
    environ: Mapping[str, str],
    host: str | None = None,
    port: int | None = None,
    region: str | None = None,
    limits: CollectorConfig | None = None,
) -> CollectorConfig:
    """``limits`` with host, port and region from the flags (None = not given), else from
    ``environ``, else the defaults."""
    port_text = environ.get(PORT_ENV)
    if port is None and port_text is not None:
        if not port_text.isdigit():
            raise CollectorConfigError(f"{PORT_ENV}={port_text!r} is not a port number")
        port = int(port_text)
    return replace(
        limits or CollectorConfig(),
        host=host or environ.get(HOST_ENV) or DEFAULT_HOST,
        port=DEFAULT_PORT if port is None else port,
        region=region or environ.get(REGION_ENV) or DEFAULT_REGION,
    )
