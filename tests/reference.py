"""Independent reference computations: plain SQL over raw trades, sharing no pipeline code."""

import gzip
import json
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa

Row = tuple[object, ...]


def raw_trades(paths: Iterable[Path]) -> list[tuple[str, int, float, float, bool, int]]:
    """(symbol, trade_id, price, qty, buyer_is_maker, trade_time_ms) from recorded frames,
    parsed with the standard library's json, not the pipeline's parser."""
    rows = []
    for path in paths:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                _, _, body = line.partition(" ")
                frame = json.loads(body)
                if frame.get("stream", "").endswith("@trade"):
                    d = frame["data"]
                    rows.append((d["s"], d["t"], float(d["p"]), float(d["q"]), d["m"], d["T"]))
    return rows


def reference_candles(
    trades: list[tuple[str, int, float, float, bool, int]], minutes: int = 1
) -> list[Row]:
    """1m (or `minutes`) candles by SQL: open/close ordered by (trade time, trade id)."""
    con = duckdb.connect()
    columns = list(zip(*trades, strict=True)) if trades else [[]] * 6
    con.register("t", pa.table(dict(zip(["s", "id", "p", "q", "m", "ts"], columns, strict=True))))
    width = 60_000 * minutes
    return con.execute(
        f"""
        SELECT s, (ts // {width}) * {width} AS open_ms,
               first(p ORDER BY ts, id) AS open, max(p) AS high, min(p) AS low,
               last(p ORDER BY ts, id) AS close, sum(q) AS volume, sum(p * q) AS quote_volume,
               count(*) AS trades, coalesce(sum(q) FILTER (WHERE NOT m), 0) AS taker_buy_volume,
               first(id ORDER BY ts, id) AS first_id, last(id ORDER BY ts, id) AS last_id
        FROM t GROUP BY ALL ORDER BY s, open_ms
        """
    ).fetchall()
