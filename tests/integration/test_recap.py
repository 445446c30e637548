"""``salewatch recap`` on the real ClickHouse 18.16, end to end, and its page in Chromium.

Two data sets are stored in the raw tables of an isolated database: the public Taobao
sample (``../shared/data``, converted by ``streams.convert.taobao``; skipped only when
that directory is absent) and the simulated night of tests/unit/recap/test_recap.py (with the
day before, the day after and redelivered events). For each, the ``salewatch recap``
command (a subprocess, as a user runs it) writes recap.json, whose numbers must equal the
plain-Python truth (tests/recap_truth.py), and every recap query runs on 18.16. The page
is then opened in headless Debian Chromium (Playwright): no broken image, the headline
figures in the page text, a screenshot.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.clickhouse.raw_rows import RAW_COLUMNS, RAW_TABLE, raw_row
from streams.convert.taobao import convert
from streams.recap import queries
from streams.settings import Settings
from tests.integration.support import clickhouse, isolated_settings, run_cli
from tests.recap_truth import compare, truth
from tests.unit.recap.test_recap import WINDOW, simulated_days

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CSV = DATA / "taobao_user_behavior_sample.csv"
CHROMIUM = Path("/usr/bin/chromium")
# the sample's first and last second (README of the data set)
TAOBAO_FROM_S, TAOBAO_TO_S = 1511658000, 1511665812


@dataclass
class Stored:
    settings: Settings
    events: list[tuple[Any, dict[str, Any]]]
    from_s: int
    to_s: int
    compare_from_s: int


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def store(settings: Settings, events: list[tuple[Any, dict[str, Any]]]) -> None:
    rows: dict[str, list[Any]] = {}
    for offset, (topic, event) in enumerate(events):
        rows.setdefault(topic, []).append(raw_row(topic, event, 0, offset, event["ts"] // 1000))
    client = clickhouse(settings)
    try:
        for topic, batch in rows.items():
            columns = ", ".join(RAW_COLUMNS[topic])  # type: ignore[index]
            client.execute(f"INSERT INTO {RAW_TABLE[topic]} ({columns}) VALUES", batch)  # type: ignore[index]
    finally:
        client.disconnect()


def taobao() -> tuple[list[Any], int, int, int]:
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is absent (the shared data sets)")
    events = list(convert(CSV.read_text(encoding="utf-8").splitlines()))
    return events, TAOBAO_FROM_S, TAOBAO_TO_S, TAOBAO_FROM_S + 3600


def night() -> tuple[list[Any], int, int, int]:
    return simulated_days(), WINDOW.from_s, WINDOW.to_s, WINDOW.from_s - 20 * 3600


@pytest.fixture(scope="module", params=["taobao", "simulated night"])
def stored(request: pytest.FixtureRequest, stack_settings: Settings) -> Iterator[Stored]:
    events, from_s, to_s, compare_from_s = (taobao if request.param == "taobao" else night)()
    settings = isolated_settings(stack_settings)
    result = run_cli(settings, "migrate")
    assert result.returncode == 0, result.stderr
    try:
        store(settings, events)
        yield Stored(settings, events, from_s, to_s, compare_from_s)
    finally:
        admin = clickhouse(settings.model_copy(update={"clickhouse_database": "default"}))
        admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        admin.disconnect()


@pytest.fixture(scope="module")
def recapped(stored: Stored, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("recap")
    result = run_cli(
        stored.settings,
        "recap",
        "--from",
        iso(stored.from_s),
        "--to",
        iso(stored.to_s),
        "--compare-from",
        iso(stored.compare_from_s),
        "--out",
        str(out),
        "--title",
        "Recap under test",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return out, result.stderr


def test_recap_json_equals_the_truth(stored: Stored, recapped: tuple[Path, str]) -> None:
    out, progress = recapped
    recap = json.loads((out / "recap.json").read_text(encoding="utf-8"))
    assert compare(recap, truth(stored.events, stored.from_s, stored.to_s)) == []
    assert recap["orders_paid"] > 0 and recap["compare_gmv_paid"] > 0
    # the stack's Prometheus answered: a list, possibly empty (no alert in 2017 or 2026)
    assert isinstance(recap["alerts"], list)
    # the progress line, one step per line when stderr is not a terminal
    assert "recap [1/9]" in progress and "recap [9/9]" in progress


@pytest.mark.parametrize("name", sorted(queries.all_queries(0, 1)))
def test_every_recap_query_runs_on_clickhouse_18_16(stored: Stored, name: str) -> None:
    client = clickhouse(stored.settings)
    try:
        rows = client.execute(queries.all_queries(stored.from_s, stored.to_s)[name])
    finally:
        client.disconnect()
    assert rows or name == "page_speed_by_page_type", name  # Taobao has no page speed


def test_the_page_renders_in_chromium(
    stored: Stored, recapped: tuple[Path, str], tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    out, _ = recapped
    recap = json.loads((out / "recap.json").read_text(encoding="utf-8"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            # offline: any request beyond the file itself would fail the page
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto((out / "index.html").as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
            )
            text = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "recap.png"), full_page=True)
            page.emulate_media(media="print")
            page.pdf(path=str(tmp_path / "recap.pdf"))
        finally:
            browser.close()
    assert len(images) >= 3
    assert all(complete and width > 0 for _, complete, width in images), images
    assert all(not url.startswith("http") for url in requests), requests
    for figure in (
        f"¥{recap['gmv_paid']:,.2f}",
        f"{recap['orders_paid']:,}",
        f"{recap['visit_sessions']:,}",
        f"{100 * recap['conversion']:.2f} %",
        f"¥{recap['aov']:,.2f}",
        f"¥{recap['peak_minute_gmv']:,.2f}",
    ):
        assert figure in text, figure
    assert (tmp_path / "recap.png").stat().st_size > 50_000
    assert (tmp_path / "recap.pdf").stat().st_size > 10_000
