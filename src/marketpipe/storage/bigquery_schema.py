"""BigQuery schema management: the warm tables of DESIGN.md as versioned migrations.

The same tables and columns as the DuckDB and PostgreSQL warm stores, partitioned by day and
clustered by exchange and symbol where they grow with time. BigQuery DDL is not
transactional, so every statement is idempotent (`CREATE TABLE IF NOT EXISTS`) and a
migration is recorded in `schema_migrations` only after all its statements ran: a start that
died half-way simply runs the rest again.
"""

from dataclasses import dataclass

import pyarrow as pa

from marketpipe.model.schemas import (
    ALERT_SCHEMA,
    CANDLE_SCHEMA,
    MARKET_SNAPSHOT_SCHEMA,
    QUOTE_SCHEMA,
    TRADE_SCHEMA,
)

_TYPES = {
    pa.string(): "STRING",
    pa.int64(): "INT64",
    pa.float64(): "FLOAT64",
    pa.bool_(): "BOOL",
    pa.binary(): "BYTES",
}

POSITION_COLUMNS = {
    "exchange": "STRING", "symbol": "STRING", "last_trade_id": "INT64",
    "max_ts_event": "INT64", "id_ranges": "STRING", "gaps_found": "INT64",
    "gaps_filled": "INT64", "trades_seen": "INT64", "duplicates": "INT64",
}  # fmt: skip
DEAD_LETTER_COLUMNS = {
    "ts": "TIMESTAMP", "source": "STRING", "error": "STRING", "raw": "BYTES", "context": "STRING"
}  # fmt: skip


# The restore needs each open candle's first and last trade event times (the order keys of the
# candle monoid); PostgreSQL joins them from trades_recent, BigQuery keeps them on the row.
CANDLE_ORDER_KEYS = ("first_ts_event", "last_ts_event")


def bq_type(field: pa.Field) -> str:
    if pa.types.is_timestamp(field.type):
        return "TIMESTAMP"
    return _TYPES[field.type]


def columns_of(schema: pa.Schema) -> dict[str, str]:
    return {f.name: bq_type(f) for f in schema}


CANDLE_COLUMNS = {**columns_of(CANDLE_SCHEMA), **dict.fromkeys(CANDLE_ORDER_KEYS, "INT64")}


def _table(
    dataset: str, name: str, columns: dict[str, str], *, day: str | None = None,
    cluster: tuple[str, ...] = (),
) -> str:  # fmt: skip
    ddl = ", ".join(f"`{c}` {t}" for c, t in columns.items())
    sql = f"CREATE TABLE IF NOT EXISTS `{dataset}.{name}` ({ddl})"
    if day:
        sql += f" PARTITION BY DATE({day})"
    if cluster:
        sql += f" CLUSTER BY {', '.join(f'`{c}`' for c in cluster)}"
    return sql


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def migrations(dataset: str) -> list[Migration]:
    """Every migration, oldest first; `dataset` is `project.dataset`."""
    series = ("exchange", "symbol")
    return [
        Migration(
            1,
            "warm_store",
            (
                _table(
                    dataset,
                    "trades_recent",
                    columns_of(TRADE_SCHEMA),
                    day="ts_event",
                    cluster=series,
                ),
                _table(
                    dataset, "late_trades", columns_of(TRADE_SCHEMA), day="ts_event", cluster=series
                ),
                _table(
                    dataset,
                    "candles",
                    CANDLE_COLUMNS,
                    day="open_time",
                    cluster=("exchange", "symbol", "interval"),
                ),
                _table(dataset, "alerts", columns_of(ALERT_SCHEMA), day="ts", cluster=series),
                _table(dataset, "quotes", columns_of(QUOTE_SCHEMA)),
                _table(dataset, "positions", POSITION_COLUMNS),
                _table(dataset, "dead_letters", DEAD_LETTER_COLUMNS, day="ts"),
                # One row per applied batch: the apply's last step, so "committed but not in
                # batches" is exactly what a restart must redo.
                _table(
                    dataset,
                    "batches",
                    {
                        "batch_id": "STRING",
                        "committed_at": "TIMESTAMP",
                        "trades": "INT64",
                        "candles": "INT64",
                    },
                ),
                # Kafka positions and ownership: the commit point of every batch.
                _table(
                    dataset,
                    "consumer_offsets",
                    {
                        "consumer_group": "STRING",
                        "topic": "STRING",
                        "kafka_partition": "INT64",
                        "next_offset": "INT64",
                        "epoch": "INT64",
                        "batch_id": "STRING",
                        "updated_at": "TIMESTAMP",
                    },
                ),
            ),
        ),
        # Market snapshots (issue 13), as in PostgreSQL's migration 0004; BigQuery has no
        # unique keys, so insert-or-ignore is a MERGE on (source, asset, vs_currency,
        # ts_source) with one writer (the archive role).
        Migration(
            2,
            "market_snapshots",
            (
                _table(
                    dataset,
                    "market_snapshots",
                    columns_of(MARKET_SNAPSHOT_SCHEMA),
                    day="ts_source",
                    cluster=("source", "asset"),
                ),
            ),
        ),
    ]
