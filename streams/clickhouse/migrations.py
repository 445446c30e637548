"""``salewatch migrate``: apply the numbered ClickHouse migrations in ``schemas/clickhouse``.

Conventions for migration files (read this before adding one):

- Name: ``NNNN_snake_case_name.sql`` (four digits), applied in version order. Numbering:
  0001–0009 raw event tables (0001–0004 are ``clicks_raw``, ``carts_raw``, ``orders_raw``,
  ``tickets_raw``; 0005–0009 are kept for later changes to them); 0010 and up for rollup
  tables and materialized views. Take the next free number in your range; two files with one
  number are refused. A file whose number is below an already applied one is still applied
  (two engineers adding 0010 and 0011 on different branches is normal).
- Never edit a migration that has been applied anywhere: its checksum is recorded in
  ``{database}.schema_migrations`` and a changed statement makes ``migrate`` refuse to run.
  Add a new migration instead. Comments and blank lines may change freely: the checksum
  covers the statements with comments stripped.
- Write every table/view name as ``{database}.name``; ``migrate`` substitutes the database
  from ``SALEWATCH_CLICKHOUSE_DATABASE``. No other ``{...}`` placeholders exist.
- Statements end with ``;``; ``--`` and ``/* */`` comments are ignored. Each statement is
  sent on its own.
- ClickHouse has no transactional DDL: a migration that failed half-way is not recorded and
  is re-run from its first statement, so make statements re-runnable (``CREATE TABLE IF NOT
  EXISTS``, ``CREATE MATERIALIZED VIEW IF NOT EXISTS``). 18.16 has no ``ADD/DROP COLUMN IF
  [NOT] EXISTS``: give each ``ALTER`` a migration of its own, so that it is never repeated.
- Every statement must run on the local ClickHouse 18.16 and on current ClickHouse (the unit
  tests apply all files with chdb). 18.16 lacks DateTime64, TTL, CODEC, window functions,
  WITH FILL, toStartOfInterval, JSONExtract, Map and ``DROP … SYNC``; use the
  ``ENGINE = X PARTITION BY … ORDER BY …`` syntax, not old-style engine arguments.

The worker's ClickHouse user (after the migrations, on every run; not a migration):

- With ``SALEWATCH_CLICKHOUSE_WORKER_PASSWORD`` set, ``migrate`` ends by making sure user
  ``SALEWATCH_CLICKHOUSE_WORKER_USER`` exists with that password and with exactly the rights
  the worker needs: ``INSERT`` on every table the migrations create (raw and rollup tables;
  a materialized view's target is among them) and ``SELECT`` on the database (recovery reads
  raw and rollup tables; the start-up check reads ``system.tables``, which lists the tables
  a user holds any privilege on). No DDL, ALTER, DROP or access management.
- Statements: ``CREATE USER IF NOT EXISTS``, ``ALTER USER … IDENTIFIED`` (the setting stays
  the one source of the password, so changing it and re-running rotates it) and one
  ``GRANT`` per privilege; all are idempotent. Only the SHA-256 of the password is sent
  (``IDENTIFIED WITH sha256_hash``); the password and its hash are never printed, logged or
  put in an error message.
- Why not a numbered migration: a user and its grants are server state, not schema of the
  database; the password cannot be in a file whose statements are checksummed and recorded;
  the grant list must follow the tables, so every new rollup would need a grant migration;
  and on a server without SQL user management the step must be skipped, which
  ``schema_migrations`` can only record dishonestly (applied, though nothing was done, so a
  later upgrade of the server never gets the user) or leave pending forever. So
  ``schema_migrations`` records schema changes only, each applied once, and this step is
  re-done (idempotently) by every ``migrate``.
- Skipped with one line, exit 0: no password set; the migrating user is the worker user;
  ClickHouse older than 20.4 (no SQL-driven access control, e.g. the local 18.16: the user
  goes in ``users.xml``); the server refuses ``CREATE USER`` because the migrating user has
  no ``access_management`` (code 497), there is no writable user directory (code 514, e.g.
  chdb) or the user is defined in ``users.xml`` (code 495: its rights are set there).

On a cluster (``SALEWATCH_CLICKHOUSE_CLUSTER``): every node listed in ``system.clusters`` is
migrated, one migration on every node that lacks it, then the next; each statement in its
cluster form (``streams.clickhouse.cluster_schema``: replicated local tables, Distributed
tables under the usual names); each node records its own ``schema_migrations``, so
``--status`` shows a half-migrated cluster and the next run finishes it.
Why not ``ON CLUSTER``: docs/scaling.md.

The Python API takes an ``execute`` callable (one SQL string in, result rows out), so the
same code drives clickhouse-driver (``client.execute``) and chdb (the unit tests'
``tests.unit.chdb_store.chdb_executor``).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.clickhouse.client import server_message

Row = Sequence[Any]
Execute = Callable[[str], Sequence[Row]]
"""Runs one SQL statement and returns its result rows (empty for DDL and INSERT)."""

DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "schemas" / "clickhouse"
MIGRATIONS_TABLE = "schema_migrations"
DATABASE_PLACEHOLDER = "{database}"

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")


class MigrationError(Exception):
    """A migration cannot be discovered, checked or applied; the message says which and why."""


class ChecksumMismatch(MigrationError):
    """An applied migration's statements differ from what was applied."""


class MigrationFailed(MigrationError):
    """A statement of a migration failed; ``__cause__`` is the engine's error."""

    def __init__(
        self,
        migration: Migration,
        statement: int,
        cause: BaseException,
        total: int | None = None,  # statements actually run (a cluster form has more)
    ) -> None:
        self.migration = migration
        self.statement = statement
        total = len(migration.statements) if total is None else total
        super().__init__(
            f"migration {migration.id} failed at statement {statement} of {total}: "
            f"{server_message(cause)}"
        )


@dataclass(frozen=True)
class Migration:
    """One migration file: its version, name and statements (``{database}`` not substituted).

    ``checksum`` is the SHA-256 of the statements, so editing comments or blank lines does
    not change it but editing any statement does.
    """

    version: int
    name: str
    path: Path
    statements: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.version:04d}_{self.name}"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(";\n".join(self.statements).encode()).hexdigest()

    def sql_for(self, database: str) -> list[str]:
        """The statements to execute against ``database``."""
        return [s.replace(DATABASE_PLACEHOLDER, database) for s in self.statements]


@dataclass(frozen=True)
class AppliedRecord:
    """A row of ``schema_migrations``: a version that was applied, and when."""

    version: int
    name: str
    checksum: str
    applied_at: str  # 'YYYY-MM-DD hh:mm:ss', UTC


@dataclass(frozen=True)
class Applied:
    """A migration applied by this run and how long its statements took."""

    migration: Migration
    seconds: float


# ---------------------------------------------------------------------------- discovery


def split_statements(sql: str) -> list[str]:
    """Split SQL text into statements on ``;``, dropping comments and empty statements.

    Quotes (``'…'``, ``"…"``, backticks, with ``\\`` and doubled-quote escapes) are
    respected, so ``;`` or ``--`` inside a string literal is kept. Each statement is returned
    with trailing whitespace and blank lines removed.
    """
    statements: list[str] = []
    current: list[str] = []

    def flush() -> None:
        lines = [line.rstrip() for line in "".join(current).splitlines()]
        text = "\n".join(line for line in lines if line).strip()
        if text:
            statements.append(text)
        current.clear()

    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end == -1:
                raise MigrationError("unterminated /* comment")
            current.append(" ")
            i = end + 2
        elif ch in "'\"`":
            j = i + 1
            while True:
                if j >= n:
                    raise MigrationError(f"unterminated {ch} quote: {sql[i : i + 40]!r}")
                if sql[j] == "\\" or (sql[j] == ch and sql.startswith(ch, j + 1)):
                    j += 2
                elif sql[j] == ch:
                    break
                else:
                    j += 1
            current.append(sql[i : j + 1])
            i = j + 1
        elif ch == ";":
            flush()
            i += 1
        else:
            current.append(ch)
            i += 1
    flush()
    return statements


def discover_migrations(path: Path = DEFAULT_MIGRATIONS_DIR) -> list[Migration]:
    """All migrations in ``path``, by version. Badly named ``.sql`` files are refused."""
    if not path.is_dir():
        raise MigrationError(f"migrations directory {path} does not exist")
    by_version: dict[int, Migration] = {}
    for file in sorted(path.glob("*.sql")):
        match = _FILE_NAME.match(file.name)
        if match is None:
            raise MigrationError(
                f"{file}: migration files are named NNNN_snake_case_name.sql (e.g. 0010_x.sql)"
            )
        try:
            statements = split_statements(file.read_text(encoding="utf-8"))
        except MigrationError as exc:
            raise MigrationError(f"{file}: {exc}") from None
        if not statements:
            raise MigrationError(f"{file}: no SQL statement in file")
        migration = Migration(int(match["version"]), match["name"], file, tuple(statements))
        if migration.version in by_version:
            other = by_version[migration.version].path.name
            raise MigrationError(
                f"two migrations numbered {migration.version:04d} ({other}, {file.name}); "
                "renumber the newer one"
            )
        by_version[migration.version] = migration
    return [by_version[v] for v in sorted(by_version)]


# ---------------------------------------------------------------------------- state


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ensure_migrations_table(execute: Execute, database: str) -> None:
    """Create the database and its ``schema_migrations`` table if missing."""
    execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    execute(
        f"CREATE TABLE IF NOT EXISTS {database}.{MIGRATIONS_TABLE} (\n"
        "    version UInt32,\n"
        "    name String,\n"
        "    checksum String,\n"
        "    applied_at DateTime('UTC')\n"
        ") ENGINE = MergeTree ORDER BY version"
    )


def read_applied(execute: Execute, database: str) -> dict[int, AppliedRecord]:
    """Applied migrations by version; empty if the database or table does not exist yet.

    Read-only, so ``--status`` and ``--dry-run`` never create anything.
    """
    rows = execute(
        "SELECT count() FROM system.tables "
        f"WHERE database = {quote(database)} AND name = {quote(MIGRATIONS_TABLE)}"
    )
    if not rows or int(rows[0][0]) == 0:
        return {}
    rows = execute(
        f"SELECT version, name, checksum, toString(applied_at) FROM {database}.{MIGRATIONS_TABLE} "
        "ORDER BY version, applied_at"
    )
    # two concurrent runs may both record a version; the last record wins
    return {
        int(v): AppliedRecord(int(v), str(name), str(checksum), str(at))
        for v, name, checksum, at in rows
    }


def check_checksums(migrations: Iterable[Migration], applied: Mapping[int, AppliedRecord]) -> None:
    """Raise :class:`ChecksumMismatch` if an applied migration's file has changed."""
    problems = []
    for m in migrations:
        record = applied.get(m.version)
        if record is not None and record.checksum != m.checksum:
            problems.append(
                f"{m.id} was applied as {record.version:04d}_{record.name} (checksum "
                f"{record.checksum[:12]}) on {record.applied_at} UTC but the file now has "
                f"checksum {m.checksum[:12]}"
            )
    if problems:
        raise ChecksumMismatch(
            "; ".join(problems) + ". Applied migrations must not change: revert the edit and "
            "put the change in a new migration (or, if two files share a number, renumber "
            "the unapplied one)"
        )


def pending(
    migrations: Sequence[Migration], applied: Mapping[int, AppliedRecord]
) -> list[Migration]:
    """Migrations not applied yet, by version, after checking the applied ones are unchanged."""
    check_checksums(migrations, applied)
    return [m for m in migrations if m.version not in applied]


def record_applied(execute: Execute, database: str, migration: Migration) -> None:
    execute(
        f"INSERT INTO {database}.{MIGRATIONS_TABLE} (version, name, checksum, applied_at) "
        f"SELECT {migration.version}, {quote(migration.name)}, "
        f"{quote(migration.checksum)}, now()"
    )


def apply_migrations(
    execute: Execute,
    database: str,
    migrations: Sequence[Migration],
    *,
    on_applied: Callable[[Applied], None] | None = None,
) -> list[Applied]:
    """Apply every pending migration in version order and record each in schema_migrations.

    Creates the database and ``schema_migrations`` first. Re-running applies nothing.
    Refuses (:class:`ChecksumMismatch`) before touching anything if an applied migration
    changed. A failing statement raises :class:`MigrationFailed`; migrations before it stay
    applied and recorded, the failing one is not recorded and is retried next run.
    ``on_applied`` is called after each migration, for progress output.
    """
    ensure_migrations_table(execute, database)
    todo = pending(migrations, read_applied(execute, database))
    done: list[Applied] = []
    for migration in todo:
        started = time.perf_counter()
        for number, statement in enumerate(migration.sql_for(database), start=1):
            try:
                execute(statement)
            except Exception as exc:
                raise MigrationFailed(migration, number, exc) from exc
        record_applied(execute, database, migration)
        result = Applied(migration, time.perf_counter() - started)
        done.append(result)
        if on_applied is not None:
            on_applied(result)
    return done
