"""The war room shows p75 LCP, INP and CLS by page type against the Core Web Vitals lines
(issue 9), reading the recording rules the alerts use, next to the collector's beacons."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.dashboards.test_dashboards import COMMITTED, all_panels

WAR_ROOM = {p["title"]: p for p in all_panels(COMMITTED["war-room.json"])}

# title -> (expression, unit, the "good" and "poor" lines)
VITALS = [
    pytest.param(
        "Page load p75 by page type",
        "page_type:salewatch_page_load_seconds:p75_rate2m",
        "s",
        (2.5, 4.0),
        id="LCP 2.5 s / 4 s",
    ),
    pytest.param(
        "Interaction (INP) p75 by page type",
        "page_type:salewatch_web_vitals_inp_seconds:p75_rate5m",
        "s",
        (0.2, 0.5),
        id="INP 200 ms / 500 ms",
    ),
    pytest.param(
        "Layout shift (CLS) p75 by page type",
        "page_type:salewatch_web_vitals_cls:p75_rate5m",
        "none",
        (0.1, 0.25),
        id="CLS 0.1 / 0.25",
    ),
]


def steps(panel: dict[str, Any]) -> list[tuple[float | None, str]]:
    return [
        (s["value"], s["color"]) for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    ]


@pytest.mark.parametrize(("title", "expr", "unit", "lines"), VITALS)
def test_vital_panel_shows_p75_by_page_type_against_its_lines(
    title: str, expr: str, unit: str, lines: tuple[float, float]
) -> None:
    panel = WAR_ROOM[title]
    (target,) = panel["targets"]
    assert target["expr"] == expr
    assert target["legendFormat"] == "{{page_type}}"
    assert panel["fieldConfig"]["defaults"]["unit"] == unit
    good, poor = lines
    assert steps(panel) == [(None, "green"), (good, "orange"), (poor, "red")]
    custom = panel["fieldConfig"]["defaults"]["custom"]
    assert custom["thresholdsStyle"]["mode"] == "line", "the lines are drawn on the graph"


def test_vitals_share_one_row_with_the_collector_beacons() -> None:
    board = COMMITTED["war-room.json"]
    panels = board["panels"]
    titles = [p["title"] for p in panels]
    row = titles.index("Page speed from real browsers (Core Web Vitals p75)")
    following = titles[row + 1 : row + 5]
    assert following == [
        "Page load p75 by page type",
        "Interaction (INP) p75 by page type",
        "Layout shift (CLS) p75 by page type",
        "Beacons per minute by outcome",
    ]
    # one line of the grid
    assert {panels[row + i]["gridPos"]["y"] for i in range(1, 5)} == {
        panels[row + 1]["gridPos"]["y"]
    }
