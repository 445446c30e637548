"""The cluster form of a migration: replicated local tables and Distributed tables over them.

With ``SALEWATCH_CLICKHOUSE_CLUSTER=NAME`` every migration file is applied in this form on
every node of the cluster, node by node (``streams.clickhouse.migrations``). The files stay the one
definition of the schema, and their checksums do not depend on the mode.

Translation of each statement (``{database}`` is substituted later, ``{shard}`` and
``{replica}`` are the servers' own macros):

- ``CREATE TABLE … {database}.T (…) ENGINE = XMergeTree(args) …`` becomes
  ``{database}.T_local`` with ``ReplicatedXMergeTree('/clickhouse/tables/{shard}/<db>/T_local',
  '{replica}', args)`` and ``{database}.T AS {database}.T_local ENGINE = Distributed(NAME,
  <db>, T_local, <sharding key of T>)``. The Distributed table keeps the name, so the worker,
  recovery, dashboards and every README query read and write the cluster unchanged.
- ``ALTER TABLE {database}.T …`` becomes the same ALTER of ``T_local`` (replicated: ZooKeeper
  carries it to the shard's other replicas, see :class:`Statement`) and of ``T``.
- ``CREATE MATERIALIZED VIEW … TO {database}.T AS SELECT … FROM {database}.S …`` reads
  ``S_local`` and writes ``T_local`` on each node: a view fires on the node an insert
  reaches, and its target is replicated like any other table.

Sharding keys (:data:`SHARDING_KEYS`) are chosen for correctness, not only balance:

- raw tables: ``cityHash64(event_id)``. A duplicate delivery lands on the shard that holds
  the original, so ``FINAL`` — which a Distributed table applies per shard — collapses it.
- rollups and ``window_emitters``: ``cityHash64(window_start, toString(worker))``: all rows of
  one window of one Kafka partition (``worker`` = ``pN``) live on one shard, so a window
  emitted again (by any worker) replaces its rows there, and rows stay exact when partitions
  move between workers (the key names the partition, not the process). 18.16 refuses a
  LowCardinality argument to ``cityHash64``, hence ``toString``.
- ``active_users_1m``: never inserted into directly (its view writes the local table of the
  node the clicks reach); its states merge across shards when read (``uniqCombinedMerge``).

Every table of a migration must be listed here; an unknown table is refused, so a new
migration cannot reach a cluster without a deliberate sharding key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOCAL_SUFFIX = "_local"
RAW_KEY = "cityHash64(event_id)"
ROLLUP_KEY = "cityHash64(window_start, toString(worker))"

SHARDING_KEYS: dict[str, str] = {
    "clicks_raw": RAW_KEY,
    "carts_raw": RAW_KEY,
    "orders_raw": RAW_KEY,
    "tickets_raw": RAW_KEY,
    "traffic_1m": ROLLUP_KEY,
    "funnel_1m": ROLLUP_KEY,
    "cart_events_1m": ROLLUP_KEY,
    "orders_1m": ROLLUP_KEY,
    "payment_failures_1m": ROLLUP_KEY,
    "category_sales_1m": ROLLUP_KEY,
    "page_load_1m": ROLLUP_KEY,
    "tickets_1m": ROLLUP_KEY,
    "window_emitters": ROLLUP_KEY,
    "active_users_1m": "rand()",
}

ZOOKEEPER_PATH = "/clickhouse/tables/{shard}/{database}/"

_CREATE_TABLE = re.compile(
    r"^CREATE\s+TABLE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?\{database\}\.(?P<table>\w+)\s*"
    r"(?P<columns>\(.*\))\s*ENGINE\s*=\s*(?P<engine>\w*MergeTree)\s*(?:\((?P<args>[^)]*)\))?"
    r"(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_ALTER_TABLE = re.compile(
    r"^ALTER\s+TABLE\s+\{database\}\.(?P<table>\w+)(?P<rest>\s.*)$", re.IGNORECASE | re.DOTALL
)
_CREATE_VIEW = re.compile(r"^CREATE\s+MATERIALIZED\s+VIEW\s", re.IGNORECASE)
_TABLE_REF = re.compile(r"\b(TO|FROM)\s+\{database\}\.(\w+)", re.IGNORECASE)


class ClusterSchemaError(Exception):
    """A statement has no cluster form (unknown table or statement kind)."""


@dataclass(frozen=True)
class Statement:
    """One statement to run on every node.

    ``replicated_alter`` names the local table of a replicated ``ALTER``: ZooKeeper carries
    it to the shard's other replicas, so ``migrate`` runs it on the shard's first replica
    only and on the others waits until their columns match (running it twice would fail or
    race the replication of the first).
    """

    sql: str
    replicated_alter: str | None = None


def local_name(table: str) -> str:
    return table + LOCAL_SUFFIX


def _sharding_key(table: str) -> str:
    try:
        return SHARDING_KEYS[table]
    except KeyError:
        raise ClusterSchemaError(
            f"table {table} has no sharding key: add it to "
            "streams.clickhouse.cluster_schema.SHARDING_KEYS "
            "(and say why it keeps duplicates and replaced rows on one shard)"
        ) from None


def cluster_statements(statement: str, cluster: str) -> list[Statement]:
    """The statements that apply ``statement`` (``{database}`` not substituted) on a node."""
    create = _CREATE_TABLE.match(statement)
    if create:
        table = create["table"]
        key = _sharding_key(table)
        local = local_name(table)
        ine = "IF NOT EXISTS " if create["ine"] else ""
        args = [f"'{ZOOKEEPER_PATH}{local}'", "'{replica}'"]
        if create["args"] and create["args"].strip():
            args.append(create["args"].strip())
        return [
            Statement(
                f"CREATE TABLE {ine}{{database}}.{local} {create['columns']}\n"
                f"ENGINE = Replicated{create['engine']}({', '.join(args)}){create['rest']}"
            ),
            Statement(
                f"CREATE TABLE {ine}{{database}}.{table} AS {{database}}.{local}\n"
                f"ENGINE = Distributed({cluster}, {{database}}, {local}, {key})"
            ),
        ]
    alter = _ALTER_TABLE.match(statement)
    if alter:
        table = alter["table"]
        _sharding_key(table)
        local = local_name(table)
        return [
            Statement(f"ALTER TABLE {{database}}.{local}{alter['rest']}", replicated_alter=local),
            Statement(f"ALTER TABLE {{database}}.{table}{alter['rest']}"),
        ]
    if _CREATE_VIEW.match(statement):

        def to_local(match: re.Match[str]) -> str:
            _sharding_key(match[2])
            return f"{match[1]} {{database}}.{local_name(match[2])}"

        return [Statement(_TABLE_REF.sub(to_local, statement))]
    raise ClusterSchemaError(
        f"no cluster form for statement {statement.split(chr(10))[0][:80]!r}: "
        "teach streams.clickhouse.cluster_schema.cluster_statements"
    )
