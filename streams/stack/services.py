"""The four services of the local stack: how each is run, configured and checked.

``build_specs`` turns Settings into one ServiceSpec per service, in start order. A spec is
plain data plus a health probe; starting and stopping is ``lifecycle``'s job.

* kafka: tansu 0.6.0, Kafka protocol, **memory storage only: a restart loses all topics**
  (the worker recreates them).
* clickhouse: ClickHouse 18.16 server, data in ``<state_dir>/clickhouse/data``.
* alertmanager: ``<repo>/alerts/alertmanager.yml`` if present, else a generated config with
  a receiver that notifies nobody; clustering off.
* prometheus: generated ``prometheus.yml`` (see ``configs``), rules from
  ``<repo>/alerts/*.rules.yml``, lifecycle API on (``POST /-/reload`` picks up rule edits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from streams.settings import Settings
from streams.stack import cluster, configs, endpoints, health
from streams.stack.cluster import ClusterShape
from streams.stack.endpoints import Port
from streams.stack.health import Health
from streams.stack.install import (
    ALERTMANAGER,
    CLICKHOUSE,
    PROMETHEUS,
    TANSU,
    ZOOKEEPER,
    Binary,
    expected_path,
)
from streams.stack.layout import REPO_ROOT, StateLayout


@dataclass(frozen=True)
class ServiceSpec:
    """Everything needed to run one service for one Settings + state dir.

    ``argv[0]`` is the absolute binary path; ``files`` are (path, text) pairs written before
    start; ``logs`` are shown when the service fails to start (its stdout/stderr log
    first); ``stop_timeout_s`` bounds the wait after SIGTERM before SIGKILL.
    """

    name: str
    binary: Binary
    argv: tuple[str, ...]
    ports: tuple[Port, ...]
    endpoint: str
    probe: Callable[[], Health] = field(compare=False)
    workdir: Path
    files: tuple[tuple[Path, str], ...] = ()
    logs: tuple[Path, ...] = ()
    stop_timeout_s: float = 10.0
    marker: str | None = None  # command-line substring telling this daemon from its siblings
    # healthy before the next service starts: ClickHouse 18.16 exits (status 70) when it
    # loads replicated tables and ZooKeeper does not answer yet
    ready_before_next: bool = False

    def files_current(self) -> bool:
        """True if every config file on disk already has the wanted content."""
        for path, text in self.files:
            try:
                if path.read_text() != text:
                    return False
            except FileNotFoundError:
                return False
        return True

    def write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for path, text in self.files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def tansu_argv(binary: Path, address: str) -> tuple[str, ...]:
    """The command line of a tansu broker listening on ``address`` (``host:port``), data in
    memory (the stack's and the tests' throwaway brokers)."""
    url = f"tcp://{address}"
    return (
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    )


def _kafka(settings: Settings, layout: StateLayout, binary: Path) -> ServiceSpec:
    port = endpoints.kafka_port(settings)
    return ServiceSpec(
        name="kafka",
        binary=TANSU,
        argv=tansu_argv(binary, port.address),
        ports=(port,),
        endpoint=f"{port.address} (tansu, in memory: a restart loses topics)",
        probe=partial(health.kafka_metadata, port.number),
        workdir=layout.service_dir("kafka"),
        logs=(layout.log_file("kafka"),),
        stop_timeout_s=5.0,
    )


def _clickhouse(settings: Settings, layout: StateLayout, binary: Path) -> ServiceSpec:
    workdir = layout.service_dir("clickhouse")
    config = workdir / "config.xml"
    native = endpoints.clickhouse_native_port(settings)
    http = endpoints.clickhouse_http_port(settings)
    return ServiceSpec(
        name="clickhouse",
        binary=CLICKHOUSE,
        argv=(str(binary), f"--config-file={config}"),
        ports=(native, http),
        endpoint=f"native {native.address}, HTTP http://{http.address}",
        probe=partial(health.clickhouse, settings),
        workdir=workdir,
        files=(
            (config, configs.render_clickhouse_config(settings, workdir, layout.log_dir)),
            (workdir / "users.xml", configs.render_clickhouse_users(settings)),
        ),
        logs=(layout.log_file("clickhouse"), layout.log_dir / "clickhouse-server.err.log"),
        stop_timeout_s=20.0,
    )


def _zookeeper(settings: Settings, layout: StateLayout, java: Path) -> ServiceSpec:
    workdir = layout.service_dir(cluster.ZOOKEEPER_SERVICE)
    config = workdir / "zoo.cfg"
    port = cluster.zookeeper_port(settings)
    return ServiceSpec(
        name=cluster.ZOOKEEPER_SERVICE,
        binary=ZOOKEEPER,
        argv=cluster.zookeeper_argv(java, config, workdir),
        ports=(port,),
        endpoint=f"{port.address} (ZooKeeper 3.8)",
        probe=partial(cluster.zookeeper_health, port.number),
        workdir=workdir,
        files=((config, cluster.render_zoo_cfg(settings, workdir / "data")),),
        logs=(layout.log_file(cluster.ZOOKEEPER_SERVICE),),
        marker=str(workdir) + "/",
        ready_before_next=True,
    )


def _clickhouse_nodes(
    settings: Settings, layout: StateLayout, binary: Path, shape: ClusterShape
) -> list[ServiceSpec]:
    specs = []
    for node in cluster.nodes(settings, shape):
        workdir = layout.service_dir(node.name)
        config = workdir / "config.xml"
        ports = cluster.node_ports(settings, node)
        specs.append(
            ServiceSpec(
                name=node.name,
                binary=CLICKHOUSE,
                argv=(str(binary), f"--config-file={config}"),
                ports=ports,
                endpoint=(
                    f"native {ports[0].address}, HTTP http://{ports[1].address} "
                    f"(cluster {cluster.cluster_name(settings)} shard {node.shard} "
                    f"replica {node.replica})"
                ),
                probe=partial(cluster.node_health, settings, node),
                workdir=workdir,
                files=(
                    (
                        config,
                        cluster.render_node_config(settings, shape, node, workdir, layout.log_dir),
                    ),
                    (workdir / "users.xml", configs.render_clickhouse_users(settings)),
                ),
                logs=(
                    layout.log_file(node.name),
                    layout.log_dir / f"{node.name}-server.err.log",
                ),
                stop_timeout_s=20.0,
                marker=str(workdir) + "/",
            )
        )
    return specs


def _alertmanager(
    settings: Settings, layout: StateLayout, binary: Path, repo_root: Path
) -> ServiceSpec:
    workdir = layout.service_dir("alertmanager")
    port = endpoints.alertmanager_port(settings)
    repo_config = repo_root / "alerts" / "alertmanager.yml"
    files: tuple[tuple[Path, str], ...] = ()
    config = repo_config
    if not repo_config.is_file():
        config = workdir / "alertmanager.yml"
        files = ((config, configs.render_alertmanager_yml()),)
    url = f"http://{port.address}"
    return ServiceSpec(
        name="alertmanager",
        binary=ALERTMANAGER,
        argv=(
            str(binary),
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={port.address}",
            "--cluster.listen-address=",
        ),
        ports=(port,),
        endpoint=url,
        probe=partial(health.http_ready, url),
        workdir=workdir,
        files=files,
        logs=(layout.log_file("alertmanager"),),
    )


def _prometheus(
    settings: Settings, layout: StateLayout, binary: Path, repo_root: Path
) -> ServiceSpec:
    workdir = layout.service_dir("prometheus")
    config = workdir / "prometheus.yml"
    port = endpoints.prometheus_port(settings)
    url = f"http://{port.address}"
    return ServiceSpec(
        name="prometheus",
        binary=PROMETHEUS,
        argv=(
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--storage.tsdb.retention.time={configs.PROMETHEUS_RETENTION}",
            f"--web.listen-address={port.address}",
            "--web.enable-lifecycle",
        ),
        ports=(port,),
        endpoint=url,
        probe=partial(health.http_ready, url),
        workdir=workdir,
        files=((config, configs.render_prometheus_yml(settings, repo_root)),),
        logs=(layout.log_file("prometheus"),),
    )


def build_specs(
    settings: Settings,
    layout: StateLayout,
    binaries: Mapping[str, Path] | None = None,
    repo_root: Path = REPO_ROOT,
    cluster_shape: ClusterShape | None = None,
) -> tuple[ServiceSpec, ...]:
    """One spec per service in start order. ``binaries`` maps binary names to paths (from
    ``install.ensure_installed``); without it, ``install.expected_path`` (enough for
    ``status`` and ``down``, which match daemons by executable name).

    ``cluster_shape``: ZooKeeper and shards × replicas ClickHouse nodes instead of the one
    ``clickhouse`` service (``streams.stack.cluster``).

    Raises ConfigError if a service would not listen on 127.0.0.1 or two share a port.
    """
    if cluster_shape is None:
        endpoints.all_ports(settings)
    else:
        cluster.all_ports(settings, cluster_shape)

    def path(binary: Binary) -> Path:
        if binaries is not None:
            return binaries[binary.name]
        return expected_path(binary, layout)

    clickhouse: list[ServiceSpec] = (
        [_clickhouse(settings, layout, path(CLICKHOUSE))]
        if cluster_shape is None
        else [
            _zookeeper(settings, layout, path(ZOOKEEPER)),
            *_clickhouse_nodes(settings, layout, path(CLICKHOUSE), cluster_shape),
        ]
    )
    return (
        _kafka(settings, layout, path(TANSU)),
        *clickhouse,
        _alertmanager(settings, layout, path(ALERTMANAGER), repo_root),
        _prometheus(settings, layout, path(PROMETHEUS), repo_root),
    )
