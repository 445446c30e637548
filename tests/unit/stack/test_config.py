"""The local stack's generated configuration follows Settings: ports, targets, rules, paths.

Pure rendering and spec building: nothing is started, no network, no binaries needed.
Every Settings value here differs from its default so that a hard-coded default shows up.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from streams.settings import ConfigError, Settings, load_settings
from streams.stack import configs
from streams.stack.layout import REPO_ROOT, StateLayout
from streams.stack.services import ServiceSpec, build_specs


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        state_dir=tmp_path / "state",
        kafka_bootstrap="127.0.0.1:19192",
        clickhouse_port=19100,
        clickhouse_http_port=19123,
        prometheus_port=19190,
        alertmanager_port=19193,
        scrape_interval_s=7,
        metrics_targets=["127.0.0.1:19208", "127.0.0.1:19209", "127.0.0.1:19210"],
    )


def _specs(settings: Settings, repo_root: Path = REPO_ROOT) -> dict[str, ServiceSpec]:
    layout = StateLayout.from_settings(settings)
    # tansu always lives in the state dir (install.py); Debian binaries anywhere
    fake_binaries = {name: Path("/opt/bin") / name for name in _BINARY_NAMES}
    fake_binaries["tansu"] = layout.bin_dir / "tansu"
    specs = build_specs(settings, layout, fake_binaries, repo_root=repo_root)
    return {spec.name: spec for spec in specs}


_BINARY_NAMES = ("tansu", "clickhouse-server", "prometheus", "prometheus-alertmanager")


def _file(spec: ServiceSpec, name: str) -> str:
    return next(text for path, text in spec.files if path.name == name)


# --- prometheus.yml -------------------------------------------------------------------


def test_prometheus_scrapes_every_target_as_job_salewatch(settings: Settings) -> None:
    config = yaml.safe_load(configs.render_prometheus_yml(settings, REPO_ROOT))
    job, _collector = config["scrape_configs"]
    assert job["job_name"] == "salewatch"
    assert job["scrape_interval"] == "7s"
    assert job["static_configs"] == [
        {"targets": ["127.0.0.1:19208", "127.0.0.1:19209", "127.0.0.1:19210"]}
    ]
    assert config["global"] == {"scrape_interval": "7s", "evaluation_interval": "7s"}


@pytest.mark.parametrize(
    ("host", "target"),
    [
        pytest.param("127.0.0.1", "127.0.0.1:19110", id="loopback: as configured"),
        pytest.param("0.0.0.0", "127.0.0.1:19110", id="every interface: over loopback"),
        pytest.param("10.0.0.5", "10.0.0.5:19110", id="one interface: that address"),
        pytest.param("::", "127.0.0.1:19110", id="every IPv6 interface: over loopback"),
        pytest.param("fd00::5", "[fd00::5]:19110", id="IPv6 address: in brackets"),
    ],
)
def test_prometheus_scrapes_the_collector_as_its_own_job(
    settings: Settings, host: str, target: str
) -> None:
    settings = settings.model_copy(update={"collector_host": host, "collector_port": 19110})
    config = yaml.safe_load(configs.render_prometheus_yml(settings, REPO_ROOT))
    _workers, job = config["scrape_configs"]
    assert job == {
        "job_name": "salewatch-collector",
        "scrape_interval": "7s",
        "static_configs": [{"targets": [target]}],
    }


def test_prometheus_loads_repo_rules_by_absolute_glob(settings: Settings) -> None:
    config = yaml.safe_load(configs.render_prometheus_yml(settings, Path("/srv/repo")))
    assert config["rule_files"] == ["/srv/repo/alerts/*.rules.yml"]
    assert configs.rules_glob(REPO_ROOT) == f"{REPO_ROOT}/alerts/*.rules.yml"
    assert (REPO_ROOT / "streams" / "stack").is_dir()  # REPO_ROOT is the parent of streams/


def test_prometheus_sends_alerts_to_the_local_alertmanager(settings: Settings) -> None:
    config = yaml.safe_load(configs.render_prometheus_yml(settings, REPO_ROOT))
    assert config["alerting"]["alertmanagers"] == [
        {"static_configs": [{"targets": ["127.0.0.1:19193"]}]}
    ]


def test_prometheus_command_line(settings: Settings) -> None:
    spec = _specs(settings)["prometheus"]
    state = settings.state_dir
    assert spec.argv == (
        "/opt/bin/prometheus",
        f"--config.file={state / 'prometheus' / 'prometheus.yml'}",
        f"--storage.tsdb.path={state / 'prometheus' / 'data'}",
        "--storage.tsdb.retention.time=15d",
        "--web.listen-address=127.0.0.1:19190",
        "--web.enable-lifecycle",
    )
    assert _file(spec, "prometheus.yml") == configs.render_prometheus_yml(settings, REPO_ROOT)


# --- ClickHouse -------------------------------------------------------------------------


def _xml_text(xml: str, path: str) -> str | None:
    return ET.fromstring(xml.split("\n", 1)[1]).findtext(path)


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        pytest.param("listen_host", "127.0.0.1", id="loopback only"),
        pytest.param("tcp_port", "19100", id="native port"),
        pytest.param("http_port", "19123", id="http port"),
        pytest.param("timezone", "UTC", id="timezone"),
        pytest.param("path", "{ch}/data/", id="data under state dir"),
        pytest.param("tmp_path", "{ch}/tmp/", id="tmp under state dir"),
        pytest.param("user_files_path", "{ch}/user_files/", id="user files under state dir"),
        pytest.param("users_config", "{ch}/users.xml", id="users.xml next to it"),
        pytest.param("logger/log", "{logs}/clickhouse-server.log", id="log in logs dir"),
        pytest.param("logger/errorlog", "{logs}/clickhouse-server.err.log", id="error log"),
    ],
)
def test_clickhouse_config(settings: Settings, element: str, expected: str) -> None:
    layout = StateLayout.from_settings(settings)
    xml = _file(_specs(settings)["clickhouse"], "config.xml")
    want = expected.format(ch=layout.service_dir("clickhouse"), logs=layout.log_dir)
    assert _xml_text(xml, element) == want


def test_clickhouse_command_line_uses_generated_config(settings: Settings) -> None:
    spec = _specs(settings)["clickhouse"]
    config = StateLayout.from_settings(settings).service_dir("clickhouse") / "config.xml"
    assert spec.argv == ("/opt/bin/clickhouse-server", f"--config-file={config}")
    assert [port.number for port in spec.ports] == [19100, 19123]


def test_clickhouse_default_profile_allows_low_cardinality(settings: Settings) -> None:
    users = configs.render_clickhouse_users(settings)
    value = _xml_text(users, "profiles/default/allow_experimental_low_cardinality_type")
    assert value == "1"


def test_clickhouse_default_user_is_local_only_without_password(settings: Settings) -> None:
    root = ET.fromstring(configs.render_clickhouse_users(settings).split("\n", 1)[1])
    user = root.find("users/default")
    assert user is not None
    assert [ip.text for ip in user.findall("networks/ip")] == ["127.0.0.1", "::1"]
    assert user.findtext("password") == ""
    assert user.findtext("profile") == "default"


def test_clickhouse_configured_user_gets_hashed_password(settings: Settings) -> None:
    custom = settings.model_copy(
        update={"clickhouse_user": "sw", "clickhouse_password": SecretStr("s3cret")}
    )
    users = configs.render_clickhouse_users(custom)
    assert "s3cret" not in users
    digest = hashlib.sha256(b"s3cret").hexdigest()
    assert _xml_text(users, "users/sw/password_sha256_hex") == digest
    assert _xml_text(users, "users/default/password") == ""


# --- Kafka and Alertmanager ---------------------------------------------------------------


def test_tansu_listens_and_advertises_the_bootstrap_port(settings: Settings) -> None:
    spec = _specs(settings)["kafka"]
    bin_dir = StateLayout.from_settings(settings).bin_dir
    assert spec.argv[0] == str(bin_dir / "tansu")
    assert spec.argv[1:] == (
        "broker",
        "--listener-url",
        "tcp://127.0.0.1:19192",
        "--advertised-listener-url",
        "tcp://127.0.0.1:19192",
        "--storage-engine",
        "memory://tansu/",
    )
    not_yet_installed = build_specs(settings, StateLayout.from_settings(settings))[0]
    assert not_yet_installed.argv == spec.argv


def test_alertmanager_uses_repo_config_when_present(settings: Settings, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "alerts").mkdir(parents=True)
    (repo / "alerts" / "alertmanager.yml").write_text("route: {receiver: x}\n")
    spec = _specs(settings, repo_root=repo)["alertmanager"]
    assert f"--config.file={repo / 'alerts' / 'alertmanager.yml'}" in spec.argv
    assert spec.files == ()


def test_alertmanager_falls_back_to_a_null_receiver(settings: Settings, tmp_path: Path) -> None:
    spec = _specs(settings, repo_root=tmp_path / "empty-repo")["alertmanager"]
    generated = StateLayout.from_settings(settings).service_dir("alertmanager") / "alertmanager.yml"
    assert f"--config.file={generated}" in spec.argv
    assert yaml.safe_load(_file(spec, "alertmanager.yml")) == {
        "route": {"receiver": "null"},
        "receivers": [{"name": "null"}],
    }
    assert "--web.listen-address=127.0.0.1:19193" in spec.argv
    assert "--cluster.listen-address=" in spec.argv


# --- state dir and settings checks ----------------------------------------------------------


def test_every_daemon_carries_the_state_dir_marker(settings: Settings) -> None:
    marker = StateLayout.from_settings(settings).marker
    for spec in _specs(settings).values():
        assert any(marker in arg for arg in spec.argv), spec.name


def test_relative_state_dir_resolves_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    layout = StateLayout.from_settings(load_settings(state_dir=Path(".salewatch")))
    assert layout.root == tmp_path / ".salewatch"
    assert layout.pid_file("kafka") == tmp_path / ".salewatch" / "run" / "kafka.pid"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"kafka_bootstrap": "broker.example:9092"},
            "SALEWATCH_KAFKA_BOOTSTRAP",
            id="remote kafka",
        ),
        pytest.param(
            {"clickhouse_host": "10.0.0.5"}, "SALEWATCH_CLICKHOUSE_HOST", id="remote clickhouse"
        ),
        pytest.param(
            {"prometheus_port": 19100},
            "SALEWATCH_CLICKHOUSE_PORT and SALEWATCH_PROMETHEUS_PORT",
            id="two services one port",
        ),
        pytest.param(
            {"kafka_bootstrap": "127.0.0.1:19123"},
            "SALEWATCH_KAFKA_BOOTSTRAP and SALEWATCH_CLICKHOUSE_HTTP_PORT",
            id="kafka on the clickhouse http port",
        ),
    ],
)
def test_unservable_settings_name_the_variable(
    settings: Settings, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _specs(settings.model_copy(update=overrides))
