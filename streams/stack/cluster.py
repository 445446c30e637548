"""A real local ClickHouse cluster: ``salewatch stack up --clickhouse-cluster SHARDSxREPLICAS``.

Replaces the single ``clickhouse`` service with ZooKeeper (Debian's ``zookeeper`` 3.8 run
with the system ``java``) and one clickhouse-server 18.16 process per replica of each shard,
named ``clickhouse-s<shard>r<replica>``. Every node has the same ``remote_servers`` (cluster
``SALEWATCH_CLICKHOUSE_CLUSTER``, default ``salewatch``, ``internal_replication`` on: a
Distributed insert goes to one replica per shard and ReplicatedMergeTree copies it), the
same ``<zookeeper>`` and its own ``<macros>`` (``shard``, ``replica``).

Ports: node ``k`` (0-based, shard by shard) listens on ``SALEWATCH_CLICKHOUSE_PORT + k``
(native), ``SALEWATCH_CLICKHOUSE_HTTP_PORT + k`` (HTTP) and ``..._HTTP_PORT + 100 + k``
(replication, interserver HTTP). So the first node is on the usual ports and every setting
that reaches one server reaches the cluster. ZooKeeper: ``SALEWATCH_ZOOKEEPER_PORT``
(AdminServer off; it would take 8080).

ZooKeeper 3.8 and ClickHouse 18.16 work together as they are: 18.16 uses the plain ZooKeeper
client protocol (no 3.5+ features), and ``tickTime=500`` keeps session timeouts short so a
restarted replica reattaches quickly.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from streams.settings import ENV_PREFIX, ConfigError, Settings
from streams.stack import configs, endpoints, health
from streams.stack.endpoints import LISTEN_HOST, Port
from streams.stack.health import Health
from streams.stack.install import ZOOKEEPER_JAR

DEFAULT_CLUSTER = "salewatch"
ZOOKEEPER_SERVICE = "zookeeper"
INTERSERVER_OFFSET = 100
ZOOKEEPER_SESSION_TIMEOUT_MS = 6000
_SHAPE = re.compile(r"^(?P<shards>[1-9])x(?P<replicas>[1-9])$")


@dataclass(frozen=True)
class ClusterShape:
    """``shards`` × ``replicas`` (each 1–9), written ``2x2``."""

    shards: int
    replicas: int

    @classmethod
    def parse(cls, text: str) -> ClusterShape:
        match = _SHAPE.match(text.strip())
        if match is None:
            raise ConfigError(f"--clickhouse-cluster {text!r}: expected SHARDSxREPLICAS, e.g. 2x2")
        return cls(int(match["shards"]), int(match["replicas"]))

    def __str__(self) -> str:
        return f"{self.shards}x{self.replicas}"


@dataclass(frozen=True)
class Node:
    """One clickhouse-server of the local cluster."""

    shard: int  # from 1
    replica: int  # from 1
    index: int  # 0-based, shard by shard: the port offset
    tcp_port: int
    http_port: int
    interserver_port: int

    @property
    def name(self) -> str:
        return f"clickhouse-s{self.shard}r{self.replica}"


def cluster_name(settings: Settings) -> str:
    return settings.clickhouse_cluster or DEFAULT_CLUSTER


def nodes(settings: Settings, shape: ClusterShape) -> list[Node]:
    out: list[Node] = []
    for shard in range(1, shape.shards + 1):
        for replica in range(1, shape.replicas + 1):
            k = len(out)
            out.append(
                Node(
                    shard,
                    replica,
                    k,
                    settings.clickhouse_port + k,
                    settings.clickhouse_http_port + k,
                    settings.clickhouse_http_port + INTERSERVER_OFFSET + k,
                )
            )
    return out


def node_ports(settings: Settings, node: Node) -> tuple[Port, ...]:
    native = f"{ENV_PREFIX}CLICKHOUSE_PORT (+{node.index})"
    http = f"{ENV_PREFIX}CLICKHOUSE_HTTP_PORT (+{node.index})"
    interserver = f"{ENV_PREFIX}CLICKHOUSE_HTTP_PORT (+{INTERSERVER_OFFSET + node.index})"
    endpoints.clickhouse_native_port(settings)  # refuses a remote host
    return (
        Port(node.tcp_port, f"ClickHouse native of {node.name}", native),
        Port(node.http_port, f"ClickHouse HTTP of {node.name}", http),
        Port(node.interserver_port, f"ClickHouse replication of {node.name}", interserver),
    )


def zookeeper_port(settings: Settings) -> Port:
    return Port(settings.zookeeper_port, "ZooKeeper", f"{ENV_PREFIX}ZOOKEEPER_PORT")


def all_ports(settings: Settings, shape: ClusterShape) -> tuple[Port, ...]:
    """Every port of the cluster; ConfigError if two collide (with each other or the stack)."""
    ports = [zookeeper_port(settings)]
    for node in nodes(settings, shape):
        ports.extend(node_ports(settings, node))
    others = [
        endpoints.kafka_port(settings),
        endpoints.prometheus_port(settings),
        endpoints.alertmanager_port(settings),
    ]
    seen: dict[int, Port] = {}
    for port in [*ports, *others]:
        other = seen.setdefault(port.number, port)
        if other is not port:
            raise ConfigError(
                f"{other.setting} and {port.setting} both use port {port.number}; "
                "give each service its own port"
            )
    return tuple(ports)


# ---------------------------------------------------------------------------- config text


def render_zoo_cfg(settings: Settings, data_dir: Path) -> str:
    return (
        "# generated by `salewatch stack up --clickhouse-cluster`; edits are overwritten\n"
        "tickTime=500\n"
        "initLimit=10\n"
        "syncLimit=5\n"
        f"dataDir={data_dir}\n"
        f"clientPort={settings.zookeeper_port}\n"
        f"clientPortAddress={LISTEN_HOST}\n"
        "maxClientCnxns=0\n"
        "admin.enableServer=false\n"
        "4lw.commands.whitelist=ruok,srvr,mntr\n"
        "autopurge.purgeInterval=1\n"
    )


def _add(parent: ET.Element, tag: str, text: str | int | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = str(text)
    return child


def render_node_config(
    settings: Settings, shape: ClusterShape, node: Node, service_dir: Path, log_dir: Path
) -> str:
    """The single-node config.xml on this node's ports, plus interserver HTTP, ZooKeeper,
    ``remote_servers`` and this node's ``macros``."""
    node_settings = settings.model_copy(
        update={"clickhouse_port": node.tcp_port, "clickhouse_http_port": node.http_port}
    )
    text = configs.render_clickhouse_config(node_settings, service_dir, log_dir)
    root = ET.fromstring(text.split("\n", 1)[1])
    logger = root.find("logger")
    assert logger is not None
    for tag, suffix in (("log", "server.log"), ("errorlog", "server.err.log")):
        element = logger.find(tag)
        assert element is not None
        element.text = str(log_dir / f"{node.name}-{suffix}")
    _add(root, "interserver_http_port", node.interserver_port)
    _add(root, "interserver_http_host", LISTEN_HOST)
    zookeeper = _add(root, "zookeeper")
    zk_node = _add(zookeeper, "node")
    _add(zk_node, "host", LISTEN_HOST)
    _add(zk_node, "port", settings.zookeeper_port)
    _add(zookeeper, "session_timeout_ms", ZOOKEEPER_SESSION_TIMEOUT_MS)
    _add(zookeeper, "operation_timeout_ms", 5000)
    macros = _add(root, "macros")
    _add(macros, "shard", f"{node.shard:02d}")
    _add(macros, "replica", f"s{node.shard}r{node.replica}")
    _add(macros, "cluster", cluster_name(settings))
    remote = _add(_add(root, "remote_servers"), cluster_name(settings))
    for shard in range(1, shape.shards + 1):
        shard_el = _add(remote, "shard")
        _add(shard_el, "internal_replication", "true")
        for other in nodes(settings, shape):
            if other.shard == shard:
                replica = _add(shard_el, "replica")
                _add(replica, "host", LISTEN_HOST)
                _add(replica, "port", other.tcp_port)
    ET.indent(root)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------------------- probes


def zookeeper_health(port: int, timeout_s: float = health.PROBE_TIMEOUT_S) -> Health:
    """ZooKeeper: the four-letter word ``srvr`` reports a mode, i.e. it serves sessions
    (``ruok`` answers ``imok`` earlier, while a restarted server still refuses them, and
    ClickHouse 18.16 starting then exits with status 70)."""
    try:
        with socket.create_connection((LISTEN_HOST, port), timeout=timeout_s) as sock:
            sock.sendall(b"srvr")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
    except OSError as exc:
        return Health(False, f"srvr on {LISTEN_HOST}:{port}: {exc}")
    text = answer.decode(errors="replace")
    mode = re.search(r"^Mode: (\w+)", text, re.MULTILINE)
    if mode is None:
        return Health(False, text.strip()[:80] or "srvr: no answer")
    version = re.search(r"version: ([\d.]+)", text)
    return Health(True, f"ZooKeeper {version[1] if version else '?'}, {mode[1]}")


def node_health(settings: Settings, node: Node) -> Health:
    node_settings = settings.model_copy(
        update={"clickhouse_port": node.tcp_port, "clickhouse_http_port": node.http_port}
    )
    result = health.clickhouse(node_settings)
    if not result.healthy:
        return result
    return Health(True, f"{result.detail}, shard {node.shard} replica {node.replica}")


def zookeeper_argv(java: Path, config: Path, workdir: Path) -> tuple[str, ...]:
    return (
        str(java),
        "-Xmx256m",
        "-cp",
        str(ZOOKEEPER_JAR),
        f"-Dzookeeper.log.dir={workdir}",
        "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        str(config),
    )
