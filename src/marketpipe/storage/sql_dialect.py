"""The few places DuckDB (embedded), PostgreSQL and BigQuery (cluster) spell SQL differently,
so the warm stores and their router tiers build their read queries with one set of helpers.

Every value is a bound parameter; column names and orderings are fixed strings of the caller.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa


@dataclass(frozen=True, slots=True)
class SqlDialect:
    param: str  # a bound parameter's placeholder
    ts_from_us: str  # a µs parameter as timestamptz; `{}` is the placeholder
    us_from_ts: str  # a timestamptz column as integer µs; `{}` is the column
    interval: str = "interval"  # the candles' interval column (a reserved word in BigQuery)

    def filters(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        ts_column: str,
    ) -> tuple[list[str], list[Any]]:  # fmt: skip
        """WHERE clauses (joined with AND by the caller) and their parameters for one exchange,
        one symbol and `[start, end)` on `ts_column`; None (or "") leaves a filter out."""
        where: list[str] = ["true"]
        params: list[Any] = []
        moment = self.ts_from_us.format(self.param)
        for clause, value in (
            (f"exchange = {self.param}", exchange or None),
            (f"symbol = {self.param}", symbol or None),
            (f"{ts_column} >= {moment}", start),
            (f"{ts_column} < {moment}", end),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        return where, params

    def ordered(
        self, sql: str, order: Sequence[str], params: list[Any], limit: int | None,
        newest_first: bool = False,
    ) -> tuple[str, list[Any]]:  # fmt: skip
        """`sql` ordered by `order` (every column reversed with `newest_first`), then limited."""
        direction = " DESC" if newest_first else ""
        sql += " ORDER BY " + ", ".join(f"{column}{direction}" for column in order)
        if limit is not None:
            sql += f" LIMIT {self.param}"
            params = [*params, int(limit)]
        return sql, params

    def select_list(self, schema: pa.Schema, alias: str = "") -> str:
        """Columns of `schema`, timestamps as integer µs (the records' form)."""
        prefix = f"{alias}." if alias else ""
        names = [self.interval if f.name == "interval" else f.name for f in schema]
        return ", ".join(
            f"{self.us_from_ts.format(prefix + name)} AS {name}"
            if pa.types.is_timestamp(f.type) else f"{prefix}{name}"
            for f, name in zip(schema, names, strict=True)
        )  # fmt: skip


DUCKDB = SqlDialect(param="?", ts_from_us="make_timestamptz({}::BIGINT)", us_from_ts="epoch_us({})")
# mp_ts()/mp_us() are the exact µs conversions our PostgreSQL migrations define.
POSTGRES = SqlDialect(param="%s", ts_from_us="mp_ts({})", us_from_ts="mp_us({})")
# Positional parameters; BigQuery keeps timestamps at µs precision, so these are exact.
BIGQUERY = SqlDialect(
    param="?",
    ts_from_us="TIMESTAMP_MICROS({})",
    us_from_ts="UNIX_MICROS({})",
    interval="`interval`",
)
