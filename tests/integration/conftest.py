"""Integration fixtures: the real local stack (started if it is not up) and isolation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams import stack
from streams.settings import Settings, load_settings
from tests.integration.support import isolated_settings, run_cli


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Settings of a running local stack; starts it when needed and then stops it again."""
    settings = load_settings()
    was_up = stack.status(settings).healthy
    stack.up(settings)
    yield settings
    if not was_up:
        stack.down(settings)


@pytest.fixture
def isolated(stack_settings: Settings) -> Iterator[Settings]:
    """Fresh topics, database (migrated) and consumer group for one test."""
    settings = isolated_settings(stack_settings)
    result = run_cli(settings, "migrate")
    assert result.returncode == 0, result.stderr
    yield settings
    from tests.integration.support import clickhouse

    client = clickhouse(settings.model_copy(update={"clickhouse_database": "default"}))
    client.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    client.disconnect()
