"""A migrated database in chdb (current ClickHouse, in-process) for unit tests.

chdb allows one data directory per process at a time: the session is closed when the
``with`` block ends (use it from a fixture).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from streams.clickhouse.migrations import (
    DEFAULT_MIGRATIONS_DIR,
    apply_migrations,
    chdb_executor,
    discover_migrations,
)

E = TypeVar("E", bound=Callable[[str], Any])


@contextmanager
def migrated_chdb(
    path: Path, database: str, executor: Callable[[Any], E] = chdb_executor
) -> Iterator[E]:
    """Every migration applied to ``database`` in a chdb session at ``path``; yields
    ``executor(session)`` (default: :func:`streams.clickhouse.migrations.chdb_executor`).
    Skips the test when chdb is not installed."""
    chdb_session = pytest.importorskip("chdb.session")
    session = chdb_session.Session(path=str(path))
    try:
        execute = executor(session)
        apply_migrations(execute, database, discover_migrations(DEFAULT_MIGRATIONS_DIR))
        yield execute
    finally:
        session.close()
