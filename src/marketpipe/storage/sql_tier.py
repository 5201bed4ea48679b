"""The warm tier's reads over SQL, written once for DuckDB (embedded), PostgreSQL and BigQuery
(cluster): the same tables and queries, spelled in each engine's dialect, plus the coverage cache
the router asks of a warm tier."""

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.records import Alert, Candle, MarketSnapshot, Position, Quote, Trade
from marketpipe.model.schemas import (
    ALERT_SCHEMA,
    CANDLE_SCHEMA,
    MARKET_SNAPSHOT_SCHEMA,
    QUOTE_SCHEMA,
    TRADE_SCHEMA,
)
from marketpipe.storage.sql_dialect import SqlDialect
from marketpipe.storage.tiers import Series, TimeRange

# kind -> (table, time column)
_COVERAGE_OF = {"candles": ("candles", "open_time"), "trades": ("trades_recent", "ts_event"),
                "alerts": ("alerts", "ts")}  # fmt: skip
_COUNTED = ("trades_recent", "late_trades", "candles", "alerts", "dead_letters")
_MARKET_KEY = "source, asset, vs_currency"


def position_from_row(row: Sequence[Any]) -> Position:
    """A stored position: exchange, symbol, last_trade_id, max_ts_event, id_ranges (JSON),
    gaps_found, gaps_filled, trades_seen, duplicates, in that order."""
    return Position(
        exchange=row[0], symbol=row[1], last_trade_id=row[2], max_ts_event=row[3],
        id_ranges=[tuple(r) for r in msgspec.json.decode(row[4])], gaps_found=row[5],
        gaps_filled=row[6], trades_seen=row[7], duplicates=row[8],
    )  # fmt: skip


class SqlReads:
    """Reads of the warm schema, shared by the warehouses and their router tiers. Exchange or
    symbol None (or "") means every one. Subclasses say how a query runs (`_rows`)."""

    dialect: SqlDialect

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def candles(
        self, exchange: str | None, symbol: str | None, interval: str,
        start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        d = self.dialect
        where, params = d.filters(exchange, symbol, start, end, "open_time")
        where.append(f"{d.interval} = {d.param}")
        params.append(interval)
        sql = f"SELECT {d.select_list(CANDLE_SCHEMA)} FROM candles WHERE {' AND '.join(where)}"
        query = d.ordered(sql, ["open_time", "exchange", "symbol"], params, limit, newest_first)
        return [Candle(*row) for row in self._rows(*query)]

    def trades(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Trade]:  # fmt: skip
        d = self.dialect
        where, params = d.filters(exchange, symbol, start, end, "ts_event")
        sql = f"SELECT {d.select_list(TRADE_SCHEMA)} FROM trades_recent WHERE {' AND '.join(where)}"
        query = d.ordered(sql, ["ts_event", "trade_id"], params, limit, newest_first)
        return [Trade(*row) for row in self._rows(*query)]

    def alerts(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[Alert]:  # fmt: skip
        d = self.dialect
        where, params = d.filters(exchange, symbol, start, end, "ts")
        if kind:
            where.append(f"kind = {d.param}")
            params.append(kind)
        sql = f"SELECT {d.select_list(ALERT_SCHEMA)} FROM alerts WHERE {' AND '.join(where)}"
        query = d.ordered(sql, ["ts", "alert_id"], params, limit, newest_first)
        return [Alert(*row) for row in self._rows(*query)]

    def quotes(self) -> list[Quote]:
        """Latest best bid/ask per symbol."""
        columns = self.dialect.select_list(QUOTE_SCHEMA)
        sql = f"SELECT {columns} FROM quotes ORDER BY exchange, symbol"
        return [Quote(*row) for row in self._rows(sql, [])]

    def latest_market_snapshots(self) -> list[MarketSnapshot]:
        """The newest snapshot (largest ts_source) per (source, asset, vs_currency); the key
        includes ts_source, so there is exactly one."""
        columns = self.dialect.select_list(MARKET_SNAPSHOT_SCHEMA)
        sql = (
            f"SELECT {', '.join(MARKET_SNAPSHOT_SCHEMA.names)} FROM ("
            f"SELECT {columns}, row_number() OVER "
            f"(PARTITION BY {_MARKET_KEY} ORDER BY ts_source DESC) AS newest "
            f"FROM market_snapshots) latest WHERE newest = 1 ORDER BY {_MARKET_KEY}"
        )
        return [MarketSnapshot(*row) for row in self._rows(sql, [])]

    def market_snapshots(
        self, asset: str | None, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[MarketSnapshot]:  # fmt: skip
        """Snapshots of one asset (None or "": every one) with ts_source in `[start, end)`,
        oldest first, by (ts_source, source, asset, vs_currency)."""
        d = self.dialect
        where, params = d.filters(None, None, start, end, "ts_source")
        if asset:
            where.append(f"asset = {d.param}")
            params.append(asset)
        columns = d.select_list(MARKET_SNAPSHOT_SCHEMA)
        sql = f"SELECT {columns} FROM market_snapshots WHERE {' AND '.join(where)}"
        order = ["ts_source", "source", "asset", "vs_currency"]
        query = d.ordered(sql, order, params, limit, newest_first)
        return [MarketSnapshot(*row) for row in self._rows(*query)]

    def counts(self) -> dict[str, int]:
        sql = " UNION ALL ".join(f"SELECT '{n}', count(*) FROM {n}" for n in _COUNTED)
        return {str(name): int(n) for name, n in self._rows(sql, [])}

    def last_commit_age_s(self) -> float | None:
        newest = self.dialect.us_from_ts.format("max(committed_at)")
        value = self._rows(f"SELECT {newest} FROM batches", [])[0][0]
        return None if value is None else time.time() - value / 1e6


class SqlWarmTier(SqlReads):
    """A warm store behind the `Tier` protocol. Coverage is cached briefly: every API request
    asks for it. Subclasses say how a query runs (`_rows`)."""

    name = "warm"

    def __init__(self, dialect: SqlDialect, coverage_ttl_s: float = 2.0) -> None:
        self.dialect = dialect
        self.coverage_ttl_s = coverage_ttl_s
        self._coverage: dict[Series, tuple[float, TimeRange | None]] = {}

    def coverage(self, series: Series) -> TimeRange | None:
        cached = self._coverage.get(series)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.coverage_ttl_s:
            return cached[1]
        table, column = _COVERAGE_OF[series.kind]
        exchange = None if series.exchange == "*" else series.exchange
        where, params = self.dialect.filters(exchange, series.symbol, None, None, column)
        extra = 1
        if series.kind == "candles":
            where.append(f"{self.dialect.interval} = {self.dialect.param}")
            params.append(series.interval)
            extra = INTERVAL_US.get(series.interval, 0)
        us = self.dialect.us_from_ts
        low, high = self._rows(
            f"SELECT {us.format(f'min({column})')}, {us.format(f'max({column})')} FROM {table} "
            f"WHERE {' AND '.join(where)}",
            params,
        )[0]
        found = None if low is None else TimeRange(int(low), int(high) + extra)
        self._coverage[series] = (now, found)
        return found
