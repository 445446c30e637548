"""alerts/*.rules.yml: valid for promtool, unit-tested by promtool, and following the rules
of the house (names, labels, annotations, runbook anchors, declared metrics).

``promtool`` comes from the Debian ``prometheus`` package. It is part of the toolchain, not
optional: without it these tests fail with the install command instead of being skipped.

The promtool cases themselves live in ``alerts/tests/*.yml``, one file per alert, each with
a case that fires, one just under the threshold, both sides of the ``for:`` boundary, the
low-traffic case and the midnight-spike case (checked below by case name).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.metrics.defs import ALL_METRICS

REPO_ROOT = Path(__file__).resolve().parents[2]
ALERTS_DIR = REPO_ROOT / "alerts"
# hidden files are a delivery test's temporary rules (tests/integration/test_alert_delivery.py)
RULE_FILES = sorted(p for p in ALERTS_DIR.glob("*.rules.yml") if not p.name.startswith("."))
TEST_FILES = sorted((ALERTS_DIR / "tests").glob("*.yml"))
RUNBOOK = ALERTS_DIR / "runbook.md"

# issue 5: the alerts on-call must get, and nothing silently renamed
REQUIRED_ALERTS = {
    "SaleConversionDrop",
    "SalePageSpeedDegraded",
    "SaleOrdersStalled",
    "SalePaymentFailureSpike",
    "SaleTicketSurge",
    "SaleActiveUsersDrop",
    "PipelineStalled",
    "PipelineLagHigh",
    "DeadLetterRateHigh",
    "ClickHouseWritesFailing",
}
# issue 9: Core Web Vitals from real browsers and the collector that receives them
REQUIRED_ALERTS |= {
    "SaleInteractionSlow",
    "SaleLayoutUnstable",
    "BeaconCollectorDown",
    "BeaconRejectionsHigh",
}
RECORD_NAME = re.compile(r"^[a-z_]*:[a-z0-9_]+:[a-z0-9_]+$")
# a metric name, not followed by "(" (a function) and not a label/keyword position
IDENTIFIER = re.compile(r"(?<![\w:\"'.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "le",
    "inf",
    "nan",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
# series Prometheus makes itself for every scrape target
PROMETHEUS_SERIES = {"up"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "`promtool` not found on PATH; install it with `apt-get install prometheus` "
            "(Debian) — the alert rules cannot be checked without it",
            pytrace=False,
        )
    return path


def load_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


RULES = load_rules()
ALERTS = [r for r in RULES if "alert" in r]
RECORDS = [r for r in RULES if "record" in r]
RECORD_NAMES = {r["record"] for r in RECORDS}


def referenced_names(expr: str) -> set[str]:
    """Metric and recording-rule names used in a PromQL expression (label values, label
    names inside ``{}``/``by ()`` and durations are removed first)."""
    text = re.sub(r'"[^"]*"|\'[^\']*\'', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\boffset\s+[0-9a-z]+", "", text)
    names = set(IDENTIFIER.findall(text))
    return {n for n in names if n.lower() not in PROMQL_WORDS and not n[0].isdigit()}


def github_anchor(heading: str) -> str:
    anchor = heading.strip().lower()
    anchor = re.sub(r"[^\w\- ]", "", anchor)
    return anchor.replace(" ", "-")


# ------------------------------------------------------------------ promtool


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _promtool_test(path: Path) -> subprocess.CompletedProcess[str]:
    # rule_files in the test files are relative to the test file itself
    return subprocess.run(
        [promtool(), "test", "rules", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def promtool_results() -> Iterator[dict[Path, Future[subprocess.CompletedProcess[str]]]]:
    """Every file's ``promtool test rules``, started at once on all cores (the 6-hour
    baselines make some files take a minute each); each test waits for its own."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        yield {path: pool.submit(_promtool_test, path) for path in TEST_FILES}


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(
    path: Path, promtool_results: dict[Path, Future[subprocess.CompletedProcess[str]]]
) -> None:
    result = promtool_results[path].result()
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_files_exist() -> None:
    assert RULE_FILES, "no alerts/*.rules.yml"
    assert TEST_FILES, "no alerts/tests/*.yml"


# ------------------------------------------------------------------ alerts


def test_every_required_alert_exists() -> None:
    assert {a["alert"] for a in ALERTS} >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: f"{r['alert']}-{r['labels']}")
def test_alert_labels_and_annotations(rule: dict[str, Any]) -> None:
    labels, annotations = rule["labels"], rule["annotations"]
    if rule["alert"] == "Watchdog":
        # the only heartbeat: always firing, routed to the dead-man's switch
        assert labels["severity"] == "heartbeat" and rule["expr"].strip() == "vector(1)"
    else:
        assert labels.get("severity") in {"page", "ticket"}
    assert labels.get("category") in {"business", "pipeline"}
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    # the description shows the live value and, for business alerts, its baseline
    assert "$value" in annotations["description"]
    if labels["category"] == "business":
        assert "baseline" in annotations["description"]
    assert "for" in rule, "every alert waits before paging"


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: f"{r['alert']}-{r['labels']}")
def test_runbook_url_points_at_a_section_of_the_runbook(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"]
    path, _, anchor = url.partition("#")
    assert path == "alerts/runbook.md", url
    headings = re.findall(r"^#{1,6} (.+)$", RUNBOOK.read_text(encoding="utf-8"), re.M)
    assert anchor in {github_anchor(h) for h in headings}, f"no section #{anchor} in runbook.md"
    assert anchor == rule["alert"].lower(), "one section per alert, named after it"


def test_runbook_has_a_section_for_every_alert() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    for name in REQUIRED_ALERTS:
        section = text.split(f"\n## {name}\n", 1)
        assert len(section) == 2, f"runbook.md: no '## {name}' section"
        body = section[1].split("\n## ", 1)[0]
        assert "amtool silence add" in body, f"{name}: how to silence it"
        assert "```sql" in body, f"{name}: the SQL to run"


# ------------------------------------------------------------------ names


@pytest.mark.parametrize("rule", RECORDS, ids=lambda r: str(r["record"]))
def test_recording_rule_names_are_level_metric_operations(rule: dict[str, Any]) -> None:
    assert RECORD_NAME.match(rule["record"]), rule["record"]
    metric = rule["record"].split(":")[1]
    assert metric.startswith("salewatch_")


def test_recording_rules_are_unique() -> None:
    names = [r["record"] for r in RECORDS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule", RULES, ids=lambda r: str(r.get("record") or r.get("alert")))
def test_every_name_used_is_declared_or_recorded(rule: dict[str, Any]) -> None:
    for name in referenced_names(rule["expr"]):
        if ":" in name:
            assert name in RECORD_NAMES, f"{name}: no such recording rule"
        elif name not in PROMETHEUS_SERIES:
            base = name
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and name.removesuffix(suffix) in ALL_METRICS:
                    base = name.removesuffix(suffix)
            assert base in ALL_METRICS, f"{name}: not declared in streams/metrics/defs.py"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: str(r.get("record") or r.get("alert")))
def test_offsets_apply_to_raw_metrics_only(rule: dict[str, Any]) -> None:
    """A replay (salewatch backtest) evaluates rules over past data without recorded
    history: an offset on a recording rule would read nothing there."""
    for match in re.finditer(r"([\w:]+)\s*(?:\{[^}]*\})?\s*\[[^\]:]*\]\s*offset", rule["expr"]):
        assert ":" not in match.group(1), f"offset on recording rule {match.group(1)}"
    for match in re.finditer(r"([\w:]+)\s*(?:\{[^}]*\})?\s+offset", rule["expr"]):
        assert ":" not in match.group(1), f"offset on recording rule {match.group(1)}"


def test_recording_rules_only_use_rules_listed_before_them() -> None:
    """Rules of one group run in order; a rule reading a later one would see the previous
    evaluation's value (and a replay evaluating in file order would see nothing)."""
    seen: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "record" not in rule:
                    continue
                for name in referenced_names(rule["expr"]):
                    if ":" in name:
                        assert name in seen, f"{rule['record']} uses {name} before it is recorded"
                seen.add(rule["record"])


# ------------------------------------------------------------------ test coverage

CASE_KINDS = {
    "just under/over the threshold": re.compile(r"just (under|above|below|at)"),
    "low traffic": re.compile(r"low traffic"),
    "midnight spike": re.compile(r"midnight spike"),
    "for: boundary": re.compile(r"pending .* fires"),
}


def _test_cases() -> dict[str, list[tuple[str, bool, bool]]]:
    """alertname -> [(case name, fires somewhere, stays quiet somewhere)]."""
    cases: dict[str, list[tuple[str, bool, bool]]] = {}
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in doc["tests"]:
            by_alert: dict[str, list[bool]] = {}
            for check in test.get("alert_rule_test", []):
                by_alert.setdefault(check["alertname"], []).append(bool(check.get("exp_alerts")))
            for alert, fired in by_alert.items():
                cases.setdefault(alert, []).append((test["name"], any(fired), not all(fired)))
    return cases


@pytest.mark.parametrize("alert", sorted(REQUIRED_ALERTS))
def test_every_alert_has_the_required_promtool_cases(alert: str) -> None:
    cases = _test_cases().get(alert, [])
    assert any(fires for _, fires, _ in cases), f"{alert}: no case where it fires"
    for kind, pattern in CASE_KINDS.items():
        assert any(pattern.search(name) for name, _, _ in cases), f"{alert}: no {kind} case"
    spikes = [(n, f) for n, f, _ in cases if "midnight spike:" in n]
    assert spikes and not any(f for _, f in spikes), f"{alert}: the sale spike must not fire"
    boundary = [(f, q) for n, f, q in cases if CASE_KINDS["for: boundary"].search(n)]
    assert any(f and q for f, q in boundary), f"{alert}: both sides of for: in one case"


def test_job_selectors_name_jobs_that_prometheus_scrapes() -> None:
    """``up{job=…}`` of a job no config scrapes would never fire (local stack and compose)."""
    from streams.stack.configs import COLLECTOR_JOB, PROMETHEUS_JOB

    deploy = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    compose_jobs = {job["job_name"] for job in deploy["scrape_configs"]}
    assert compose_jobs == {PROMETHEUS_JOB, COLLECTOR_JOB}
    selected = {job for rule in RULES for job in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert selected, "BeaconCollectorDown selects the collector's job"
    assert selected <= compose_jobs
