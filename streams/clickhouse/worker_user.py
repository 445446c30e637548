"""The worker's own ClickHouse user: INSERT and SELECT on the tables the migrations create, no
DDL (``salewatch migrate`` creates or updates it when
``SALEWATCH_CLICKHOUSE_WORKER_PASSWORD`` is set; docs/reliability.md#security)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import SecretStr

from streams.clickhouse.migrations import Execute, Migration, MigrationError, quote
from streams.settings import ENV_PREFIX, Settings

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
    identified = f"IDENTIFIED WITH sha256_hash BY {quote(password_sha256_hex)}"
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
        f"{database}.*; INSERT on {plural(len(tables), 'table')}: {', '.join(tables)})",
    )


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
