"""docker-compose.yml, Dockerfile and deploy/: the Docker deployment, checked without Docker.

No Docker engine runs here, so these tests read the files and hold them to the rules a
reviewer would: pinned images, health-gated start order, loopback-only ports, mounts that
exist, SALEWATCH_* names that are real settings, no secrets in the repository, and
Prometheus/Grafana/ClickHouse configs that agree with each other and with the services.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from streams.settings import ENV_PREFIX, Settings, unknown_env_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
PROMETHEUS_YML = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = REPO_ROOT / "deploy" / "grafana" / "provisioning"
CLICKHOUSE_USERS = REPO_ROOT / "deploy" / "clickhouse" / "users.xml"

COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]

# service -> image repository it must run (None: built from ./Dockerfile)
EXPECTED_SERVICES: dict[str, str | None] = {
    "kafka": "apache/kafka",
    "clickhouse": "clickhouse/clickhouse-server",
    "prometheus": "prom/prometheus",
    "alertmanager": "prom/alertmanager",
    "grafana": "grafana/grafana",
    "migrate": None,
    "worker": None,
    "collector": None,
    # profile `cluster`
    "clickhouse-keeper": "clickhouse/clickhouse-server",
    "clickhouse-s1r1": "clickhouse/clickhouse-server",
    "clickhouse-s1r2": "clickhouse/clickhouse-server",
    "clickhouse-s2r1": "clickhouse/clickhouse-server",
    "clickhouse-s2r2": "clickhouse/clickhouse-server",
    "migrate-cluster": None,
    "worker-cluster": None,
}
CLUSTER_NODES = ["clickhouse-s1r1", "clickhouse-s1r2", "clickhouse-s2r1", "clickhouse-s2r2"]
CLUSTER_SERVICES = {"clickhouse-keeper", *CLUSTER_NODES, "migrate-cluster", "worker-cluster"}
CLUSTER_XML = REPO_ROOT / "deploy" / "clickhouse-cluster" / "cluster.xml"
ONE_SHOT = {"migrate", "migrate-cluster"}
LONG_RUNNING = sorted(set(SERVICES) - ONE_SHOT)
BUILT = sorted(name for name, repo in EXPECTED_SERVICES.items() if repo is None)

# the start order the pipeline needs: (service, dependency, condition)
REQUIRED_ORDER = [
    ("migrate", "clickhouse", "service_healthy"),
    ("worker", "kafka", "service_healthy"),
    ("worker", "clickhouse", "service_healthy"),
    ("worker", "migrate", "service_completed_successfully"),
    ("collector", "kafka", "service_healthy"),
    ("prometheus", "alertmanager", "service_healthy"),
    ("grafana", "prometheus", "service_healthy"),
    ("grafana", "clickhouse", "service_healthy"),
    *[(node, "clickhouse-keeper", "service_healthy") for node in CLUSTER_NODES],
    *[("migrate-cluster", node, "service_healthy") for node in CLUSTER_NODES],
    ("worker-cluster", "kafka", "service_healthy"),
    ("worker-cluster", "migrate-cluster", "service_completed_successfully"),
]

PINNED_TAG = re.compile(r"^v?\d+(\.\d+)+$")  # 3.9.1, v3.12.0, 26.8.18.2 (no latest, no 3)
HOST_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.IGNORECASE)


def _ids(pairs: Sequence[tuple[str, ...]]) -> list[str]:
    return ["-".join(pair) for pair in pairs]


def _env(service: str) -> dict[str, str]:
    environment = SERVICES[service].get("environment", {})
    if isinstance(environment, list):  # the "KEY=value" form
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def _interpolated(value: str) -> str:
    """What compose substitutes when every required host variable is set (to "x")."""
    return HOST_VAR.sub(lambda m: m["rest"][2:] if m["rest"].startswith(":-") else "x", value)


def _bind_mounts(service: str) -> Iterator[tuple[str, str]]:
    """(host path, container path) of every bind mount; named volumes are skipped."""
    for volume in SERVICES[service].get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                yield volume["source"], volume["target"]
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/", "~")):
            yield source, target


def _flags(service: str) -> dict[str, str]:
    """``--name=value`` command-line flags of a service (valueless flags map to "")."""
    return dict(flag.partition("=")[::2] for flag in SERVICES[service]["command"])


def _host_var(value: str) -> str:
    """Name of the host variable a value is taken from (``${NAME...}``)."""
    match = HOST_VAR.fullmatch(value)
    assert match, f"{value!r} is not taken from a host variable"
    return match["name"]


def _mount_target(service: str, host_path: str) -> str:
    (target,) = [t for s, t in _bind_mounts(service) if Path(s) == Path(host_path)]
    return target


def _published_ports() -> list[tuple[str, str]]:
    return [
        (name, port if isinstance(port, str) else json.dumps(port, sort_keys=True))
        for name, service in SERVICES.items()
        for port in service.get("ports", [])
    ]


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = (line.strip() for line in text.splitlines())
    instructions = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


# ------------------------------------------------------------------------ services, images


def test_expected_services_exist() -> None:
    assert sorted(SERVICES) == sorted(EXPECTED_SERVICES)


@pytest.mark.parametrize(
    ("service", "repository"),
    [(s, r) for s, r in EXPECTED_SERVICES.items() if r is not None],
)
def test_image_is_pinned(service: str, repository: str) -> None:
    image = SERVICES[service]["image"]
    name, sep, tag = image.rpartition(":")
    assert sep and name == repository, f"{service}: {image!r} is not a {repository} image"
    assert PINNED_TAG.match(tag), f"{service}: tag {tag!r} of {image!r} is not a pinned version"


@pytest.mark.parametrize("service", BUILT)
def test_built_image_is_tagged_with_the_project_version(service: str) -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    spec = SERVICES[service]
    assert spec["build"] == "." and DOCKERFILE.is_file()
    assert spec["image"] == f"salewatch:{pyproject['project']['version']}"
    assert spec["pull_policy"] == "build", "a local tag must never be pulled from a registry"


def test_grafana_plugin_version_is_pinned() -> None:
    plugins = _env("grafana")["GF_INSTALL_PLUGINS"].split(",")
    ((plugin, version),) = [p.split() for p in plugins]  # "id version": the legacy syntax
    assert plugin == "grafana-clickhouse-datasource"
    assert PINNED_TAG.match(version), f"plugin version {version!r} is not pinned"


# --------------------------------------------------------------------- start order, health


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_long_running_service_has_a_healthcheck(service: str) -> None:
    check = SERVICES[service].get("healthcheck")
    assert check, f"{service} has no healthcheck: dependents cannot wait for it"
    assert not check.get("disable", False)
    assert check["test"][0] in {"CMD", "CMD-SHELL"} and len(check["test"]) > 1
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)
    assert SERVICES[service]["restart"] == "unless-stopped"


@pytest.mark.parametrize("service", sorted(ONE_SHOT))
def test_one_shot_service_is_not_restarted(service: str) -> None:
    assert SERVICES[service]["restart"] == "no"
    assert "healthcheck" not in SERVICES[service]


DEPENDENCIES = [(s, d) for s, spec in SERVICES.items() for d in spec.get("depends_on", {})]


@pytest.mark.parametrize(("service", "dependency"), DEPENDENCIES, ids=_ids(DEPENDENCIES))
def test_depends_on_waits_for_a_condition(service: str, dependency: str) -> None:
    depends_on = SERVICES[service]["depends_on"]
    assert isinstance(depends_on, dict), f"{service}: a bare list only waits for 'started'"
    condition = depends_on[dependency]["condition"]
    if condition == "service_healthy":
        assert "healthcheck" in SERVICES[dependency]
    else:
        assert condition == "service_completed_successfully"
        assert dependency in ONE_SHOT


@pytest.mark.parametrize(
    ("service", "dependency", "condition"), REQUIRED_ORDER, ids=_ids(REQUIRED_ORDER)
)
def test_start_order(service: str, dependency: str, condition: str) -> None:
    assert SERVICES[service]["depends_on"][dependency] == {"condition": condition}


# ------------------------------------------------------------------------ ports and mounts


@pytest.mark.parametrize(("service", "port"), _published_ports(), ids=_ids(_published_ports()))
def test_published_port_is_loopback_only(service: str, port: str) -> None:
    if port.startswith("{"):
        assert json.loads(port)["host_ip"] == "127.0.0.1"
    else:
        assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+(/tcp)?", port), port


MOUNTS = [(s, host) for s in SERVICES for host, _ in _bind_mounts(s)]


@pytest.mark.parametrize(("service", "host_path"), MOUNTS, ids=_ids(MOUNTS))
def test_bind_mount_source_exists_in_the_repo(service: str, host_path: str) -> None:
    assert host_path.startswith("./"), f"{service}: {host_path} is outside the repository"
    assert (REPO_ROOT / host_path).exists(), f"{service}: {host_path} does not exist"


def test_named_volumes_are_declared() -> None:
    used = {
        volume.split(":")[0]
        for spec in SERVICES.values()
        for volume in spec.get("volumes", [])
        if isinstance(volume, str) and not volume.startswith((".", "/", "~"))
    }
    assert used == set(COMPOSE["volumes"])


# ------------------------------------------------------------------- settings and secrets


def _salewatch_names(text: str) -> set[str]:
    return set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]+\b", text))


@pytest.mark.parametrize("path", [COMPOSE_FILE, DOCKERFILE], ids=lambda p: p.name)
def test_every_salewatch_variable_named_is_a_setting(path: Path) -> None:
    names = _salewatch_names(path.read_text(encoding="utf-8"))
    assert names, f"{path.name} names no setting: the pattern is wrong"
    assert unknown_env_settings(dict.fromkeys(names, "")) == []


@pytest.mark.parametrize("service", BUILT)
def test_app_environment_is_valid(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(Settings.model_fields):
        monkeypatch.delenv(ENV_PREFIX + key.upper(), raising=False)
    for key, value in _env(service).items():
        monkeypatch.setenv(key, _interpolated(value))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    host, _, port = settings.kafka_bootstrap.rpartition(":")
    advertised = _env("kafka")["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert any(a.endswith(f"://{host}:{port}") for a in advertised), "not an advertised listener"
    assert settings.clickhouse_host in SERVICES and settings.clickhouse_port == 9000
    assert settings.metrics_host == "0.0.0.0", "metrics must be reachable from Prometheus"


def test_kafka_advertises_the_published_address_to_host_clients() -> None:
    def by_name(listeners: str) -> dict[str, str]:
        return dict(item.split("://") for item in listeners.split(","))

    kafka = _env("kafka")
    (published,) = SERVICES["kafka"]["ports"]
    _, host_port, container_port = published.split(":")
    assert by_name(kafka["KAFKA_LISTENERS"])["HOST"] == f":{container_port}"
    advertised = by_name(kafka["KAFKA_ADVERTISED_LISTENERS"])["HOST"]
    assert advertised == f"127.0.0.1:{host_port}"
    # host tools then reach Kafka without setting SALEWATCH_KAFKA_BOOTSTRAP
    assert advertised == Settings.model_fields["kafka_bootstrap"].default


SECRETS = [(s, k) for s in SERVICES for k in _env(s) if SECRET_NAME.search(k)]


@pytest.mark.parametrize(("service", "variable"), SECRETS, ids=_ids(SECRETS))
def test_secret_comes_from_a_required_host_variable(service: str, variable: str) -> None:
    value = _env(service)[variable]
    match = HOST_VAR.fullmatch(value)
    assert match and match["rest"].startswith(":?"), (
        f"{service}.{variable} must be ${{HOST_VAR:?message}}: no value, no default"
    )


# -------------------------------------------------------------------------- Dockerfile


def test_dockerfile_base_user_and_entrypoint() -> None:
    instructions = _dockerfile()
    (base,) = [args for keyword, args in instructions if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", base), base
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "must not run as root"
    entrypoints = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["salewatch"]]


def _dockerignore_allows(path: str) -> bool:
    allowed = False
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern == "*" or pattern == path or path.startswith(pattern + "/"):
            allowed = negated
    return allowed


COPIED = [
    source
    for keyword, args in _dockerfile()
    if keyword == "COPY" and not args.startswith("--from")
    for source in shlex.split(args)[:-1]
    if not source.startswith("--")
]


@pytest.mark.parametrize("source", COPIED)
def test_copied_path_exists_and_is_in_the_build_context(source: str) -> None:
    assert (REPO_ROOT / source).exists(), source
    assert _dockerignore_allows(source.rstrip("/")), f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize("secret", [".env", ".git", ".salewatch"])
def test_dockerignore_keeps_local_files_out_of_the_image(secret: str) -> None:
    assert not _dockerignore_allows(secret)


def test_image_contains_the_migrations() -> None:
    from streams.clickhouse.migrations import DEFAULT_MIGRATIONS_DIR

    top = DEFAULT_MIGRATIONS_DIR.relative_to(REPO_ROOT).parts[0]
    assert top in {c.rstrip("/") for c in COPIED}, f"`salewatch migrate` needs {top}/"


# -------------------------------------------------------------------------- Prometheus


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    return loaded


def test_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("`promtool` not found; `apt-get install prometheus`", pytrace=False)
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(PROMETHEUS_YML)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_is_started_with_the_mounted_config() -> None:
    config = _flags("prometheus")["--config.file"]
    assert _mount_target("prometheus", "./deploy/prometheus/prometheus.yml") == config


def _job(prometheus: dict[str, Any], name: str) -> dict[str, Any]:
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == name]
    return job


def test_prometheus_scrapes_exactly_the_worker_and_the_collector(
    prometheus: dict[str, Any],
) -> None:
    from streams.stack.configs import COLLECTOR_JOB, PROMETHEUS_JOB

    jobs = [j["job_name"] for j in prometheus["scrape_configs"]]
    assert sorted(jobs) == sorted([PROMETHEUS_JOB, COLLECTOR_JOB]), "the local stack's jobs"


def test_prometheus_scrapes_the_worker_every_5s(prometheus: dict[str, Any]) -> None:
    from streams.stack.configs import PROMETHEUS_JOB

    job = _job(prometheus, PROMETHEUS_JOB)
    port = _env("worker")["SALEWATCH_METRICS_PORT"]
    assert job["job_name"] == PROMETHEUS_JOB, "rules select the job the local stack uses"
    assert job["static_configs"] == [{"targets": [f"worker:{port}"]}]
    assert job["scrape_interval"] == prometheus["global"]["scrape_interval"] == "5s"
    assert f"127.0.0.1:{port}:{port}" in SERVICES["worker"]["ports"]


def test_prometheus_scrapes_the_collector_every_5s(prometheus: dict[str, Any]) -> None:
    from streams.stack.configs import COLLECTOR_JOB

    job = _job(prometheus, COLLECTOR_JOB)
    port = _env("collector")["SALEWATCH_COLLECTOR_PORT"]
    assert job["static_configs"] == [{"targets": [f"collector:{port}"]}]
    assert job["scrape_interval"] == "5s"
    assert _env("collector")["SALEWATCH_COLLECTOR_HOST"] == "0.0.0.0", "reachable by Prometheus"
    assert SERVICES["collector"]["command"] == ["collect"]
    assert f"127.0.0.1:{port}:{port}" in SERVICES["collector"]["ports"]


def test_prometheus_loads_the_repo_rules(prometheus: dict[str, Any]) -> None:
    rules_dir = _mount_target("prometheus", "./alerts")
    assert prometheus["rule_files"] == [f"{rules_dir}/*.rules.yml"]


def test_prometheus_alerts_the_alertmanager_service(prometheus: dict[str, Any]) -> None:
    (alertmanager,) = prometheus["alerting"]["alertmanagers"]
    assert alertmanager["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    config = _flags("alertmanager")["--config.file"]
    assert _mount_target("alertmanager", "./alerts/alertmanager.yml") == config


# ----------------------------------------------------------------------------- Grafana


def _provisioning(kind: str) -> dict[str, Any]:
    (path,) = sorted((GRAFANA_PROVISIONING / kind).glob("*.yml"))
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert loaded["apiVersion"] == 1
    return loaded


def _datasource(uid: str) -> dict[str, Any]:
    sources: list[dict[str, Any]] = _provisioning("datasources")["datasources"]
    (source,) = [d for d in sources if d["uid"] == uid]
    return source


@pytest.mark.parametrize("kind", ["datasources", "dashboards"])
def test_grafana_mounts_the_provisioning(kind: str) -> None:
    host = f"./deploy/grafana/provisioning/{kind}"
    assert _mount_target("grafana", host) == f"/etc/grafana/provisioning/{kind}"


def test_datasource_uids_are_exactly_the_ones_dashboards_use() -> None:
    uids = sorted(d["uid"] for d in _provisioning("datasources")["datasources"])
    assert uids == ["clickhouse", "prometheus"]


def test_prometheus_datasource() -> None:
    source = _datasource("prometheus")
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert source["jsonData"]["timeInterval"] == "5s"


def _clickhouse_users() -> dict[str, ET.Element]:
    root = ET.parse(CLICKHOUSE_USERS).getroot()
    return {user.tag: user for user in root.find("users") or []}


def test_clickhouse_datasource_uses_the_read_only_user() -> None:
    source = _datasource("clickhouse")
    assert source["type"] == "grafana-clickhouse-datasource"
    data = source["jsonData"]
    assert (data["host"], data["port"], data["protocol"]) == ("clickhouse", 9000, "native")
    assert data["defaultDatabase"] == _env("worker")["SALEWATCH_CLICKHOUSE_DATABASE"]

    user = _clickhouse_users()[data["username"]]
    root = ET.parse(CLICKHOUSE_USERS).getroot()
    profile = root.find(f"profiles/{user.findtext('profile')}")
    assert profile is not None and profile.findtext("readonly") == "2"

    # expanded by Grafana from its own environment
    assert _host_var(source["secureJsonData"]["password"]) in _env("grafana")


def test_dashboards_provider_reads_the_mounted_dashboards() -> None:
    (provider,) = _provisioning("dashboards")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == _mount_target("grafana", "./dashboards")
    assert provider["allowUiUpdates"] is False, "dashboards are generated from code"


# -------------------------------------------------------------------------- ClickHouse


def test_clickhouse_users_are_mounted_and_the_entrypoint_keeps_its_hands_off() -> None:
    assert _mount_target("clickhouse", "./deploy/clickhouse/users.xml").startswith(
        "/etc/clickhouse-server/users.d/"
    )
    assert _env("clickhouse")["CLICKHOUSE_SKIP_USER_SETUP"] == "1"


@pytest.mark.parametrize("user", sorted(_clickhouse_users()))
def test_clickhouse_password_comes_from_the_environment(user: str) -> None:
    element = _clickhouse_users()[user]
    password = element.find("password")
    if user == "default":  # no password: reachable from inside the container only
        assert password is None
        networks = [str(ip.text) for ip in element.iterfind("networks/ip")]
        assert sorted(networks) == ["127.0.0.1", "::1"]
        return
    assert password is not None and not (password.text or "").strip()
    assert password.get("from_env") in _env("clickhouse")


def _server_password_source(user: str) -> str:
    """Host variable the ClickHouse server reads ``user``'s password from."""
    password = _clickhouse_users()[user].find("password")
    assert password is not None
    return _host_var(_env("clickhouse")[password.get("from_env", "")])


def test_app_user_exists_in_clickhouse_with_the_same_password() -> None:
    app = _env("worker")
    user = app["SALEWATCH_CLICKHOUSE_USER"]
    assert _clickhouse_users()[user].findtext("profile") == "default", "migrate runs DDL"
    assert _host_var(app["SALEWATCH_CLICKHOUSE_PASSWORD"]) == _server_password_source(user)


def test_grafana_reads_clickhouse_with_the_same_password() -> None:
    user = _datasource("clickhouse")["jsonData"]["username"]
    grafana = _env("grafana")["CLICKHOUSE_GRAFANA_PASSWORD"]
    assert _host_var(grafana) == _server_password_source(user)


def test_urls_in_provisioning_point_at_compose_services() -> None:
    for source in _provisioning("datasources")["datasources"]:
        if "url" in source:
            assert urlsplit(source["url"]).hostname in SERVICES


# ------------------------------------------------------------------- profile `cluster`


def test_cluster_services_are_only_in_the_cluster_profile() -> None:
    """``docker compose up`` stays the single-node stack; ``--profile cluster`` adds these."""
    profiled = {name for name, service in SERVICES.items() if "profiles" in service}
    assert profiled == CLUSTER_SERVICES
    assert all(SERVICES[name]["profiles"] == ["cluster"] for name in profiled)


def test_cluster_is_two_shards_of_two_replicas_named_like_the_local_one() -> None:
    """Same cluster name, shard and replica macros as ``stack up --clickhouse-cluster 2x2``."""
    from streams.stack.cluster import DEFAULT_CLUSTER

    root = ET.parse(CLUSTER_XML).getroot()
    (cluster,) = list(root.find("remote_servers") or [])
    assert cluster.tag == DEFAULT_CLUSTER
    shards = [
        [replica.findtext("host") for replica in shard.findall("replica")]
        for shard in cluster.findall("shard")
    ]
    assert shards == [CLUSTER_NODES[:2], CLUSTER_NODES[2:]]
    assert all(s.findtext("internal_replication") == "true" for s in cluster.findall("shard"))
    for shard_number, hosts in enumerate(shards, start=1):
        for replica_number, host in enumerate(hosts, start=1):
            env = _env(host)
            assert env["CH_SHARD"] == f"{shard_number:02d}"
            assert env["CH_REPLICA"] == f"s{shard_number}r{replica_number}"
            assert SERVICES[host]["hostname"] == host
    assert root.findtext("zookeeper/node/host") == "clickhouse-keeper"


@pytest.mark.parametrize("service", ["migrate-cluster", "worker-cluster"])
def test_cluster_app_uses_the_cluster(service: str) -> None:
    from streams.stack.cluster import DEFAULT_CLUSTER

    env = _env(service)
    assert env["SALEWATCH_CLICKHOUSE_CLUSTER"] == DEFAULT_CLUSTER
    assert env["SALEWATCH_CLICKHOUSE_HOST"] == CLUSTER_NODES[0]


def test_cluster_worker_has_its_own_consumer_group() -> None:
    """Beside the single-node worker, both pipelines must see every event."""
    assert _env("worker-cluster")["SALEWATCH_APP_ID"] != Settings().app_id
