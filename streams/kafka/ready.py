"""Wait for the Kafka brokers at start-up, saying clearly what is wrong while waiting.

A worker started before its broker (a reboot, a rolling restart, a typo in the bootstrap
list) should neither crash with a library traceback nor wait silently: it retries with
backoff, logs one line per attempt naming ``SALEWATCH_KAFKA_BOOTSTRAP``, and gives up with
one line after ``timeout_s`` (exit code 1 in the caller).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_result,
    stop_after_delay,
    wait_exponential,
)

from streams.settings import ENV_PREFIX

SETTING = f"{ENV_PREFIX}KAFKA_BOOTSTRAP"
PROBE_TIMEOUT_S = 3.0


def probe_kafka(bootstrap: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when a broker of ``bootstrap`` answers a metadata request, else why not."""
    from kafka import KafkaAdminClient  # slow import

    timeout_ms = int(timeout_s * 1000)
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # one line from us instead of one per refused socket
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","),
            client_id="salewatch-preflight",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:  # any client failure means "not reachable yet"
        return f"{type(exc).__name__}: {exc}"
    finally:
        logger.setLevel(level)
    return None


def wait_for_kafka(
    bootstrap: str,
    timeout_s: float,
    echo: Callable[[str], None],
    probe: Callable[[str], str | None] = probe_kafka,
) -> str | None:
    """Retry ``probe`` until the broker answers (None) or ``timeout_s`` passes (the error)."""
    started = time.monotonic()

    def report(state: RetryCallState) -> None:
        problem = state.outcome.result() if state.outcome else ""
        left = timeout_s - (time.monotonic() - started)
        echo(
            f"cannot reach Kafka at {bootstrap} ({problem}); "
            f"retrying for up to {left:.0f}s more — check {SETTING}"
        )

    attempts = Retrying(
        retry=retry_if_result(lambda problem: problem is not None),
        wait=wait_exponential(multiplier=0.5, min=0.5, max=10),
        stop=stop_after_delay(timeout_s),
        before_sleep=report,
    )
    try:
        attempts(probe, bootstrap)
    except RetryError as exc:
        last = exc.last_attempt.result()
        return f"cannot reach Kafka at {bootstrap} after {timeout_s:.0f}s ({last}); check {SETTING}"
    return None
