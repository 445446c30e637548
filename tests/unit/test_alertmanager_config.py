"""alerts/alertmanager.yml: valid, routes by severity, and PipelineStalled mutes business alerts.

Checked with the real tools of the Debian package ``prometheus-alertmanager`` (``amtool``
and the ``prometheus-alertmanager`` daemon): routing with ``amtool config routes test``,
inhibition with a throw-away Alertmanager on a free loopback port, because amtool cannot
evaluate inhibit rules. Missing binaries fail the tests: they are part of the toolchain
(``apt-get install prometheus-alertmanager``), not optional.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import yaml

from tests.integration.support import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "alerts" / "alertmanager.yml"
INSTALL_HINT = "install it with `apt-get install prometheus-alertmanager`"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` not found on PATH; {INSTALL_HINT}", pytrace=False)
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return loaded


def test_amtool_accepts_the_config() -> None:
    result = _run(_tool("amtool"), "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        pytest.param({"severity": "page"}, "pager", id="page-goes-to-pager"),
        pytest.param({"severity": "ticket"}, "tickets", id="ticket-goes-to-tickets"),
        pytest.param(
            {"alertname": "Watchdog", "severity": "heartbeat", "category": "pipeline"},
            "heartbeat",
            id="watchdog-goes-to-the-heartbeat",
        ),
        pytest.param(
            {"alertname": "PaymentSuccessRateLow", "severity": "page", "category": "business"},
            "pager",
            id="business-page-still-pages",
        ),
        pytest.param(
            {"alertname": "DeadLettersHigh", "severity": "ticket", "channel": "app"},
            "tickets",
            id="extra-labels-do-not-change-the-route",
        ),
        pytest.param({"alertname": "NoSeverity"}, "tickets", id="missing-severity-is-not-dropped"),
        pytest.param({"severity": "info"}, "tickets", id="unknown-severity-is-not-dropped"),
    ],
)
def test_routes_by_severity(labels: dict[str, str], receiver: str) -> None:
    result = _run(
        _tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={receiver}",
        *(f"{name}={value}" for name, value in labels.items()),
    )
    assert result.returncode == 0, f"{labels} -> {result.stdout.strip()}, expected {receiver}"
    assert result.stdout.split() == [receiver]


def test_grouping_and_timing(config: dict[str, Any]) -> None:
    route = config["route"]
    # one incident, one page: every series of one alert (channels, topics, methods) together
    assert route["group_by"] == ["alertname"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "15s",
        "1m",
        "4h",
    )
    # page and ticket routes inherit grouping and timing; an override would silently change
    # paging. Only the heartbeat repeats every minute (the dead-man's switch expects it).
    for child in route["routes"]:
        if child["receiver"] == "heartbeat":
            assert child["repeat_interval"] == "1m"
            assert child["matchers"] == ['severity="heartbeat"']
        else:
            assert set(child) == {"matchers", "receiver"}, child


def test_inhibitions(config: dict[str, Any]) -> None:
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['alertname="PipelineStalled"'],
            "target_matchers": ['category="business"'],
        },
        {
            "source_matchers": ['alertname="PipelineLagHigh"'],
            "target_matchers": ['category="business"'],
        },
        {
            "source_matchers": ['alertname="SalePageSpeedDegraded"'],
            "target_matchers": ['alertname="SaleInteractionSlow"'],
            "equal": ["page_type"],
        },
        {
            "source_matchers": ['alertname="SalePaymentFailureSpike"'],
            "target_matchers": ['alertname="SalePaymentFailureElevated"'],
            "equal": ["payment_method"],
        },
    ]


@pytest.mark.parametrize("receiver", ["pager", "tickets"])
def test_receivers_are_local_webhooks_without_secrets(
    config: dict[str, Any], receiver: str
) -> None:
    (entry,) = [r for r in config["receivers"] if r["name"] == receiver]
    assert set(entry) == {"name", "webhook_configs"}, "only webhooks, no inline integrations"
    for webhook in entry["webhook_configs"]:
        url = urlsplit(webhook["url"])
        assert webhook["url"] == "http://127.0.0.1:5001/alerts"
        assert not (url.username or url.password or url.query), "credentials in the URL"
        assert "http_config" not in webhook, "credentials belong in a mounted file"
        assert webhook["send_resolved"] is True


def test_heartbeat_receiver_is_a_local_webhook(config: dict[str, Any]) -> None:
    (entry,) = [r for r in config["receivers"] if r["name"] == "heartbeat"]
    (webhook,) = entry["webhook_configs"]
    assert webhook["url"] == "http://127.0.0.1:5001/heartbeat"
    # a dead-man's switch only needs the beat; "resolved" never happens for vector(1)
    assert webhook["send_resolved"] is False


# ------------------------------------------------------------------ a real Alertmanager


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Alertmanager running alerts/alertmanager.yml; yields its base URL."""
    binary = _tool("prometheus-alertmanager")
    state = tmp_path_factory.mktemp("alertmanager")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with (state / "log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={CONFIG}",
                f"--storage.path={state}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # no gossip port: nothing else to collide with
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"alertmanager exited: {(state / 'log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"alertmanager not ready in 15 s: {(state / 'log').read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _post_alert(base: str, labels: dict[str, str]) -> None:
    body = json.dumps([{"labels": labels, "annotations": {"summary": "test"}}]).encode()
    request = urllib.request.Request(
        f"{base}/api/v2/alerts",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


def _state_of(base: str, alertname: str) -> str:
    query = urlencode({"filter": f'alertname="{alertname}"'})
    with urllib.request.urlopen(f"{base}/api/v2/alerts?{query}", timeout=5) as resp:
        alerts = json.load(resp)
    assert len(alerts) == 1, alerts
    state: str = alerts[0]["status"]["state"]
    return state


def _wait_for_state(base: str, alertname: str, expected: str, within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while (state := _state_of(base, alertname)) != expected:
        assert time.monotonic() < deadline, f"{alertname} is {state}, expected {expected}"
        time.sleep(0.1)


def test_inhibition_in_a_running_alertmanager(alertmanager: str) -> None:
    business = {"alertname": "OrdersDropped", "severity": "page", "category": "business"}
    technical = {"alertname": "DeadLettersHigh", "severity": "ticket", "category": "pipeline"}
    _post_alert(alertmanager, business)
    _post_alert(alertmanager, technical)
    # before the pipeline stalls, the business alert is a real signal and must notify
    _wait_for_state(alertmanager, "OrdersDropped", "active")

    _post_alert(alertmanager, {"alertname": "PipelineStalled", "severity": "page"})

    _wait_for_state(alertmanager, "OrdersDropped", "suppressed")
    _wait_for_state(alertmanager, "PipelineStalled", "active")
    assert _state_of(alertmanager, "DeadLettersHigh") == "active"


def _groups(base: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts/groups", timeout=5) as resp:
        groups: list[dict[str, Any]] = json.load(resp)
    return groups


def test_one_incident_is_one_notification_group(alertmanager: str) -> None:
    """A traffic drop in three channels and a stall of two topics: two groups (one per
    alert), each holding all its series; not one page per channel or topic. (No category
    label: the module's Alertmanager already holds a PipelineStalled that mutes business.)"""
    for channel in ("app", "web", "mini_program"):
        _post_alert(
            alertmanager,
            {
                "alertname": "SaleActiveUsersDrop",
                "channel": channel,
                "severity": "page",
            },
        )
    for topic in ("clicks", "carts"):
        _post_alert(
            alertmanager,
            {"alertname": "PipelineStalledTest", "topic": topic, "severity": "page"},
        )

    def pager_groups() -> list[tuple[str | None, int]]:
        return [
            (g["labels"].get("alertname"), len(g["alerts"]))
            for g in _groups(alertmanager)
            if g["receiver"]["name"] == "pager"
        ]

    pager = wait_until(
        pager_groups,
        lambda groups: (
            ("SaleActiveUsersDrop", 3) in groups and ("PipelineStalledTest", 2) in groups
        ),
        10,
        "both incidents grouped",
    )
    names = [name for name, _ in pager]
    assert names.count("SaleActiveUsersDrop") == names.count("PipelineStalledTest") == 1, pager


def test_a_payment_page_mutes_the_ticket_of_its_own_method_only(alertmanager: str) -> None:
    # no category label, as above
    for method in ("alipay", "card"):
        _post_alert(
            alertmanager,
            {
                "alertname": "SalePaymentFailureElevated",
                "payment_method": method,
                "severity": "ticket",
            },
        )
    _post_alert(
        alertmanager,
        {
            "alertname": "SalePaymentFailureSpike",
            "payment_method": "alipay",
            "severity": "page",
            "category": "business",
        },
    )

    def states() -> dict[str, str]:
        query = urlencode({"filter": 'alertname="SalePaymentFailureElevated"'})
        with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts?{query}", timeout=5) as resp:
            return {a["labels"]["payment_method"]: a["status"]["state"] for a in json.load(resp)}

    wait_until(
        states,
        lambda got: got == {"alipay": "suppressed", "card": "active"},
        10,
        "the alipay ticket muted by its page, card's not",
    )
