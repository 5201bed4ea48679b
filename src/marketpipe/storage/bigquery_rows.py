"""A commit batch as BigQuery stages it: one Arrow table per kind of row, and how each kind
merges into its warm table (insert-or-ignore, or replace but never by an older value)."""

from collections.abc import Sequence

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Position
from marketpipe.model.schemas import (
    ALERT_SCHEMA,
    CANDLE_SCHEMA,
    MARKET_SNAPSHOT_SCHEMA,
    QUOTE_SCHEMA,
    TRADE_SCHEMA,
    to_table,
)
from marketpipe.storage import bigquery_schema as schema


class Kind:
    """One staged kind of row: its target table, columns, key and how a match is resolved."""

    def __init__(
        self, table: str, columns: dict[str, str], key: tuple[str, ...],
        replace_when: str | None = None, kept_unless_given: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.table = table
        self.columns = columns
        self.key = key
        self.replace_when = replace_when  # None: insert-or-ignore
        self.kept_unless_given = kept_unless_given  # a NULL in the new value keeps the old

    def merge(self, stage: str) -> str:
        on = " AND ".join(f"T.`{k}` = S.`{k}`" for k in self.key)
        names = ", ".join(f"`{c}`" for c in self.columns)
        values = ", ".join(f"S.`{c}`" for c in self.columns)
        sql = f"MERGE `{self.table}` T USING `{stage}` S ON {on} "
        if self.replace_when is not None:
            updates = ", ".join(
                f"`{c}` = COALESCE(S.`{c}`, T.`{c}`)" if c in self.kept_unless_given
                else f"`{c}` = S.`{c}`"
                for c in self.columns if c not in self.key
            )  # fmt: skip
            sql += f"WHEN MATCHED AND ({self.replace_when}) THEN UPDATE SET {updates} "
        return sql + f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"


# A value replaces the stored one only if it is not older: a candle only grows (trades are
# only added), then goes final, then revises; a position's counters only grow.
_CANDLE_NEWER = (
    "S.trade_count > T.trade_count OR (S.trade_count = T.trade_count AND "
    "(CAST(S.is_final AS INT64) > CAST(T.is_final AS INT64) OR "
    "(S.is_final = T.is_final AND S.revision >= T.revision)))"
)
KINDS = {
    "trades": Kind(
        "trades_recent", schema.columns_of(TRADE_SCHEMA), ("exchange", "symbol", "trade_id")
    ),
    "late": Kind(
        "late_trades", schema.columns_of(TRADE_SCHEMA), ("exchange", "symbol", "trade_id")
    ),
    "candles": Kind(
        "candles",
        schema.CANDLE_COLUMNS,
        ("exchange", "symbol", "interval", "open_time"),
        _CANDLE_NEWER,
        kept_unless_given=schema.CANDLE_ORDER_KEYS,
    ),
    "alerts": Kind("alerts", schema.columns_of(ALERT_SCHEMA), ("alert_id",)),
    "quotes": Kind(
        "quotes",
        schema.columns_of(QUOTE_SCHEMA),
        ("exchange", "symbol"),
        "S.ts_event >= T.ts_event",
    ),
    "positions": Kind(
        "positions",
        schema.POSITION_COLUMNS,
        ("exchange", "symbol"),
        "S.trades_seen + S.duplicates >= T.trades_seen + T.duplicates",
    ),
    "dead": Kind("dead_letters", schema.DEAD_LETTER_COLUMNS, ("ts", "source", "context", "raw")),
    "market": Kind(
        "market_snapshots",
        schema.columns_of(MARKET_SNAPSHOT_SCHEMA),
        ("source", "asset", "vs_currency", "ts_source"),
    ),
}


def staged_columns(kind: str) -> dict[str, str]:
    return {**KINDS[kind].columns, "_p": "INT64", "_batch": "STRING"}


def candles_table(batch: CommitBatch) -> pa.Table:
    """The batch's candles (the last value per key), each with the event times of its first
    and last trades where those trades are in this batch; NULL keeps the stored time (a
    candle's first or last trade changes only to a trade of the batch that changes it)."""
    latest = list({(c.exchange, c.symbol, c.interval, c.open_time): c
                   for c in batch.candles}.values())  # fmt: skip
    wanted = {(c.exchange, c.symbol, i) for c in latest
              for i in (c.first_trade_id, c.last_trade_id)}  # fmt: skip
    trades = batch.trades
    times: dict[tuple[str, str, int], int] = {}
    if wanted and trades.num_rows:
        # Only the few trades candles point at leave Arrow (a batch can hold 50,000).
        ids = pa.array(sorted({i for _, _, i in wanted}), pa.int64())
        named = trades.filter(pc.is_in(trades.column("trade_id"), value_set=ids))
        ts = named.column("ts_event").cast(pa.int64()).to_pylist()
        for e, s, i, t in zip(named.column("exchange").to_pylist(),
                              named.column("symbol").to_pylist(),
                              named.column("trade_id").to_pylist(), ts, strict=True):  # fmt: skip
            if (e, s, i) in wanted:
                times[(e, s, i)] = t
    table = to_table(latest, CANDLE_SCHEMA)
    first = [times.get((c.exchange, c.symbol, c.first_trade_id)) for c in latest]
    last = [times.get((c.exchange, c.symbol, c.last_trade_id)) for c in latest]
    return table.append_column("first_ts_event", pa.array(first, pa.int64())).append_column(
        "last_ts_event", pa.array(last, pa.int64())
    )


def positions_table(positions: Sequence[Position]) -> pa.Table:
    latest = list({(p.exchange, p.symbol): p for p in positions}.values())
    return pa.table(
        {
            "exchange": pa.array([p.exchange for p in latest], pa.string()),
            "symbol": pa.array([p.symbol for p in latest], pa.string()),
            "last_trade_id": pa.array([p.last_trade_id for p in latest], pa.int64()),
            "max_ts_event": pa.array([p.max_ts_event for p in latest], pa.int64()),
            "id_ranges": pa.array(
                [msgspec.json.encode(p.id_ranges).decode() for p in latest], pa.string()
            ),
            "gaps_found": pa.array([p.gaps_found for p in latest], pa.int64()),
            "gaps_filled": pa.array([p.gaps_filled for p in latest], pa.int64()),
            "trades_seen": pa.array([p.trades_seen for p in latest], pa.int64()),
            "duplicates": pa.array([p.duplicates for p in latest], pa.int64()),
        }
    )


def dead_letters_table(batch: CommitBatch) -> pa.Table:
    unique = {(d.ts, d.source, d.context, d.raw): d for d in batch.dead_letters}
    dead = list(unique.values())
    return pa.table(
        {
            "ts": pa.array([d.ts for d in dead], pa.int64()).cast(pa.timestamp("us", "UTC")),
            "source": pa.array([d.source for d in dead], pa.string()),
            "error": pa.array([d.error for d in dead], pa.string()),
            "raw": pa.array([d.raw for d in dead], pa.binary()),
            "context": pa.array([d.context for d in dead], pa.string()),
        }
    )
