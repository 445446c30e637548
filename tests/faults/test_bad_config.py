"""Bad configuration: one clear line naming the setting, non-zero exit, no traceback.

``salewatch worker`` / ``salewatch migrate`` run as subprocesses with bounded timeouts.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams.settings import Settings
from tests.faults.conftest import free_port
from tests.integration.support import settings_env

pytestmark = pytest.mark.integration

TIMEOUT_S = 40


def run(env_overrides: dict[str, str], *args: str, timeout: float = TIMEOUT_S) -> tuple[int, str]:
    base = settings_env(Settings(metrics_port=free_port(), app_id=f"sw-badcfg-{free_port()}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALEWATCH_")}
    env.update(base)
    env.update(env_overrides)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(
            errors="replace"
        )
        return -1, out
    return proc.returncode, proc.stdout + proc.stderr


def assert_one_clear_error(code: int, output: str, setting: str) -> None:
    assert code not in (0, -1), f"exit {code}:\n{output[-2000:]}"
    assert "Traceback" not in output, output[-3000:]
    error_lines = [line for line in output.splitlines() if setting in line]
    assert error_lines, f"no line names {setting}:\n{output[-2000:]}"


CASES = [
    # (id, command, environment overrides, the setting the error must name)
    (
        "unknown-setting-worker",
        "worker",
        {"SALEWATCH_KAFKA_BOOTSTRAPS": "127.0.0.1:9092"},
        "SALEWATCH_KAFKA_BOOTSTRAPS",
    ),
    (
        "unknown-setting-migrate",
        "migrate",
        {"SALEWATCH_CLICKHOUSE_PORTT": "9000"},
        "SALEWATCH_CLICKHOUSE_PORTT",
    ),
    (
        "invalid-metrics-port",
        "worker",
        {"SALEWATCH_METRICS_PORT": "70000"},
        "SALEWATCH_METRICS_PORT",
    ),
    (
        "non-numeric-clickhouse-port",
        "migrate",
        {"SALEWATCH_CLICKHOUSE_PORT": "ninethousand"},
        "SALEWATCH_CLICKHOUSE_PORT",
    ),
    (
        "malformed-broker-address",
        "worker",
        {"SALEWATCH_KAFKA_BOOTSTRAP": "localhost"},
        "SALEWATCH_KAFKA_BOOTSTRAP",
    ),
    (
        "broker-port-out-of-range",
        "worker",
        {"SALEWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:99999"},
        "SALEWATCH_KAFKA_BOOTSTRAP",
    ),
    (
        "unreachable-clickhouse-worker",
        "worker",
        {"SALEWATCH_CLICKHOUSE_PORT": "__FREE__"},
        "SALEWATCH_CLICKHOUSE_PORT",
    ),
    (
        "unreachable-clickhouse-migrate",
        "migrate",
        {"SALEWATCH_CLICKHOUSE_PORT": "__FREE__"},
        "SALEWATCH_CLICKHOUSE_PORT",
    ),
]


@pytest.mark.parametrize(
    ("command", "env", "setting"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_setting_is_one_clear_error(command: str, env: dict[str, str], setting: str) -> None:
    env = {k: str(free_port()) if v == "__FREE__" else v for k, v in env.items()}
    code, output = run(env, command)
    assert_one_clear_error(code, output, setting)
    assert len(output.strip().splitlines()) <= 3, output


def test_metrics_port_in_use_is_one_clear_error(isolated: Settings) -> None:
    import socket

    # a migrated database, so the worker gets past its ClickHouse check to the port
    database = {"SALEWATCH_CLICKHOUSE_DATABASE": isolated.clickhouse_database}

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = run({**database, "SALEWATCH_METRICS_PORT": str(port)}, "worker")
    assert_one_clear_error(code, output, "SALEWATCH_METRICS_PORT")


def test_unreachable_broker_is_one_clear_error(isolated: Settings) -> None:
    # ClickHouse (a migrated database) is fine; nothing listens on the broker port
    _code, output = run(
        {
            "SALEWATCH_CLICKHOUSE_DATABASE": isolated.clickhouse_database,
            "SALEWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        },
        "worker",
        timeout=25,
    )
    # either it gives up with one line, or it keeps retrying with clear lines: both name
    # the setting, neither prints a traceback
    assert "Traceback" not in output, output[-3000:]
    assert "SALEWATCH_KAFKA_BOOTSTRAP" in output, output[-2000:]
