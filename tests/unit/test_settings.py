"""Configuration errors name the setting to fix; unknown SALEWATCH_* variables are refused."""

from __future__ import annotations

import pytest

from streams.cli import main
from streams.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {"SALEWATCH_METRICS_PORT": "99999"}, "SALEWATCH_METRICS_PORT", id="port range"
        ),
        pytest.param({"SALEWATCH_METRICS_PORT": "abc"}, "SALEWATCH_METRICS_PORT", id="port type"),
        pytest.param(
            {"SALEWATCH_KAFKA_BOOTSTRAP": "localhost"},
            "SALEWATCH_KAFKA_BOOTSTRAP",
            id="bootstrap without port",
        ),
        pytest.param(
            {"SALEWATCH_KAFKA_COMPRESSION": "brotli"},
            "SALEWATCH_KAFKA_COMPRESSION",
            id="unknown codec",
        ),
        pytest.param({"SALEWATCH_BATCH_SIZE": "0"}, "SALEWATCH_BATCH_SIZE", id="batch size"),
        pytest.param(
            {"SALEWATCH_CLICKHOUSE_DATABASE": "x; DROP"},
            "SALEWATCH_CLICKHOUSE_DATABASE",
            id="database name",
        ),
        pytest.param(
            {"SALEWATCH_KAFKA_BOOTSTRP": "a:1"}, "SALEWATCH_KAFKA_BOOTSTRP", id="unknown setting"
        ),
    ],
)
def test_bad_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_defaults_listen_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.metrics_host == "127.0.0.1"
    assert settings.kafka_bootstrap.startswith("127.0.0.1:")
    assert settings.clickhouse_host == "127.0.0.1"


def test_cli_reports_config_error_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SALEWATCH_METRICS_PORT", "70000")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert "SALEWATCH_METRICS_PORT" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
