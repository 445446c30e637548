"""Grafana dashboards as code: built with grafana-foundation-sdk, committed as JSON.

``DASHBOARDS`` maps each committed file under ``dashboards/`` to the function building it:

================================  ==========================  ============================
file                              uid                         what
================================  ==========================  ============================
``dashboards/war-room.json``      ``salewatch-war-room``      sale night, everything live
``dashboards/office-screen.json`` ``salewatch-office``        four huge numbers, dark, 10 s
``dashboards/drill-down.json``    ``salewatch-drill-down``    ClickHouse raw events
================================  ==========================  ============================

uids are fixed: links, the runbook and ``salewatch dashboards push`` (create-or-update by
uid) rely on them. docker-compose provisions the JSON files
(``deploy/grafana/provisioning/dashboards/salewatch.yml``); ``salewatch dashboards
generate`` rewrites them, ``--check`` fails if they differ from the code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from streams.dashboards import drill_down, office_screen, war_room

DASHBOARDS: dict[str, Callable[[], dm.Dashboard]] = {
    "war-room.json": war_room.dashboard,
    "office-screen.json": office_screen.dashboard,
    "drill-down.json": drill_down.dashboard,
}
DEFAULT_OUT_DIR = Path(__file__).resolve().parents[2] / "dashboards"


def to_json(board: dm.Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (plain dicts and lists)."""
    data: dict[str, Any] = json.loads(json.dumps(board, cls=JSONEncoder))
    return data


def render(board: dm.Dashboard) -> str:
    """The committed file's text: sorted keys, 2-space indent, final newline."""
    return json.dumps(to_json(board), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def write_all(out_dir: Path = DEFAULT_OUT_DIR) -> list[Path]:
    """Write every dashboard into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(out_dir: Path = DEFAULT_OUT_DIR) -> list[str]:
    """Names of committed files that differ from (or are missing for) the code."""
    stale = []
    for name, text in render_all().items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale
