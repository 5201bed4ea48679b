"""The Spark Structured Streaming job: `marketpipe.trades` -> 1m candle windows.

Spark does the heavy, partitioned work: parse and validate the JSON values, an event-time
watermark, dedup by `(exchange, symbol, trade_id)` within it, and stateful 1m windows whose
open/close are `min_by`/`max_by` over `struct(ts_event, trade_id)` (the same total order the
native engine uses). The query runs in update mode: every micro-batch hands the full, current
value of each window it changed to a `foreachBatch` sink (wired in `marketpipe.cluster`), which
decides finality, rolls up, alerts and commits fenced by batch id.

Watermarks are per exchange, as in the native engine: Spark keeps one watermark per query,
so with `exchanges` given the job runs one candle query per exchange over that exchange's
trades (its own watermark, checkpoint and sink fence). Otherwise one query serves every
exchange under one watermark: a venue whose clock is behind another's by more than grace +
allowed lateness (a replay of an older recording, a long back-fill) would have its trades
dropped as late, so a multi-venue cluster names its venues. Each query reads the whole
topic and keeps the trades of its exchange: the price of one watermark per exchange.

Invalid messages, and with `exchanges` those of any other exchange, go to the DLQ topic by a
last query (Spark's Kafka sink), with the error, origin topic, partition and offset in the
headers, as the native consumer does.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

TRADE_JSON = StructType(
    [
        StructField("v", LongType()),
        StructField("exchange", StringType()),
        StructField("symbol", StringType()),
        StructField("trade_id", LongType()),
        StructField("price", DoubleType()),
        StructField("qty", DoubleType()),
        StructField("side", StringType()),
        StructField("ts_event", LongType()),
        StructField("ts_recv", LongType()),
    ]
)


@dataclass(frozen=True, slots=True)
class JobConfig:
    bootstrap: str
    trades_topic: str
    dlq_topic: str
    checkpoint_dir: str
    query_name: str = "marketpipe-candles"
    grace_us: int = 2_000_000
    allowed_lateness_us: int = 3_600_000_000
    whale_notional: float = 100_000.0
    max_offsets_per_trigger: int = 200_000
    starting_offsets: str = "earliest"
    # One candle query (one watermark) per exchange; () = one query for every exchange.
    exchanges: tuple[str, ...] = ()


def local_session(
    master: str = "local[*]", jars: list[Path] | None = None, app_name: str = "marketpipe"
) -> SparkSession:
    """A Spark session with the Kafka connector jars (no download at run time)."""
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
    )
    if jars:
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    return builder.getOrCreate()


def _validity() -> Column:
    t = F.col("t")
    return (
        t.isNotNull()
        & (t["v"] == 1)
        & t["exchange"].isNotNull()
        & (F.length(t["exchange"]) > 0)
        & t["symbol"].isNotNull()
        & (F.length(t["symbol"]) > 0)
        & t["trade_id"].isNotNull()
        & (t["price"] > 0)
        & (t["qty"] > 0)
        & t["side"].isin("buy", "sell")
        & t["ts_event"].isNotNull()
        & t["ts_recv"].isNotNull()
    )


def read_messages(spark: SparkSession, config: JobConfig) -> DataFrame:
    """Kafka trades, parsed (`parse_messages`)."""
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", config.bootstrap)
        .option("subscribe", config.trades_topic)
        .option("startingOffsets", config.starting_offsets)
        .option("maxOffsetsPerTrigger", str(config.max_offsets_per_trigger))
        .option("failOnDataLoss", "false")
        .load()
    )
    return parse_messages(raw, config)


def parse_messages(raw: DataFrame, config: JobConfig) -> DataFrame:
    """Kafka records (key, value, topic, partition, offset) as a `t` struct plus `valid` (a
    v1 trade) and `known` (of an exchange this job processes)."""
    parsed = raw.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        F.from_json(F.col("value").cast("string"), TRADE_JSON).alias("t"),
    )
    known = F.col("t")["exchange"].isin(*config.exchanges) if config.exchanges else F.lit(True)
    return parsed.withColumn("valid", F.coalesce(_validity(), F.lit(False))).withColumn(
        "known", F.coalesce(known, F.lit(False))
    )


def dead_letters(messages: DataFrame, config: JobConfig) -> DataFrame:
    """Invalid messages as DLQ records: original key and value, provenance in headers."""

    def header(name: str, value: Column) -> Column:
        return F.struct(
            F.lit(name).alias("key"), value.cast("string").cast("binary").alias("value")
        )

    error = F.when(~F.col("valid"), F.lit("not a v1 trade (spark)")).otherwise(
        F.concat(F.lit("exchange "), F.col("t")["exchange"], F.lit(" is not processed (spark)"))
    )
    return messages.where(~F.col("valid") | ~F.col("known")).select(
        F.col("key"),
        F.col("value"),
        F.array(
            header("error", error),
            header("origin.topic", F.col("topic")),
            header("origin.partition", F.col("partition")),
            header("origin.offset", F.col("offset")),
            header("dead.at", F.unix_micros(F.current_timestamp())),
        ).alias("headers"),
    )  # fmt: skip


def minute_windows(messages: DataFrame, config: JobConfig) -> DataFrame:
    """Deduplicated trades in stateful 1m windows; update mode emits changed windows whole.

    The watermark delay is grace + allowed lateness: a window keeps accepting (late) trades
    until the native engine would evict it too.
    """
    delay_s = (config.grace_us + config.allowed_lateness_us) / 1e6
    trades = (
        messages.where("valid AND known")
        .select("t.*")
        .drop("v")
        .withColumn("event_time", F.timestamp_micros("ts_event"))
        .withWatermark("event_time", f"{delay_s} seconds")
        .dropDuplicatesWithinWatermark(["exchange", "symbol", "trade_id"])
    )
    order = F.struct("ts_event", "trade_id")
    notional = F.col("price") * F.col("qty")
    buy = F.col("side") == "buy"
    whale = F.struct("exchange", "symbol", "trade_id", "price", "qty", "side", "ts_event")
    windows = trades.groupBy("exchange", "symbol", F.window("event_time", "1 minute")).agg(
        F.min_by("price", order).alias("open"),
        F.min(order).alias("first"),
        F.max_by("price", order).alias("close"),
        F.max(order).alias("last"),
        F.max("price").alias("high"),
        F.min("price").alias("low"),
        F.sum("qty").alias("volume"),
        F.sum(notional).alias("quote_volume"),
        F.count(F.lit(1)).alias("trade_count"),
        F.sum(F.when(buy, F.col("qty")).otherwise(F.lit(0.0))).alias("taker_buy_volume"),
        F.sum(F.when(buy, notional).otherwise(F.lit(0.0))).alias("taker_buy_quote_volume"),
        # Whale trades only (collect_list skips nulls), so state stays small.
        F.collect_list(F.when(notional >= config.whale_notional, whale)).alias("whales"),
    )
    return windows.select(
        "exchange",
        "symbol",
        F.unix_micros(F.col("window.start")).alias("open_time"),
        "open",
        F.col("first.ts_event").alias("open_ts"),
        F.col("first.trade_id").alias("open_id"),
        "close",
        F.col("last.ts_event").alias("close_ts"),
        F.col("last.trade_id").alias("close_id"),
        "high",
        "low",
        "volume",
        "quote_volume",
        "trade_count",
        "taker_buy_volume",
        "taker_buy_quote_volume",
        "whales",
    )


BatchSink = Callable[[DataFrame, int], None]


@runtime_checkable
class ExchangeSinks(Protocol):
    """A sink that fences each exchange's query on its own batch ids."""

    def for_exchange(self, exchange: str) -> BatchSink: ...


def start(
    spark: SparkSession, config: JobConfig, sink: BatchSink | ExchangeSinks
) -> list[StreamingQuery]:
    """Start the candle queries (foreachBatch -> `sink`; one per exchange when the config
    names them, the sink then giving each its own) and, last, the dead-letter query."""
    messages = read_messages(spark, config)
    if not config.exchanges:
        if not callable(sink):
            raise TypeError("a single candle query needs a callable sink")
        candles = [_candle_query(messages, config, sink, config.query_name, "candles")]
    else:
        if not isinstance(sink, ExchangeSinks):
            raise TypeError("one query per exchange needs a sink with for_exchange()")
        own = (messages.where(F.col("t")["exchange"] == e) for e in config.exchanges)
        candles = [
            _candle_query(part, config, sink.for_exchange(exchange),
                          f"{config.query_name}-{exchange}", f"candles-{exchange}")
            for exchange, part in zip(config.exchanges, own, strict=True)
        ]  # fmt: skip
    return [*candles, _dead_letter_query(messages, config)]


def _candle_query(
    messages: DataFrame, config: JobConfig, sink: BatchSink, name: str, checkpoint: str
) -> StreamingQuery:
    return (
        minute_windows(messages, config)
        .writeStream.queryName(name)
        .outputMode("update")
        .foreachBatch(sink)
        .option("checkpointLocation", f"{config.checkpoint_dir}/{checkpoint}")
        .start()
    )


def _dead_letter_query(messages: DataFrame, config: JobConfig) -> StreamingQuery:
    return (
        dead_letters(messages, config)
        .writeStream.queryName(f"{config.query_name}-dlq")
        .format("kafka")
        .option("kafka.bootstrap.servers", config.bootstrap)
        .option("topic", config.dlq_topic)
        .option("checkpointLocation", f"{config.checkpoint_dir}/dlq")
        .start()
    )
