"""Cluster roles on the command line: `ingest`, `process`, `archive` and `dlq list|replay`.

Each role is its own process; run as many `process --engine native` as there are partitions
(same `--group`) to scale out. Where the servers are comes from the `[cluster]` settings
(`kafka_bootstrap_servers`, `postgres_dsn`, `redis_url`, `s3_*`, `topic_partitions`,
`consumer_group`, ...; env `MARKETPIPE_CLUSTER__<NAME>`); options override them.
"""

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from marketpipe.cli.common import ConfigOpt, console, fail, settings_from
from marketpipe.cli.signals import StopRequest, stop_signals
from marketpipe.cluster.settings import ClusterSettings, KafkaSettings, SparkSettings
from marketpipe.config import Settings, load_settings
from marketpipe.model.errors import MarketpipeError

dlq_app = typer.Typer(help="Inspect dead letters and send them back after the cause is fixed.")

_KAFKA = KafkaSettings()
_SPARK = SparkSettings()
Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap", help="Kafka bootstrap servers (default: cluster.kafka_bootstrap_servers)."
    ),
]
Prefix = Annotated[str, typer.Option("--topic-prefix", help="Topic name prefix.")]
Partitions = Annotated[
    int | None,
    typer.Option(
        "--partitions", help="Partitions of new topics (default: cluster.topic_partitions)."
    ),
]
Dsn = Annotated[
    str | None, typer.Option("--dsn", help="PostgreSQL DSN (default: cluster.postgres_dsn).")
]
Hot = Annotated[
    bool, typer.Option("--hot/--no-hot", help="Publish to the Redis hot tier at cluster.redis_url.")
]
UntilIdle = Annotated[
    bool,
    typer.Option("--until-idle", help="Stop once caught up and every window is final."),
]
MaxSeconds = Annotated[float | None, typer.Option("--max-seconds", help="Stop after this.")]
Warehouse = Annotated[
    str | None,
    typer.Option(
        "--warehouse",
        help="postgres or bigquery (default: cluster.warehouse; BigQuery from [gcp]).",
    ),
]


class Engine(StrEnum):
    native = "native"
    spark = "spark"


class Bus(StrEnum):
    kafka = "kafka"


def _with_stores(settings: Settings, *, warehouse: str | None, lake: str | None = None) -> Settings:
    """The settings with the command line's store choices, validated like the config's."""
    changes = {k: v for k, v in (("warehouse", warehouse), ("lake", lake)) if v is not None}
    if not changes:
        return settings
    try:
        cluster = ClusterSettings.model_validate({**settings.cluster.model_dump(), **changes})
    except ValidationError as exc:
        raise fail(f"invalid store choice: {exc.errors()[0]['msg']} ({changes})") from None
    return settings.model_copy(update={"cluster": cluster})


def _route(settings: Settings, bootstrap: str, topics: Any) -> Any:
    """BigQuery fences by partition and must know which partition a symbol is on."""
    if settings.cluster.warehouse != "bigquery":
        return None
    from marketpipe.cluster.stores import kafka_route

    return kafka_route(bootstrap, topics.trades)


def _stopped(request: StopRequest) -> None:
    if request.received is not None:
        console.print("stopped")


def ingest(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Replay these files instead of going live.")
    ] = None,
    bus: Annotated[Bus, typer.Option("--bus", help="Where sources publish.")] = Bus.kafka,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = "marketpipe",
    partitions: Partitions = None,
    duration: MaxSeconds = None,
    config: ConfigOpt = None,
) -> None:
    """Sources -> Kafka: the live venues (default) or recorded files, keyed exchange:symbol."""
    from marketpipe.bus.kafka import Topics, ensure_topics
    from marketpipe.cluster.ingest import KafkaIngest, ingest_files

    settings = settings_from(config)
    cluster = settings.cluster
    bootstrap = bootstrap or cluster.kafka_bootstrap_servers
    topics = Topics(topic_prefix)
    try:
        ensure_topics(bootstrap, topics, partitions=partitions or cluster.topic_partitions,
                      replication=cluster.topic_replication)  # fmt: skip
        kafka = KafkaIngest(bootstrap, topics)
        with stop_signals() as request:  # Ctrl-C and SIGTERM: flush what was read, then stop
            if files:
                stop = threading.Event()
                request.on_stop(stop.set)
                totals = ingest_files(kafka, files, stop=stop)
            else:
                totals = asyncio.run(_ingest_live(kafka, settings, duration, request))
    except MarketpipeError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"published {totals.trades} trades, {totals.quotes} quotes, "
        f"{totals.snapshots} market snapshots, {totals.dead_letters} dead letters "
        f"in {totals.seconds:.1f}s ({totals.messages_per_s:,.0f} msg/s)",
        soft_wrap=True,
    )
    _stopped(request)


async def _ingest_live(
    kafka: Any, settings: Settings, duration: float | None, request: StopRequest
) -> Any:
    from marketpipe.cluster.ingest import ingest_live

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    request.on_stop(lambda: loop.call_soon_threadsafe(stop.set))
    venues = {
        name: (settings.venue_settings(name), settings.venue_symbols(name))
        for name in settings.trade_venues
    }
    if "coingecko" not in settings.market_sources:
        return await ingest_live(kafka, venues, duration_s=duration, stop=stop)
    from marketpipe.model.records import DeadLetter, MarketSnapshot
    from marketpipe.sources.coingecko.poller import MarketPoller

    poller = MarketPoller(settings.coingecko)
    polls: AsyncIterator[list[MarketSnapshot | DeadLetter]] = (
        [*b.snapshots, *b.dead_letters] async for b in poller.batches()
    )
    try:
        return await ingest_live(kafka, venues, duration_s=duration, stop=stop, market=polls)
    finally:
        await poller.aclose()


def process(
    engine: Annotated[Engine, typer.Option("--engine", help="native or spark.")] = Engine.native,
    bus: Annotated[Bus, typer.Option("--bus", help="Where trades come from.")] = Bus.kafka,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = "marketpipe",
    partitions: Partitions = None,
    dsn: Dsn = None,
    hot_tier: Hot = True,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Consumer group (default: cluster.consumer_group)."),
    ] = None,
    master: Annotated[str, typer.Option("--master", help="Spark master.")] = _SPARK.master,
    checkpoint_dir: Annotated[
        str,
        typer.Option(
            "--checkpoint-dir",
            help="Spark checkpoint dir (local path or s3a://).",
        ),
    ] = _SPARK.checkpoint_dir,
    batch_max: Annotated[
        int,
        typer.Option(
            "--batch-max",
            help="Most messages per micro-batch (native) or per trigger (spark).",
        ),
    ] = _KAFKA.batch_max_messages,
    until_idle: UntilIdle = False,
    max_seconds: MaxSeconds = None,
    warehouse: Warehouse = None,
    config: ConfigOpt = None,
) -> None:
    """Kafka -> candles and alerts -> the warm store (PostgreSQL or BigQuery), Redis and the
    candles/alerts topics."""
    from marketpipe.bus.kafka import Topics, ensure_topics
    from marketpipe.cluster.native import EngineConfig
    from marketpipe.cluster.stores import open_hot_tier, open_warm_store

    settings = _with_stores(settings_from(config), warehouse=warehouse)
    if engine is Engine.spark and settings.cluster.warehouse == "bigquery":
        raise fail("--engine spark writes to PostgreSQL only; use --engine native with BigQuery")
    cluster = settings.cluster
    bootstrap = bootstrap or cluster.kafka_bootstrap_servers
    group = group or cluster.consumer_group
    topics = Topics(topic_prefix)
    engine_config = EngineConfig.from_sections(
        settings.engine, settings.alerts, batch_max_messages=batch_max
    )
    try:
        ensure_topics(bootstrap, topics, partitions=partitions or cluster.topic_partitions,
                      replication=cluster.topic_replication)  # fmt: skip
        # With BigQuery the archive role is the one writer of raw trades (no unique keys).
        store = open_warm_store(settings, dsn=dsn, route=_route(settings, bootstrap, topics),
                                writes_trades=False)  # fmt: skip
        store.migrate()
        hot = open_hot_tier(settings) if hot_tier else None
        # Ctrl-C and SIGTERM: finish the batch at hand, commit it with its offsets, then stop.
        with stop_signals() as request:
            stop = threading.Event()
            request.on_stop(stop.set)
            if engine is Engine.native:
                totals: Any = _run_native(
                    engine_config, store, bootstrap, topics, group, hot, request, until_idle,
                    max_seconds,
                )  # fmt: skip
            else:
                totals = _run_spark(
                    engine_config, store, bootstrap, topics, hot, stop, until_idle, max_seconds,
                    SparkSettings(
                        master=master, checkpoint_dir=checkpoint_dir,
                        max_offsets_per_trigger=batch_max,
                    ),
                    spark_exchanges(settings.trade_venues),
                )  # fmt: skip
    except MarketpipeError as exc:
        raise fail(str(exc)) from None
    console.print(f"{engine.value}: {totals}", soft_wrap=True)
    _stopped(request)


def _run_native(
    config: Any, store: Any, bootstrap: str, topics: Any, group: str, hot: Any,
    request: StopRequest, until_idle: bool, max_seconds: float | None,
) -> Any:  # fmt: skip
    from marketpipe.cluster.native import NativeProcessor

    processor = NativeProcessor(config, store, bootstrap, topics, group, hot=hot)
    request.on_stop(processor.stop)
    processor.run(until_idle=until_idle, max_seconds=max_seconds)
    return processor.totals


def spark_exchanges(venues: list[str]) -> tuple[str, ...]:
    """The Spark job's per-exchange candle queries: one per venue when there are several (a
    Spark query has one watermark, and one venue's clock must not make another's trades
    late); none for one venue, whose single query keeps its checkpoint and fence names."""
    return tuple(venues) if len(venues) > 1 else ()


def _run_spark(
    config: Any, store: Any, bootstrap: str, topics: Any, hot: Any, stop: threading.Event,
    until_idle: bool, max_seconds: float | None, spark_settings: SparkSettings,
    exchanges: tuple[str, ...] = (),
) -> Any:  # fmt: skip
    import pyspark

    from marketpipe.bus.kafka import end_offsets
    from marketpipe.cluster.spark_engine import SparkSink, run_spark, spark_jars
    from marketpipe.spark.job import JobConfig, local_session, start

    # py4j's INFO lines ("Closing down clientserver connection", from finalizers at exit)
    # are chatter, printed after the role's own last line.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    repo_cache = Path(__file__).resolve().parents[3] / ".cache" / "spark"
    jars = spark_jars(repo_cache, pyspark.__version__, Path(pyspark.__file__).parent / "jars")
    session = local_session(spark_settings.master, jars)
    session.sparkContext.setLogLevel("ERROR")
    sink = SparkSink(config, store, bootstrap, topics, spark_settings.query_name, hot=hot)
    job = JobConfig(
        bootstrap, topics.trades, topics.dlq, spark_settings.checkpoint_dir,
        query_name=spark_settings.query_name, grace_us=config.grace_us,
        allowed_lateness_us=config.allowed_lateness_us,
        whale_notional=config.rules.whale_notional,
        max_offsets_per_trigger=spark_settings.max_offsets_per_trigger, exchanges=exchanges,
    )  # fmt: skip
    queries = start(session, job, sink)
    try:
        run_spark(sink, queries, end_offsets=end_offsets(bootstrap, topics.trades),
                  until_idle=until_idle, max_seconds=max_seconds, stop=stop)  # fmt: skip
    finally:
        session.stop()
    return sink.totals


def archive(
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = "marketpipe",
    dsn: Dsn = None,
    lake: Annotated[
        str | None,
        typer.Option(
            "--lake",
            help="s3, gcs or a lake directory (default: cluster.lake; buckets from [cluster] "
            "and [gcp]).",
        ),
    ] = None,
    until_idle: UntilIdle = False,
    max_seconds: MaxSeconds = None,
    warehouse: Warehouse = None,
    config: ConfigOpt = None,
) -> None:
    """Kafka trades -> Parquet lake (S3, GCS or a directory) + the warm store's trades_recent
    (PostgreSQL or BigQuery); offsets move only when both writes landed."""
    from marketpipe.bus.kafka import Topics
    from marketpipe.cluster.archive import TradeArchiver, open_lake
    from marketpipe.cluster.stores import open_cluster_lake, open_warm_store

    store_lake = lake if lake in ("s3", "gcs") else None
    settings = _with_stores(settings_from(config), warehouse=warehouse, lake=store_lake)
    cluster = settings.cluster
    bootstrap = bootstrap or cluster.kafka_bootstrap_servers
    try:
        topics = Topics(topic_prefix)
        store = open_warm_store(settings, dsn=dsn, route=_route(settings, bootstrap, topics))
        store.migrate()
        parquet = open_lake(lake) if lake and not store_lake else open_cluster_lake(settings)
        archiver = TradeArchiver(
            store, parquet, bootstrap, topics, group=cluster.archive_consumer_group
        )
        with stop_signals() as request:  # Ctrl-C and SIGTERM: land the batch, then stop
            request.on_stop(archiver.stop)
            archiver.run(until_idle=until_idle, max_seconds=max_seconds)
    except MarketpipeError as exc:
        raise fail(str(exc)) from None
    console.print(f"archive: {archiver.totals}", soft_wrap=True)
    _stopped(request)


@dlq_app.command("list")
def dlq_list(
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = "marketpipe",
    start: Annotated[int, typer.Option("--from", help="First DLQ offset.")] = 0,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 100,
) -> None:
    """Dead letters, oldest first, as JSON lines: error, origin and the raw value."""
    from marketpipe.bus.kafka import Topics, read_dead_letters

    bootstrap = bootstrap or load_settings().cluster.kafka_bootstrap_servers
    try:
        entries = read_dead_letters(bootstrap, Topics(topic_prefix), start=start, limit=limit)
    except MarketpipeError as exc:
        raise fail(str(exc)) from None
    for e in entries:
        print(json.dumps({
            "offset": e.offset, "error": e.error, "origin_topic": e.origin_topic,
            "origin_partition": e.origin_partition, "origin_offset": e.origin_offset,
            "dead_at_us": e.dead_at_us, "key": (e.key or b"").decode(errors="replace"),
            "value": (e.value or b"").decode(errors="replace"),
        }))  # fmt: skip


@dlq_app.command("replay")
def dlq_replay(
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = "marketpipe",
    start: Annotated[
        int | None, typer.Option("--from", help="DLQ offset (default: after the last replay).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many.")] = None,
) -> None:
    """Send dead letters back to their origin topics (after fixing what rejected them)."""
    from marketpipe.bus.kafka import Topics, replay_dead_letters

    bootstrap = bootstrap or load_settings().cluster.kafka_bootstrap_servers
    try:
        entries = replay_dead_letters(bootstrap, Topics(topic_prefix), start=start, limit=limit)
    except MarketpipeError as exc:
        raise fail(str(exc)) from None
    console.print(f"replayed {len(entries)} dead letter(s)")


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(process)
    app.command()(archive)
    app.add_typer(dlq_app, name="dlq")
