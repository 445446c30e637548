"""The alerts that fired during the recap window, from Prometheus' ``ALERTS`` series.

``ALERTS{alertstate="firing"}`` exists (value 1) at every rule evaluation while an alert
fires; a firing is a run of samples with no gap longer than ``2 × step``. The range is
read at a 15 s step (Prometheus caps a range query at 11,000 points: 45 hours). When
Prometheus cannot be reached the recap says so instead of failing: the ClickHouse numbers
do not depend on it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

STEP_S = 15
MAX_POINTS = 11_000
TIMEOUT_S = 10.0
# labels that name the alert, not the firing
HIDDEN_LABELS = frozenset({"__name__", "alertstate"})


@dataclass(frozen=True)
class Firing:
    alertname: str
    labels: dict[str, str]
    starts_ms: int
    ends_ms: int

    @property
    def duration_s(self) -> int:
        return (self.ends_ms - self.starts_ms) // 1000

    def as_dict(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname,
            "labels": self.labels,
            "starts_at_ms": self.starts_ms,
            "ends_at_ms": self.ends_ms,
            "duration_s": self.duration_s,
        }


class PrometheusUnreachable(Exception):
    """Prometheus did not answer (or refused the query); ``str()`` says why."""


def firings_from_series(series: list[dict[str, Any]], step_s: int) -> list[Firing]:
    """Runs of consecutive samples of each ``ALERTS`` series (a ``query_range`` matrix)."""
    out = []
    for s in series:
        labels = {k: v for k, v in s["metric"].items() if k not in HIDDEN_LABELS}
        name = labels.pop("alertname", "?")
        times = sorted(int(float(t)) for t, _ in s["values"])
        runs = []
        start = prev = times[0]
        for t in times[1:]:
            if t - prev > 2 * step_s:
                runs.append((start, prev))
                start = t
            prev = t
        runs.append((start, prev))
        # the last sample holds until the next evaluation: a run ends one step after it
        out += [Firing(name, labels, a * 1000, (b + step_s) * 1000) for a, b in runs]
    return sorted(out, key=lambda f: (f.starts_ms, f.alertname))


def fired(prometheus_url: str, from_s: int, to_s: int) -> list[Firing]:
    """Every firing between ``from_s`` and ``to_s``; raises :class:`PrometheusUnreachable`."""
    step = max(STEP_S, -(-(to_s - from_s) // MAX_POINTS))
    params = urllib.parse.urlencode(
        {"query": 'ALERTS{alertstate="firing"}', "start": from_s, "end": to_s, "step": step}
    )
    url = f"{prometheus_url.rstrip('/')}/api/v1/query_range?{params}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            body = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise PrometheusUnreachable(f"{prometheus_url}: {exc}") from None
    if body.get("status") != "success":
        raise PrometheusUnreachable(f"{prometheus_url}: {body.get('error', body)}")
    return firings_from_series(body["data"]["result"], step)
