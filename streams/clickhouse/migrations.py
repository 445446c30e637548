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
same code drives clickhouse-driver (``client.execute``) and chdb (:func:`chdb_executor`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from streams.clickhouse.client import (
    ClickHouseError,
    checked_executor,
    endpoint,
    make_client,
    probe,
    quiet_driver_logging,
    server_message,
)
from streams.clickhouse.cluster_schema import Statement, cluster_statements
from streams.settings import ENV_PREFIX, Settings, load_settings

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


def _quote(value: str) -> str:
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
        f"WHERE database = {_quote(database)} AND name = {_quote(MIGRATIONS_TABLE)}"
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


def _record(execute: Execute, database: str, migration: Migration) -> None:
    execute(
        f"INSERT INTO {database}.{MIGRATIONS_TABLE} (version, name, checksum, applied_at) "
        f"SELECT {migration.version}, {_quote(migration.name)}, "
        f"{_quote(migration.checksum)}, now()"
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
        _record(execute, database, migration)
        result = Applied(migration, time.perf_counter() - started)
        done.append(result)
        if on_applied is not None:
            on_applied(result)
    return done


# ---------------------------------------------------------------------------- cluster

REPLICATED_ALTER_WAIT_S = 60.0


@dataclass(frozen=True)
class ClusterNode:
    """One server of the cluster as ``system.clusters`` names it (shard and replica from 1)."""

    shard: int
    replica: int
    host: str
    port: int

    @property
    def name(self) -> str:
        return f"shard {self.shard} replica {self.replica} ({self.host}:{self.port})"


def cluster_nodes(execute: Execute, cluster: str) -> list[ClusterNode]:
    """The nodes of ``cluster`` (by shard, then replica); MigrationError if it is unknown."""
    rows = execute(
        "SELECT shard_num, replica_num, host_name, port FROM system.clusters "
        f"WHERE cluster = {_quote(cluster)} ORDER BY shard_num, replica_num"
    )
    if not rows:
        raise MigrationError(
            f"cluster {cluster!r} is not in this server's remote_servers "
            f"(check {ENV_PREFIX}CLICKHOUSE_CLUSTER)"
        )
    return [ClusterNode(int(s), int(r), str(h), int(p)) for s, r, h, p in rows]


def _columns(execute: Execute, database: str, table: str) -> list[tuple[str, str]]:
    rows = execute(
        "SELECT name, type FROM system.columns "
        f"WHERE database = {_quote(database)} AND table = {_quote(table)}"
    )
    return [(str(n), str(t)) for n, t in rows]


def _wait_replicated_alter(
    execute: Execute, first_replica: Execute, database: str, table: str, node: ClusterNode
) -> None:
    """Wait until ``table`` on this replica has the columns its shard's first replica has."""
    deadline = time.monotonic() + REPLICATED_ALTER_WAIT_S
    want = _columns(first_replica, database, table)
    while _columns(execute, database, table) != want:
        if time.monotonic() > deadline:
            raise MigrationError(
                f"{node.name}: the ALTER of {database}.{table} applied on the shard's first "
                f"replica did not arrive here within {REPLICATED_ALTER_WAIT_S:.0f} s "
                "(replication queue: system.replication_queue, ZooKeeper reachable?)"
            )
        time.sleep(0.2)


def apply_cluster_migrations(
    nodes: Sequence[tuple[ClusterNode, Execute]],
    database: str,
    cluster: str,
    migrations: Sequence[Migration],
    *,
    on_applied: Callable[[ClusterNode, Applied], None] | None = None,
) -> dict[ClusterNode, list[Applied]]:
    """Apply every migration in its cluster form on every node: one migration on every node
    that lacks it, then the next (not each node to the end: a replicated table's structure
    lives in ZooKeeper, and a replica creating it as of 0001 after another already altered
    it to 0005 is refused, "Table structure in ZooKeeper is too different").

    Each node records what it applied in its own (not replicated) ``schema_migrations``:
    a run that stopped half-way leaves some nodes one migration behind, which ``--status``
    shows per node and the next run finishes. Checksums are checked on every node first.
    """
    applied_on = {}
    for node, execute in nodes:
        ensure_migrations_table(execute, database)
        applied = read_applied(execute, database)
        check_checksums(migrations, applied)
        applied_on[node] = applied
    first_of_shard: dict[int, Execute] = {}
    for node, execute in nodes:
        first_of_shard.setdefault(node.shard, execute)
    done: dict[ClusterNode, list[Applied]] = {node: [] for node, _ in nodes}
    for migration in migrations:
        for node, execute in nodes:
            if migration.version in applied_on[node]:
                continue
            first = first_of_shard[node.shard]
            started = time.perf_counter()
            statements = cluster_sql(migration, database, cluster)
            for number, statement in enumerate(statements, start=1):
                try:
                    if statement.replicated_alter and first is not execute:
                        _wait_replicated_alter(
                            execute, first, database, statement.replicated_alter, node
                        )
                    else:
                        execute(statement.sql)
                except MigrationError:
                    raise
                except Exception as exc:
                    raise MigrationFailed(migration, number, exc, len(statements)) from exc
            _record(execute, database, migration)
            result = Applied(migration, time.perf_counter() - started)
            done[node].append(result)
            if on_applied is not None:
                on_applied(node, result)
    return done


def cluster_sql(migration: Migration, database: str, cluster: str) -> list[Statement]:
    """A migration's statements in cluster form, ``{database}`` substituted (for dry runs)."""
    return [
        Statement(s.sql.replace(DATABASE_PLACEHOLDER, database), s.replicated_alter)
        for sql in migration.statements
        for s in cluster_statements(sql, cluster)
    ]


# ---------------------------------------------------------------------------- worker user

SQL_ACCESS_CONTROL_SINCE = (20, 4)
"""First ClickHouse release with SQL-driven users that persist (``CREATE USER``, ``GRANT``)."""

ACCESS_DOCS = "docs/reliability.md#security"
WORKER_PASSWORD_SETTING = f"{ENV_PREFIX}CLICKHOUSE_WORKER_PASSWORD"

_ACCESS_STORAGE_READONLY = 495  # the user exists in users.xml, which SQL cannot change
_ACCESS_DENIED = 497  # the migrating user lacks access_management (or the right granted)
_NO_WRITABLE_ACCESS_STORAGE = 514  # no user_directories.local_directory (e.g. chdb)
_HIDDEN = "<hidden>"
_CREATE_TABLE = re.compile(
    r"^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?\{database\}\.(\w+)", re.IGNORECASE
)


@dataclass(frozen=True)
class WorkerUser:
    """The worker's ClickHouse user as configured; ``password`` None means "do not create"."""

    name: str
    password: SecretStr | None

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerUser:
        return cls(settings.clickhouse_worker_user, settings.clickhouse_worker_password)


@dataclass(frozen=True)
class WorkerUserResult:
    """What the worker-user step did: ``created`` is False when skipped; ``line`` says why."""

    created: bool
    line: str


class WorkerUserFailed(MigrationError):
    """A worker-user statement failed for a reason other than missing user management."""


def worker_tables(migrations: Iterable[Migration]) -> list[str]:
    """The tables the migrations create, in version order: the worker's raw and rollup tables.

    Materialized views are left out; their target tables are in the list, since depending
    on the version (and the view's SQL SECURITY) the worker's INSERT into a view's source
    table is checked against the worker's INSERT right on the target.
    """
    tables: list[str] = []
    for migration in migrations:
        for statement in migration.statements:
            match = _CREATE_TABLE.match(statement)
            if match and match[1] not in tables:
                tables.append(match[1])
    return tables


def password_sha256(password: SecretStr) -> str:
    """Hex SHA-256 of the password: what ``IDENTIFIED WITH sha256_hash BY`` takes."""
    return hashlib.sha256(password.get_secret_value().encode()).hexdigest()


def worker_user_statements(
    user: str, password_sha256_hex: str, database: str, tables: Sequence[str]
) -> list[str]:
    """The statements that give ``user`` exactly the worker's rights; each is idempotent."""
    identified = f"IDENTIFIED WITH sha256_hash BY {_quote(password_sha256_hex)}"
    return [
        f"CREATE USER IF NOT EXISTS {user} {identified}",
        f"ALTER USER {user} {identified}",
        f"GRANT SELECT ON {database}.* TO {user}",
        *(f"GRANT INSERT ON {database}.{table} TO {user}" for table in tables),
    ]


def _version(text: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def _server_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of a driver error, a :class:`ClickHouseError` or a chdb error."""
    for candidate in (exc, exc.__cause__):
        code = getattr(candidate, "code", None)
        if isinstance(code, int):
            return code
    match = re.search(r"Code: (\d+)", str(exc))
    return int(match[1]) if match else None


def ensure_worker_user(
    execute: Execute,
    worker: WorkerUser,
    *,
    server_version: str,
    migrating_user: str,
    database: str,
    tables: Sequence[str],
) -> WorkerUserResult:
    """Create or update the worker user and its grants, or say in one line why not.

    Raises :class:`WorkerUserFailed` (message free of the password and its hash) when a
    statement fails for another reason than the server lacking user management.
    """
    name = f"worker user {worker.name}"
    if worker.password is None or not worker.password.get_secret_value():
        return WorkerUserResult(
            False,
            f"{name}: skipped, {WORKER_PASSWORD_SETTING} is not set "
            "(the worker connects as SALEWATCH_CLICKHOUSE_USER)",
        )
    if worker.name == migrating_user:
        return WorkerUserResult(
            False,
            f"{name}: skipped, it is the user running migrate ({ENV_PREFIX}CLICKHOUSE_USER); "
            "run migrate as an administrator to create it",
        )
    version = _version(server_version)
    if version is not None and version < SQL_ACCESS_CONTROL_SINCE:
        since = ".".join(map(str, SQL_ACCESS_CONTROL_SINCE))
        return WorkerUserResult(
            False,
            f"{name}: skipped, ClickHouse {server_version} has no SQL user management "
            f"(CREATE USER/GRANT need {since} or later); configure the user in the server's "
            f"users.xml, see {ACCESS_DOCS}",
        )
    secret_hash = password_sha256(worker.password)
    statements = worker_user_statements(worker.name, secret_hash, database, tables)
    for number, statement in enumerate(statements, start=1):
        try:
            execute(statement)
        except Exception as exc:
            code = _server_code(exc)
            if number == 1 and code == _ACCESS_DENIED:
                return WorkerUserResult(
                    False,
                    f"{name}: skipped, ClickHouse {server_version} refuses CREATE USER to "
                    f"{migrating_user!r} (no access_management for it); enable it or create "
                    f"the user by hand, see {ACCESS_DOCS}",
                )
            if number == 1 and code == _ACCESS_STORAGE_READONLY:
                return WorkerUserResult(
                    False,
                    f"{name}: skipped, it is defined in the server's users.xml, which SQL "
                    f"cannot change: its password and rights are set there; see {ACCESS_DOCS}",
                )
            if number == 1 and code == _NO_WRITABLE_ACCESS_STORAGE:
                return WorkerUserResult(
                    False,
                    f"{name}: skipped, ClickHouse {server_version} has no writable user "
                    f"directory (user_directories.local_directory); see {ACCESS_DOCS}",
                )
            message = str(exc).replace(secret_hash, _HIDDEN)
            message = message.replace(worker.password.get_secret_value(), _HIDDEN)
            verb = " ".join(statement.split()[:2])
            raise WorkerUserFailed(
                f"{name}: statement {number} of {len(statements)} ({verb}) failed: {message}"
            ) from None
    return WorkerUserResult(
        True,
        f"{name}: up to date (password from {WORKER_PASSWORD_SETTING}; SELECT on "
        f"{database}.*; INSERT on {_plural(len(tables), 'table')}: {', '.join(tables)})",
    )


# ---------------------------------------------------------------------------- engines


class ChdbSession(Protocol):
    def query(self, sql: str, fmt: str = ...) -> Any: ...


def chdb_executor(session: ChdbSession) -> Execute:
    """An :data:`Execute` over an in-process chdb session (current ClickHouse), for tests."""

    def execute(sql: str) -> list[list[Any]]:
        raw = session.query(sql, "JSONCompact").bytes()
        if not raw.strip():
            return []
        data: list[list[Any]] = json.loads(raw)["data"]
        return data

    return execute


# ---------------------------------------------------------------------------- command


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="create/upgrade the ClickHouse schema (schemas/clickhouse/NNNN_*.sql)",
        description=(
            "Apply pending ClickHouse migrations in order and record them in "
            f"<database>.{MIGRATIONS_TABLE}. Endpoint and database come from "
            f"{ENV_PREFIX}CLICKHOUSE_HOST, _PORT, _USER, _PASSWORD, _DATABASE."
        ),
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="print pending migrations and their SQL; change nothing",
    )
    mode.add_argument(
        "--status", action="store_true", help="list applied and pending migrations; change nothing"
    )
    parser.add_argument(
        "--path",
        type=Path,
        default=DEFAULT_MIGRATIONS_DIR,
        help="directory of NNNN_name.sql files (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``salewatch migrate``; every expected failure is one line on stderr."""
    settings = load_settings()
    quiet_driver_logging()
    try:
        migrations = discover_migrations(args.path)
        version = probe(settings)
    except (MigrationError, ClickHouseError) as exc:
        _error(str(exc))
        return 1
    # DDL such as a materialized view with POPULATE may run for minutes
    client = make_client(settings, use_database=False, send_receive_timeout_s=600.0)
    execute = checked_executor(client, settings)
    database = settings.clickhouse_database
    where = f"ClickHouse {version} at {endpoint(settings)}, database {database}"
    worker = WorkerUser.from_settings(settings)
    if settings.clickhouse_cluster:
        try:
            return _run_cluster(args, settings, execute, version, migrations, worker)
        except (MigrationError, ClickHouseError) as exc:
            _error(str(exc))
            return 1
        finally:
            client.disconnect()
    try:
        if args.status:
            return _print_status(execute, where, database, migrations)
        if args.dry_run:
            return _print_dry_run(execute, where, database, migrations, worker)
        code = _apply(execute, where, database, migrations)
        result = ensure_worker_user(
            execute,
            worker,
            server_version=version,
            migrating_user=settings.clickhouse_user,
            database=database,
            tables=worker_tables(migrations),
        )
        print(result.line)
        return code
    except (MigrationError, ClickHouseError) as exc:
        _error(str(exc))
        return 1
    finally:
        client.disconnect()


def _run_cluster(
    args: argparse.Namespace,
    settings: Settings,
    execute: Execute,
    version: str,
    migrations: Sequence[Migration],
    worker: WorkerUser,
) -> int:
    """``migrate`` with ``SALEWATCH_CLICKHOUSE_CLUSTER``: every node, one after the other."""
    cluster = settings.clickhouse_cluster
    assert cluster is not None
    database = settings.clickhouse_database
    nodes = cluster_nodes(execute, cluster)
    clients = []
    executes: list[tuple[ClusterNode, Execute]] = []
    for node in nodes:
        node_settings = settings.model_copy(
            update={"clickhouse_host": node.host, "clickhouse_port": node.port}
        )
        node_client = make_client(node_settings, use_database=False, send_receive_timeout_s=600.0)
        clients.append(node_client)
        executes.append((node, checked_executor(node_client, node_settings)))
    where = f"ClickHouse {version} cluster {cluster} ({len(nodes)} nodes), database {database}"
    try:
        if args.status:
            code = 0
            for node, node_execute in executes:
                print(f"\n== {node.name}")
                code = max(code, _print_status(node_execute, where, database, migrations))
            versions = {
                node.name: max(read_applied(node_execute, database), default=0)
                for node, node_execute in executes
            }
            if len(set(versions.values())) > 1:
                print(f"\nhalf-migrated cluster: {versions}; run `salewatch migrate` to finish")
                code = max(code, 1)
            return code
        if args.dry_run:
            node, node_execute = executes[0]
            todo = pending(migrations, read_applied(node_execute, database))
            print(f"{where}: would apply on {node.name} (and each node that lacks them):")
            for migration in todo:
                print(f"\n-- {migration.id} ({migration.path})")
                for statement in cluster_sql(migration, database, cluster):
                    note = (
                        "  -- first replica of each shard only"
                        if statement.replicated_alter
                        else ""
                    )
                    print(statement.sql + ";" + note)
            return 0
        started = time.perf_counter()

        def report(node: ClusterNode, result: Applied) -> None:
            print(
                f"{node.name}: applied {result.migration.id} in {result.seconds:.2f} s", flush=True
            )

        done = apply_cluster_migrations(executes, database, cluster, migrations, on_applied=report)
        latest = max((m.version for m in migrations), default=0)
        applied = sum(len(v) for v in done.values())
        print(
            f"{where}: applied {_plural(applied, 'migration')} over the nodes in "
            f"{time.perf_counter() - started:.2f} s; every node at version {latest:04d}"
        )
        for node, node_execute in executes:
            result = ensure_worker_user(
                node_execute,
                worker,
                server_version=version,
                migrating_user=settings.clickhouse_user,
                database=database,
                tables=worker_tables(migrations),
            )
            print(f"{node.name}: {result.line}")
        return 0
    finally:
        for node_client in clients:
            node_client.disconnect()


def _error(message: str) -> None:
    print(f"salewatch migrate: error: {message}", file=sys.stderr)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _apply(execute: Execute, where: str, database: str, migrations: Sequence[Migration]) -> int:
    started = time.perf_counter()

    def report(result: Applied) -> None:
        count = len(result.migration.statements)
        print(
            f"applied {result.migration.id} ({_plural(count, 'statement')}) "
            f"in {result.seconds:.2f} s",
            flush=True,
        )

    done = apply_migrations(execute, database, migrations, on_applied=report)
    elapsed = time.perf_counter() - started
    latest = max((m.version for m in migrations), default=0)
    if done:
        print(
            f"{where}: applied {_plural(len(done), 'migration')} in {elapsed:.2f} s; "
            f"schema at version {latest:04d}"
        )
    else:
        print(f"{where}: up to date at version {latest:04d}, nothing to apply")
    return 0


def _print_dry_run(
    execute: Execute,
    where: str,
    database: str,
    migrations: Sequence[Migration],
    worker: WorkerUser,
) -> int:
    todo = pending(migrations, read_applied(execute, database))
    if not todo:
        print(f"{where}: up to date, nothing to apply")
    else:
        print(f"{where}: would apply {_plural(len(todo), 'migration')} (dry run)")
    for migration in todo:
        print(f"\n-- {migration.id} ({migration.path})")
        for statement in migration.sql_for(database):
            print(statement + ";")
    if worker.password is not None and worker.password.get_secret_value():
        print(f"\n-- worker user, unless the server has no SQL user management ({ACCESS_DOCS})")
        shown = f"<sha256 of {WORKER_PASSWORD_SETTING}>"
        for statement in worker_user_statements(
            worker.name, shown, database, worker_tables(migrations)
        ):
            print(statement + ";")
    return 0


def _print_status(
    execute: Execute, where: str, database: str, migrations: Sequence[Migration]
) -> int:
    applied = read_applied(execute, database)
    files = {m.version: m for m in migrations}
    print(where)
    print(f"{'migration':<40} {'status':<14} applied_at (UTC)")
    changed = 0
    for version in sorted(files.keys() | applied.keys()):
        migration, record = files.get(version), applied.get(version)
        if record is None:
            assert migration is not None
            print(f"{migration.id:<40} pending")
            continue
        if migration is None:
            status = "applied, no file"
        elif migration.checksum != record.checksum:
            status, changed = "CHANGED", changed + 1
        else:
            status = "applied"
        print(f"{f'{version:04d}_{record.name}':<40} {status:<14} {record.applied_at}")
    waiting = sum(1 for v in files if v not in applied)
    print(f"{len(applied)} applied, {waiting} pending")
    if changed:
        _error(
            f"{_plural(changed, 'applied migration')} changed since applied (CHANGED above); "
            "`salewatch migrate` will refuse to run"
        )
        return 1
    return 0
