"""What leaves the simulator: ground-truth summary, invalid messages, arrays, the CLI's file."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.cli import main
from streams.cli.simulate import event_time_warnings
from streams.events.contract import MAX_BATCH_EVENTS
from streams.events.decode import REJECT_REASONS, Limits, decode_message
from streams.settings import load_settings
from streams.simulation import (
    SimConfig,
    SimEvent,
    Summary,
    generate,
    parse_time,
    summarize,
    to_messages,
)
from streams.simulation.invalid import INVALID_KINDS

DAY = parse_time("2024-11-11T10:00:00+08:00")
BASE = SimConfig(rate=30, duration_s=20 * 60, start_ms=DAY, users=3000, catalog_items=500)


@pytest.fixture(scope="module")
def stream() -> list[SimEvent]:
    return list(generate(BASE, seed=2))


@pytest.fixture(scope="module")
def with_invalid() -> list[SimEvent]:
    return list(generate(replace(BASE, invalid_rate=0.08), seed=2))


def test_summary_counts_what_the_stream_holds(stream: list[SimEvent]) -> None:
    s = summarize(stream)
    types = Counter((e.topic, e.event["event_type"]) for e in stream)
    assert s["events"] == len(stream) == sum(s["by_topic"].values())
    assert s["by_type"]["orders"]["payment_succeeded"] == s["paid"] > 0
    assert s["orders"] == types["orders", "order_created"]
    assert s["cancelled"] == types["orders", "order_cancelled"] > 0
    gmv = sum(
        round(e.event["amount"] * 100)
        for e in stream
        if e.event["event_type"] == "payment_succeeded"
    )
    assert s["gmv"] == gmv / 100
    assert sum(m.get("succeeded", 0) for m in s["payments_by_method"].values()) == s["paid"]
    funnel = list(s["funnel"].values())
    assert funnel == sorted(funnel, reverse=True) and funnel[0] == s["sessions"] > 0
    assert s["funnel"]["paid"] <= s["paid"]
    assert s["invalid"] == 0 and s["messages_by_topic"] == s["by_topic"]
    assert s["first_ts"] == stream[0].ts and s["last_ts"] == stream[-1].ts


def test_incremental_summary_equals_summarize(stream: list[SimEvent]) -> None:
    summary = Summary()
    for ev in stream:
        summary.add(ev)
    assert summary.as_dict() == summarize(stream)


def test_invalid_messages_are_extra_and_leave_the_valid_stream_unchanged(
    stream: list[SimEvent], with_invalid: list[SimEvent]
) -> None:
    assert [e for e in with_invalid if e.valid] == stream
    invalid = [e for e in with_invalid if not e.valid]
    assert 0.06 * len(stream) <= len(invalid) <= 0.10 * len(stream)
    s = summarize(with_invalid)
    assert s["invalid"] == len(invalid) and s["events"] == len(stream)
    assert sum(s["messages_by_topic"].values()) == len(with_invalid)


def test_every_invalid_message_is_rejected_for_its_expected_reason(
    with_invalid: list[SimEvent],
) -> None:
    reasons: Counter[str] = Counter()
    for ev in with_invalid:
        if ev.valid:
            continue
        assert ev.raw is not None
        decoded = decode_message(ev.raw, ev.topic, ev.ts, Limits())
        assert decoded.events == []
        assert [r.reason for r in decoded.rejected] == [ev.event["expected_reason"]]
        reasons[ev.event["expected_reason"]] += 1
    assert set(reasons) == set(INVALID_KINDS) and set(reasons) <= REJECT_REASONS


def test_one_event_per_message_by_default(stream: list[SimEvent]) -> None:
    messages = list(to_messages(stream[:500]))
    assert [m.value for m in messages] == [orjson.dumps(e.event) for e in stream[:500]]
    assert [m.key for m in messages] == [e.key for e in stream[:500]]


@pytest.mark.parametrize("batch", [2, 10, MAX_BATCH_EVENTS + 5])
def test_array_messages_carry_one_sessions_clicks_and_lose_nothing(
    with_invalid: list[SimEvent], batch: int
) -> None:
    messages = list(to_messages(with_invalid, batch))
    assert len(messages) < len(with_invalid)
    valid: list[dict[str, Any]] = []
    rejected = 0
    for msg in messages:
        parsed = orjson.loads(msg.value) if msg.value[:1] == b"[" else None
        if parsed is not None:
            assert msg.topic == "clicks" and 1 <= len(parsed) <= min(batch, MAX_BATCH_EVENTS)
            assert {e["session_id"] for e in parsed} == {msg.key}
            assert msg.events == len(parsed)
        decoded = decode_message(msg.value, msg.topic, msg.ts, Limits())
        valid += decoded.events
        rejected += len(decoded.rejected)
    assert sorted(e["event_id"] for e in valid) == sorted(
        e.event["event_id"] for e in with_invalid if e.valid
    )
    assert rejected == sum(1 for e in with_invalid if not e.valid)
    assert all(a.ts <= b.ts for a, b in pairwise(messages))


def test_cli_writes_the_stream_as_json_lines_with_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, summary_path = tmp_path / "day.jsonl", tmp_path / "summary.json"
    args = ["--rate", "20", "--duration", "3m", "--speed", "0", "--seed", "4"]
    args += ["--start", "2024-11-11T10:00:00+08:00", "--invalid-rate", "0.05"]
    code = main(["simulate", *args, "--out", str(out), "--summary-json", str(summary_path)])
    assert code == 0
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    config = SimConfig(
        rate=20,
        duration_s=180,
        start_ms=DAY,
        invalid_rate=0.05,
        regions=tuple(load_settings().regions),
    )
    expected = list(generate(config, seed=4))
    assert len(lines) == len(expected)
    for line, ev in zip(lines, expected, strict=True):
        assert line.pop("topic") == ev.topic
        if ev.valid:
            assert line == ev.event
        else:
            assert ev.raw is not None
            assert line == {"raw": ev.raw.decode()}
    summary = orjson.loads(summary_path.read_bytes())
    truth = summarize(expected)
    assert {k: summary[k] for k in truth} == orjson.loads(orjson.dumps(truth))
    assert summary["seed"] == 4 and summary["messages"] == len(lines)
    printed = capsys.readouterr().out
    assert "salewatch simulate: done" in printed and f"{truth['events']:,}" in printed
    assert "GMV" in printed and "funnel" in printed


def test_cli_paces_events_to_the_speed_and_shows_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    args = ["--rate", "5", "--duration", "150s", "--speed", "60", "--seed", "1"]
    assert main(["simulate", *args, "--out", str(tmp_path / "x.jsonl")]) == 0
    assert 2.3 <= time.monotonic() - started <= 6
    progress = [line for line in capsys.readouterr().err.splitlines() if "sim clock" in line]
    assert len(progress) >= 2
    assert "events" in progress[-1] and "/s" in progress[-1]


BAD_ARGS = [
    (["--incident", "bogus@1m+1m"], "unknown kind 'bogus'"),
    (["--incident", "payment_outage@1m+1m"], "needs :METHOD"),
    (["--duration", "soon"], "bad duration 'soon'"),
    (["--duration", "0s"], "must be > 0"),
    (["--start", "yesterday"], "expected ISO 8601"),
    (["--invalid-rate", "2"], "must be ≥ 0 and ≤ 1"),
    (["--batch", "many"], "is not an integer"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_ARGS, ids=[a[0] + " " + a[1] for a, _ in BAD_ARGS]
)
def test_cli_refuses_bad_arguments_with_exit_code_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_refuses_a_zero_rate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["simulate", "--rate", "0", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "rate must be > 0" in capsys.readouterr().err


NOW = parse_time("2026-01-01T00:00:00Z")
TIME_CASES = [
    ("10 minutes from now, as fast as possible", NOW, 600, 0.0, []),
    ("two days from now in real time", NOW, 2 * 86400, 1.0, []),
    ("two days from now as fast as possible", NOW, 2 * 86400, 0.0, ["ts_in_future"]),
    ("two days from now at a minute per second", NOW, 2 * 86400, 60.0, ["ts_in_future"]),
    ("a sale day 60 days ago", NOW - 60 * 86_400_000, 3600, 0.0, ["ts_too_old"]),
]


@pytest.mark.parametrize(
    ("start", "duration_s", "speed", "reasons"),
    [case[1:] for case in TIME_CASES],
    ids=[case[0] for case in TIME_CASES],
)
def test_kafka_runs_warn_when_the_worker_would_refuse_events_for_their_time(
    start: int, duration_s: float, speed: float, reasons: list[str]
) -> None:
    config = SimConfig(start_ms=start, duration_s=duration_s)
    warnings = event_time_warnings(config, speed, load_settings(), NOW)
    assert [r for r in ("ts_in_future", "ts_too_old") if any(r in w for w in warnings)] == reasons
