"""Start-up wait for Kafka: retries with clear lines, then one error naming the setting."""

from __future__ import annotations

from streams.kafka.ready import SETTING, probe_kafka, wait_for_kafka


def test_waits_until_the_broker_answers() -> None:
    answers = iter(["connection refused", "connection refused", None])
    lines: list[str] = []
    assert wait_for_kafka("h:1", 30, lines.append, probe=lambda _: next(answers)) is None
    assert len(lines) == 2
    assert all(SETTING in line and "h:1" in line for line in lines)


def test_gives_up_after_the_timeout_naming_the_setting() -> None:
    lines: list[str] = []
    problem = wait_for_kafka("h:1", 0.6, lines.append, probe=lambda _: "refused")
    assert problem is not None
    assert SETTING in problem and "refused" in problem


def test_probe_of_a_closed_port_says_why() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    problem = probe_kafka(f"127.0.0.1:{port}", timeout_s=1.0)
    assert problem is not None
