"""Fault-injection fixtures: the shared stack for harmless faults, throwaway services for
faults that must stop a service (ClickHouse down, broker unreachable), which never touch
the shared default-port stack other people use.

Every worker here gets its own free metrics port (not 9108/9109: Prometheus of the local
stack does not scrape it, which no fault test needs) so fault tests can run side by side.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.stack.configs import render_clickhouse_config, render_clickhouse_users
from streams.stack.services import tansu_argv
from tests.integration.conftest import stack_settings  # noqa: F401  (re-exported fixture)
from tests.integration.support import clickhouse, isolated_settings, run_cli, stop_group

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(probe, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.05)


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 if gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


@dataclass
class Service:
    """One daemon of ours, started in its own session, stopped by its pid."""

    argv: list[str]
    log: Path
    cwd: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_group(self.proc, sig, timeout_s=20)


class ThrowawayClickHouse(Service):
    def __init__(self, state: Path) -> None:
        self.tcp_port, self.http_port = free_port(), free_port()
        settings = Settings(clickhouse_port=self.tcp_port, clickhouse_http_port=self.http_port)
        state.mkdir(parents=True, exist_ok=True)
        (state / "config.xml").write_text(render_clickhouse_config(settings, state, state))
        (state / "users.xml").write_text(render_clickhouse_users(settings))
        binary = shutil.which("clickhouse-server") or "clickhouse-server"
        super().__init__(
            [binary, f"--config-file={state / 'config.xml'}"], state / "out.log", state
        )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/ping", timeout=1):
                return True
        except OSError:
            return False

    def start(self) -> None:
        super().start()
        _wait(self.ready, 30, "throwaway clickhouse-server")


class ThrowawayTansu(Service):
    def __init__(self, state: Path) -> None:
        self.port = free_port()
        state.mkdir(parents=True, exist_ok=True)
        binary = REPO / ".salewatch" / "bin" / "tansu"
        if not binary.exists():  # a worktree: the stack's state dir (SALEWATCH_STATE_DIR)
            binary = Path(Settings().state_dir).resolve() / "bin" / "tansu"
        if not binary.exists():
            binary = Path(shutil.which("tansu") or "tansu")
        super().__init__(
            list(tansu_argv(binary, f"127.0.0.1:{self.port}")),
            state / "tansu.log",
            state,
        )

    def start(self) -> None:
        super().start()

        def listening() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        _wait(listening, 15, "throwaway tansu")


def migrate(settings: Settings) -> None:
    result = run_cli(settings, "migrate")
    assert result.returncode == 0, result.stderr


def drop_database(settings: Settings) -> None:
    """Drop the test's database; on a cluster, on every node (DDL is per node here)."""
    first = settings.model_copy(update={"clickhouse_database": "default"})
    nodes = [first]
    if settings.clickhouse_cluster:
        client = clickhouse(first)
        try:
            rows = client.execute(
                "SELECT host_name, port FROM system.clusters WHERE cluster = %(c)s",
                {"c": settings.clickhouse_cluster},
            )
        finally:
            client.disconnect()
        nodes = [
            first.model_copy(update={"clickhouse_host": h, "clickhouse_port": p}) for h, p in rows
        ]
    for node in nodes:
        client = clickhouse(node)
        try:
            client.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        finally:
            client.disconnect()


@pytest.fixture
def isolated(stack_settings: Settings) -> Iterator[Settings]:  # noqa: F811
    """Fresh topics, database (migrated), group and a free metrics port, on the shared stack."""
    settings = isolated_settings(stack_settings, metrics_port=free_port())
    migrate(settings)
    yield settings
    drop_database(settings)


@pytest.fixture
def throwaway_clickhouse(tmp_path: Path) -> Iterator[ThrowawayClickHouse]:
    server = ThrowawayClickHouse(tmp_path / "clickhouse")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def throwaway_tansu(tmp_path: Path) -> Iterator[ThrowawayTansu]:
    broker = ThrowawayTansu(tmp_path / "tansu")
    yield broker  # not started: the test decides when the broker appears
    broker.stop()
