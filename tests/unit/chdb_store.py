"""chdb (current ClickHouse, in-process) for unit tests: an ``Execute`` over a session, and a
migrated database.

chdb allows one data directory per process at a time: the session is closed when the
``with`` block ends (use it from a fixture).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from streams.clickhouse.migrations import (
    DEFAULT_MIGRATIONS_DIR,
    Execute,
    apply_migrations,
    discover_migrations,
)

E = TypeVar("E", bound=Callable[[str], Any])


class ChdbSession(Protocol):
    def query(self, sql: str, fmt: str = ...) -> Any: ...


def chdb_executor(session: ChdbSession) -> Execute:
    """An ``Execute`` (``streams.clickhouse.migrations``) over an in-process chdb session."""

    def execute(sql: str) -> list[list[Any]]:
        raw = session.query(sql, "JSONCompact").bytes()
        if not raw.strip():
            return []
        data: list[list[Any]] = json.loads(raw)["data"]
        return data

    return execute


@contextmanager
def migrated_chdb(
    path: Path, database: str, executor: Callable[[Any], E] = chdb_executor
) -> Iterator[E]:
    """Every migration applied to ``database`` in a chdb session at ``path``; yields
    ``executor(session)`` (default: :func:`chdb_executor`).
    Skips the test when chdb is not installed."""
    chdb_session = pytest.importorskip("chdb.session")
    session = chdb_session.Session(path=str(path))
    try:
        execute = executor(session)
        apply_migrations(execute, database, discover_migrations(DEFAULT_MIGRATIONS_DIR))
        yield execute
    finally:
        session.close()
