"""The same replay job done by peers, over the same files: PySpark, DuckDB SQL, Polars.

Each computes what marketpipe's replay computes for candles: trades deduplicated by
(symbol, trade_id); 1m candles with open/close by (ts_event, trade_id), high, low, volume,
quote volume, taker-buy volume, count, VWAP, first/last trade id; and the 5m, 15m, 1h, 4h and
1d rollups as merges of the 1m candles. Each writes one Parquet file of `CANDLE_COLUMNS`, which
`compare` checks against marketpipe's candles. marketpipe additionally persists raw trades
(DuckDB + Parquet lake), alerts and positions; the peers do not, so they are the cheaper job.
"""

import time
from pathlib import Path
from typing import Any

from bench.environment import peak_rss_mb
from marketpipe.model.intervals import INTERVAL_US, INTERVALS
from marketpipe.model.symbols import to_native

CANDLE_COLUMNS = [
    "symbol", "interval", "open_time", "open", "high", "low", "close", "volume",
    "quote_volume", "taker_buy_volume", "trade_count", "vwap", "first_trade_id", "last_trade_id",
]  # fmt: skip
INTERVAL_MS = {name: INTERVAL_US[name] // 1000 for name in INTERVALS}


def _natives(symbols: list[str]) -> dict[str, str]:
    return {to_native(s): s for s in symbols}


# ---- PySpark -----------------------------------------------------------------------------


def spark_job(paths: list[Path], symbols: list[str], out: Path, trades: int) -> dict[str, Any]:
    """PySpark, `local[*]`: text -> from_json -> dedup -> 1m candles -> rollups -> Parquet."""
    import pyspark
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    started = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[*]")
        .appName("marketpipe-bench")
        .config("spark.driver.memory", "6g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Binance's `t` (trade id) and `T` (trade time) differ only in case.
        .config("spark.sql.caseSensitive", "true")
        # 2 cores: the default 200 shuffle partitions would be mostly scheduling overhead.
        .config("spark.sql.shuffle.partitions", "16")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    startup = time.perf_counter() - started
    try:
        data = T.StructType(
            [
                T.StructField("s", T.StringType()),
                T.StructField("t", T.LongType()),
                T.StructField("p", T.StringType()),
                T.StructField("q", T.StringType()),
                T.StructField("T", T.LongType()),
                T.StructField("m", T.BooleanType()),
            ]
        )
        frame = T.StructType([T.StructField("stream", T.StringType()), T.StructField("data", data)])
        names = F.create_map(*[F.lit(x) for kv in _natives(symbols).items() for x in kv])
        job_started = time.perf_counter()
        parts = F.split(F.col("value"), " ", 2)
        trades_df = (
            spark.read.text([str(p) for p in paths])
            .select(F.from_json(parts.getItem(1), frame).alias("f"))
            .where(F.col("f.stream").endswith("@trade"))
            .select(
                names[F.col("f.data.s")].alias("symbol"),
                F.col("f.data.t").alias("id"),
                F.col("f.data.p").cast("double").alias("p"),
                F.col("f.data.q").cast("double").alias("q"),
                F.col("f.data.T").alias("ts"),
                F.col("f.data.m").alias("m"),
            )
            .dropDuplicates(["symbol", "id"])
        )
        width = INTERVAL_MS["1m"]
        notional = F.col("p") * F.col("q")
        minutes = (
            trades_df.withColumn("open_time", F.col("ts") - F.col("ts") % width)
            .groupBy("symbol", "open_time")
            .agg(
                F.min(F.struct("ts", "id", "p")).alias("first"),
                F.max(F.struct("ts", "id", "p")).alias("last"),
                F.max("p").alias("high"),
                F.min("p").alias("low"),
                F.sum("q").alias("volume"),
                F.sum(notional).alias("quote_volume"),
                F.sum(F.when(~F.col("m"), F.col("q")).otherwise(0.0)).alias("taker_buy_volume"),
                F.count(F.lit(1)).alias("trade_count"),
            )
            .cache()
        )
        outputs = []
        for interval in INTERVALS:
            length = INTERVAL_MS[interval]
            grouped = (
                minutes
                if interval == "1m"
                else minutes.withColumn(
                    "open_time", F.col("open_time") - F.col("open_time") % length
                )
                .groupBy("symbol", "open_time")
                .agg(
                    F.min("first").alias("first"),
                    F.max("last").alias("last"),
                    F.max("high").alias("high"),
                    F.min("low").alias("low"),
                    F.sum("volume").alias("volume"),
                    F.sum("quote_volume").alias("quote_volume"),
                    F.sum("taker_buy_volume").alias("taker_buy_volume"),
                    F.sum("trade_count").alias("trade_count"),
                )
            )
            outputs.append(
                grouped.select(
                    "symbol",
                    F.lit(interval).alias("interval"),
                    "open_time",
                    F.col("first.p").alias("open"),
                    "high",
                    "low",
                    F.col("last.p").alias("close"),
                    "volume",
                    "quote_volume",
                    "taker_buy_volume",
                    F.col("trade_count").cast("long").alias("trade_count"),
                    (F.col("quote_volume") / F.col("volume")).alias("vwap"),
                    F.col("first.id").alias("first_trade_id"),
                    F.col("last.id").alias("last_trade_id"),
                )
            )
        result = outputs[0]
        for other in outputs[1:]:
            result = result.unionByName(other)
        result.coalesce(1).write.mode("overwrite").parquet(str(out))
        seconds = time.perf_counter() - job_started
        counted = minutes.agg(F.sum("trade_count")).first()
    finally:
        spark.stop()
    return {
        "engine": "pyspark",
        "version": pyspark.__version__,
        "master": "local[*]",
        "seconds": round(seconds, 3),
        "startup_seconds": round(startup, 3),
        "trades": trades,
        "trades_counted": int(counted[0]) if counted else 0,
        "trades_per_s": round(trades / seconds),
        "peak_rss_mb_driver": peak_rss_mb(),
        "output": str(out),
    }


# ---- DuckDB SQL ----------------------------------------------------------------------------


def duckdb_job(paths: list[Path], symbols: list[str], out: Path, trades: int) -> dict[str, Any]:
    """DuckDB SQL: read_csv of the lines, json_extract, dedup, ordered aggregates, rollups."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    names = ", ".join(f"'{n}': '{s}'" for n, s in _natives(symbols).items())
    files = ", ".join(f"'{p}'" for p in paths)
    rollups = " UNION ALL ".join(
        f"""SELECT symbol, '{i}' AS interval, open_time - open_time % {INTERVAL_MS[i]} AS ot,
                arg_min(open, {{'ts': open_ts, 'id': first_trade_id}}) AS open, max(high) AS high,
                min(low) AS low, arg_max(close, {{'ts': close_ts, 'id': last_trade_id}}) AS close,
                sum(volume) AS volume, sum(quote_volume) AS quote_volume,
                sum(taker_buy_volume) AS taker_buy_volume, sum(trade_count) AS trade_count,
                sum(quote_volume) / sum(volume) AS vwap,
                min({{'ts': open_ts, 'id': first_trade_id}}).id AS first_trade_id,
                max({{'ts': close_ts, 'id': last_trade_id}}).id AS last_trade_id
            FROM m1 GROUP BY symbol, ot"""
        for i in INTERVALS[1:]
    )
    started = time.perf_counter()
    con.execute(f"""
        CREATE TEMP TABLE trades AS
        WITH lines AS (
            SELECT json_extract_string(frame, ['$.stream', '$.data.s', '$.data.t', '$.data.p',
                                               '$.data.q', '$.data.T', '$.data.m']) AS f
            FROM read_csv([{files}], delim = ' ', quote = '', escape = '', header = false,
                          columns = {{'recv': 'BIGINT', 'frame': 'VARCHAR'}}, auto_detect = false)
        )
        SELECT DISTINCT ON (symbol, id)
               MAP {{{names}}}[f[2]] AS symbol, f[3]::BIGINT AS id, f[4]::DOUBLE AS p,
               f[5]::DOUBLE AS q, f[6]::BIGINT AS ts, f[7]::BOOLEAN AS m
        FROM lines WHERE suffix(f[1], '@trade')
    """)
    con.execute("""
        CREATE TEMP TABLE m1 AS
        SELECT symbol, ts - ts % 60000 AS open_time,
               arg_min(p, {'ts': ts, 'id': id}) AS open, max(p) AS high, min(p) AS low,
               arg_max(p, {'ts': ts, 'id': id}) AS close, sum(q) AS volume,
               sum(p * q) AS quote_volume, coalesce(sum(q) FILTER (WHERE NOT m), 0)
               AS taker_buy_volume, count(*) AS trade_count, sum(p * q) / sum(q) AS vwap,
               min({'ts': ts, 'id': id}).id AS first_trade_id,
               min({'ts': ts, 'id': id}).ts AS open_ts,
               max({'ts': ts, 'id': id}).id AS last_trade_id,
               max({'ts': ts, 'id': id}).ts AS close_ts
        FROM trades GROUP BY ALL
    """)
    con.execute(f"""
        COPY (
            SELECT symbol, '1m' AS interval, open_time, open, high, low, close, volume,
                   quote_volume, taker_buy_volume, trade_count, vwap, first_trade_id,
                   last_trade_id FROM m1
            UNION ALL
            SELECT * REPLACE (ot AS ot) FROM ({rollups})
        ) TO '{out}' (FORMAT parquet)
    """)
    seconds = time.perf_counter() - started
    counted = con.execute("SELECT count(*) FROM trades").fetchone()
    con.close()
    return {
        "engine": "duckdb",
        "version": duckdb.__version__,
        "seconds": round(seconds, 3),
        "trades": trades,
        "trades_counted": int(counted[0]) if counted else 0,
        "trades_per_s": round(trades / seconds),
        "peak_rss_mb": peak_rss_mb(),
        "output": str(out),
    }


# ---- Polars --------------------------------------------------------------------------------


def polars_job(paths: list[Path], symbols: list[str], out: Path, trades: int) -> dict[str, Any]:
    """Polars (lazy): scan_csv of the lines, json_decode, dedup, group_by, rollups."""
    import polars as pl

    frame_type = pl.Struct(
        {
            "stream": pl.Utf8,
            "data": pl.Struct(
                {
                    "s": pl.Utf8,
                    "t": pl.Int64,
                    "p": pl.Utf8,
                    "q": pl.Utf8,
                    "T": pl.Int64,
                    "m": pl.Boolean,
                }
            ),
        }
    )
    started = time.perf_counter()
    lines = pl.scan_csv(
        [str(p) for p in paths], separator=" ", has_header=False, quote_char=None,
        new_columns=["recv", "frame"], schema_overrides={"recv": pl.Int64, "frame": pl.Utf8},
    )  # fmt: skip
    decoded = lines.select(pl.col("frame").str.json_decode(frame_type).alias("f")).unnest("f")
    data = decoded.filter(pl.col("stream").str.ends_with("@trade")).select(
        pl.col("data").struct.field("s").replace_strict(_natives(symbols)).alias("symbol"),
        pl.col("data").struct.field("t").alias("id"),
        pl.col("data").struct.field("p").cast(pl.Float64).alias("p"),
        pl.col("data").struct.field("q").cast(pl.Float64).alias("q"),
        pl.col("data").struct.field("T").alias("ts"),
        pl.col("data").struct.field("m").alias("m"),
    )
    unique = data.unique(subset=["symbol", "id"], keep="any")
    notional = pl.col("p") * pl.col("q")
    minutes = (
        unique.with_columns(open_time=pl.col("ts") - pl.col("ts") % 60_000)
        .sort("ts", "id")
        .group_by("symbol", "open_time")
        .agg(
            open=pl.col("p").first(),
            open_ts=pl.col("ts").first(),
            first_trade_id=pl.col("id").first(),
            close=pl.col("p").last(),
            close_ts=pl.col("ts").last(),
            last_trade_id=pl.col("id").last(),
            high=pl.col("p").max(),
            low=pl.col("p").min(),
            volume=pl.col("q").sum(),
            quote_volume=notional.sum(),
            taker_buy_volume=pl.col("q").filter(~pl.col("m")).sum(),
            trade_count=pl.len().cast(pl.Int64),
        )
        .collect()
    )
    parts = []
    for interval in INTERVALS:
        length = INTERVAL_MS[interval]
        rolled = (
            minutes.with_columns(open_time=pl.col("open_time") - pl.col("open_time") % length)
            .group_by("symbol", "open_time")
            .agg(
                open=pl.col("open").sort_by("open_ts", "first_trade_id").first(),
                first_trade_id=pl.col("first_trade_id")
                .sort_by("open_ts", "first_trade_id")
                .first(),
                close=pl.col("close").sort_by("close_ts", "last_trade_id").last(),
                last_trade_id=pl.col("last_trade_id").sort_by("close_ts", "last_trade_id").last(),
                high=pl.col("high").max(),
                low=pl.col("low").min(),
                volume=pl.col("volume").sum(),
                quote_volume=pl.col("quote_volume").sum(),
                taker_buy_volume=pl.col("taker_buy_volume").sum(),
                trade_count=pl.col("trade_count").sum(),
            )
        )
        parts.append(
            rolled.with_columns(
                interval=pl.lit(interval), vwap=pl.col("quote_volume") / pl.col("volume")
            ).select(CANDLE_COLUMNS)
        )
    pl.concat(parts).write_parquet(out)
    seconds = time.perf_counter() - started
    return {
        "engine": "polars",
        "version": pl.__version__,
        "seconds": round(seconds, 3),
        "trades": trades,
        "trades_counted": int(minutes["trade_count"].sum()),
        "trades_per_s": round(trades / seconds),
        "peak_rss_mb": peak_rss_mb(),
        "output": str(out),
    }
