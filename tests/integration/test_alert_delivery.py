"""An alert travels Prometheus → Alertmanager → webhook on the live local stack.

A webhook receiver listens on 127.0.0.1:5001, the URL of both receivers in
alerts/alertmanager.yml. The test adds a rule file to the directory the stack's Prometheus
loads (``alerts/*.rules.yml``) and reloads Prometheus (``POST /-/reload``; the stack is
shared, so it is never restarted). The file is hidden (a leading dot: shell globs, and so
``promtool check rules alerts/*.rules.yml``, skip it; Prometheus' Go glob does not), is
removed at the end, and its rules stop matching by themselves five minutes after the test
started (``time() < deadline``), so a killed test cannot leave an alert firing. They start
matching 10 s after the reload: meanwhile Prometheus re-discovers its Alertmanagers, and an
alert sent in that gap is dropped and resent only a minute later (``rules.alert.resend-delay``).

Its two rules fire on a real scraped series (``up`` of the salewatch job, present whether
workers run or not) and carry the labels the routing looks at: ``severity="page"`` must
reach the ``pager`` receiver, ``severity="ticket"`` the ``tickets`` receiver, each within a
bounded time, with the annotations the project's rules carry. At the end the test resolves
its alerts in Alertmanager (``endsAt`` = now) instead of leaving them until they time out.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings
from tests.integration.support import wait_until

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBHOOK = ("127.0.0.1", 5001)  # alerts/alertmanager.yml
DELIVERY_TIMEOUT_S = 60.0  # reload + evaluation (~5 s) + group_wait (15 s) + delivery, margin
HEARTBEAT_TIMEOUT_S = 90.0  # repeat_interval (1 m) of the heartbeat route + group_interval
RULE_LIFETIME_S = 300
ACTIVATION_DELAY_S = 10


class Receiver(BaseHTTPRequestHandler):
    """Records every notification Alertmanager posts: (path, JSON payload)."""

    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append((self.path, json.loads(self.rfile.read(length))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass


@pytest.fixture
def webhook() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    received: list[tuple[str, dict[str, Any]]] = []
    handler = type("Handler", (Receiver,), {"received": received})
    deadline = time.monotonic() + 30
    while True:  # another test's receiver may still hold the port for a moment
        try:
            server = ThreadingHTTPServer(WEBHOOK, handler)
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                pytest.fail(f"cannot listen on {WEBHOOK[0]}:{WEBHOOK[1]}: {exc}", pytrace=False)
            time.sleep(0.5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def post(url: str, body: Any = None) -> None:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).close()


def rules_file(tag: str, active_from_s: int, active_until_s: int) -> dict[str, Any]:
    condition = (
        f'count(up{{job="salewatch"}}) > 0 and on () vector(time()) > {active_from_s}'
        f" and on () vector(time()) < {active_until_s}"
    )

    def rule(name: str, severity: str) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": condition,
            "labels": {"severity": severity, "category": "pipeline", "delivery_test": tag},
            "annotations": {
                "summary": "salewatch delivery test",
                "description": "{{ $value }} scrape targets; fired by test_alert_delivery.py",
                "runbook_url": "alerts/runbook.md#pipelinestalled",
            },
        }

    return {
        "groups": [
            {
                "name": f"salewatch-delivery-test-{tag}",
                # names unique per run: Alertmanager groups by alertname, and a group that
                # still exists from an earlier run flushes only every group_interval (1m)
                "rules": [
                    rule(f"SalewatchDeliveryTestPage_{tag}", "page"),
                    rule(f"SalewatchDeliveryTestTicket_{tag}", "ticket"),
                ],
            }
        ]
    }


def ours(received: list[tuple[str, dict[str, Any]]], tag: str) -> dict[str, dict[str, Any]]:
    """receiver name -> the first firing alert of this test it got."""
    out: dict[str, dict[str, Any]] = {}
    for _, payload in received:
        for alert in payload["alerts"]:
            if alert["labels"].get("delivery_test") == tag and alert["status"] == "firing":
                out.setdefault(payload["receiver"], alert)
    return out


def test_alert_reaches_the_webhook_through_alertmanager(
    stack_settings: Settings, webhook: list[tuple[str, dict[str, Any]]], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    started = time.time()
    checked = tmp_path / "delivery.rules.yml"
    # Right after a reload Prometheus re-discovers its Alertmanagers and drops what it
    # sends meanwhile (then resends only a minute later): start firing a little later.
    active_from = int(started) + ACTIVATION_DELAY_S
    checked.write_text(yaml.safe_dump(rules_file(tag, active_from, active_from + RULE_LIFETIME_S)))
    # never hand the shared Prometheus a file it would refuse
    check = subprocess.run(
        ["promtool", "check", "rules", str(checked)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    path = REPO_ROOT / "alerts" / f".delivery-test-{tag}.rules.yml"
    shutil.copyfile(checked, path)
    try:
        post(f"{stack_settings.prometheus_url}/-/reload")
        delivered = wait_until(
            lambda: ours(webhook, tag),
            lambda got: set(got) == {"pager", "tickets"},
            DELIVERY_TIMEOUT_S,
            "both test alerts at the webhook",
        )
        elapsed = time.time() - started
    finally:
        path.unlink(missing_ok=True)
        post(f"{stack_settings.prometheus_url}/-/reload")
        now = datetime.now(UTC).isoformat()
        post(
            f"{stack_settings.alertmanager_url}/api/v2/alerts",
            [
                {"labels": alert["labels"], "startsAt": alert["startsAt"], "endsAt": now}
                for alert in ours(webhook, tag).values()
            ],
        )

    page, ticket = delivered["pager"], delivered["tickets"]
    assert page["labels"]["alertname"] == f"SalewatchDeliveryTestPage_{tag}"
    assert page["labels"]["severity"] == "page"
    assert ticket["labels"]["alertname"] == f"SalewatchDeliveryTestTicket_{tag}"
    assert ticket["labels"]["severity"] == "ticket"
    for alert in (page, ticket):
        assert alert["annotations"]["runbook_url"] == "alerts/runbook.md#pipelinestalled"
        assert alert["annotations"]["description"].endswith("fired by test_alert_delivery.py")
        assert alert["generatorURL"].startswith(stack_settings.prometheus_url.split(":")[0])
    assert elapsed < DELIVERY_TIMEOUT_S
    # the Watchdog's heartbeat (repeated every minute) reaches its own path, alone
    wait_until(
        lambda: [body for path, body in webhook if path == "/heartbeat"],
        bool,
        HEARTBEAT_TIMEOUT_S,
        "the Watchdog at /heartbeat",
    )
    assert {path for path, _ in webhook} <= {"/alerts", "/heartbeat"}
    for path, body in webhook:
        names = {alert["labels"]["alertname"] for alert in body["alerts"]}
        assert (names == {"Watchdog"}) == (path == "/heartbeat"), (path, names)
    print(f"delivered in {elapsed:.1f} s")
