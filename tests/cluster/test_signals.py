"""SIGTERM (`docker stop`, systemd) stops the cluster roles as cleanly as Ctrl-C, against the
real broker and PostgreSQL: what was consumed is committed with its offsets (or, for ingest,
flushed to the broker), the totals and the `stopped` line are printed, and the exit code is 0.
Live `ingest` exited 143 and lost what its producer still held; the others printed no
`stopped` line."""

import asyncio
import queue
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from deploy.kafka.broker import KafkaBroker

from marketpipe.bus.kafka import Topics, end_offsets
from marketpipe.cluster.ingest import KafkaIngest
from marketpipe.simulator.coingecko.front import CoinGeckoFront
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.chaos.live import Exchange, live_env, start_exchange
from tests.cluster.cluster import fresh_warehouse, synthetic_trades
from tests.servers.s3 import S3Endpoint
from tests.servers.scripts import ScriptServer
from tests.stopping import Command, free_port, health, start

pytestmark = pytest.mark.integration

TRADES = 60_000


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    yield from start_exchange("seed=1")


@contextmanager
def coingecko_front() -> Iterator[str]:
    """A simulated CoinGecko on a thread of its own; yields its REST URL."""
    urls: queue.Queue[str] = queue.Queue()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with CoinGeckoFront.standalone(7, update_every_s=0.5) as front:
            urls.put(front.rest_url)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield urls.get(timeout=30)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


def _produce(broker: KafkaBroker, topics: Topics) -> None:
    ingest = KafkaIngest(broker.bootstrap, topics)
    ingest.trade_table(synthetic_trades(TRADES, seed=31))
    ingest.flush()


def _stopped_cleanly(command: Command) -> list[str]:
    assert command.stop(signal.SIGTERM) == 0, command.stderr[-3000:]
    lines = [line for line in command.stderr.splitlines() if line.strip()]
    assert lines[-1] == "stopped", lines[-5:]
    return lines


def _counted(line: str, name: str) -> int:
    found = re.search(rf"\b{name}=(\d+)", line)
    assert found, line
    return int(found.group(1))


def test_sigterm_stops_the_native_processor_with_its_last_batch_committed(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_server: ScriptServer, tmp_path: Path
) -> None:
    _produce(kafka_broker, kafka_topics)
    with fresh_warehouse(postgres_server) as store:

        def committed() -> int:
            return sum(store.load_offsets("signals", kafka_topics.trades).values())

        process = start(
            "process", "--engine", "native", "--bootstrap", kafka_broker.bootstrap,
            "--topic-prefix", kafka_topics.prefix, "--dsn", store.dsn, "--group", "signals",
            "--no-hot", "--batch-max", "500", cwd=tmp_path,
        )  # fmt: skip
        process.wait_until(lambda: committed() > 0, "the first commit", timeout_s=120)
        lines = _stopped_cleanly(process)
        totals = next(line for line in lines if line.startswith("native: "))
        # Every message it consumed is committed with the outputs: none left to redo.
        assert _counted(totals, "messages") == committed() > 0


def test_sigterm_stops_the_archiver_with_its_last_range_committed(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_server: ScriptServer, tmp_path: Path
) -> None:
    _produce(kafka_broker, kafka_topics)
    with fresh_warehouse(postgres_server) as store:

        def committed() -> int:
            return sum(store.load_offsets("marketpipe-archive", kafka_topics.trades).values())

        archive = start(
            "archive", "--bootstrap", kafka_broker.bootstrap, "--topic-prefix",
            kafka_topics.prefix, "--dsn", store.dsn, "--lake", str(tmp_path / "lake"),
            cwd=tmp_path,
        )  # fmt: skip
        archive.wait_until(lambda: committed() > 0, "the first commit", timeout_s=120)
        lines = _stopped_cleanly(archive)
        totals = next(line for line in lines if line.startswith("archive: "))
        stored = store.rows("SELECT count(*) FROM trades_recent", [])[0][0]
        assert _counted(totals, "trades") == committed() == stored > 0


def test_sigterm_stops_live_ingest_with_everything_read_flushed_to_kafka(
    kafka_broker: KafkaBroker, kafka_topics: Topics, exchange: Exchange, tmp_path: Path
) -> None:
    """Binance trades and CoinGecko's market snapshots (`--venues binance,coingecko`)."""
    ends = end_offsets(kafka_broker.bootstrap, kafka_topics.trades)
    market_ends = end_offsets(kafka_broker.bootstrap, kafka_topics.market)
    with coingecko_front() as coingecko_url:
        market = {
            "MARKETPIPE_VENUES": "binance,coingecko",
            "MARKETPIPE_COINGECKO__REST_URL": coingecko_url,
            "MARKETPIPE_COINGECKO__POLL_INTERVAL_S": "0.5",
        }
        ingest = start(
            "ingest", "--bootstrap", kafka_broker.bootstrap, "--topic-prefix",
            kafka_topics.prefix, "--partitions", "4", cwd=tmp_path,
            env=live_env(exchange) | {"MARKETPIPE_SYMBOLS": "BTCUSDT,ETHUSDT"} | market,
        )  # fmt: skip
        ingest.wait_until(
            lambda: sum(ends().values()) > 0 and sum(market_ends().values()) > 0,
            "trades and market snapshots on their topics",
            timeout_s=120,
        )
        lines = _stopped_cleanly(ingest)
    published = re.search(r"published (\d+) trades, \d+ quotes, (\d+) market snapshots", lines[-2])
    assert published, lines[-3:]
    assert int(published.group(1)) == sum(ends().values()) > 0
    assert int(published.group(2)) == sum(market_ends().values()) > 0


@pytest.mark.timeout(600)  # a Spark driver start-up on a shared 2-core machine
def test_sigterm_stops_the_spark_driver_after_its_batch_is_applied(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_server: ScriptServer, tmp_path: Path
) -> None:
    _produce(kafka_broker, kafka_topics)
    with fresh_warehouse(postgres_server) as store:
        process = start(
            "process", "--engine", "spark", "--master", "local[2]",
            "--bootstrap", kafka_broker.bootstrap, "--topic-prefix", kafka_topics.prefix,
            "--dsn", store.dsn, "--checkpoint-dir", str(tmp_path / "checkpoint"),
            "--batch-max", "6000", "--no-hot", cwd=tmp_path,
        )  # fmt: skip
        process.wait_until(
            lambda: store.fence("marketpipe-candles") is not None, "a batch", timeout_s=400
        )
        lines = _stopped_cleanly(process)
        totals = next(line for line in lines if line.startswith("spark: "))
        # The batch under way when the signal came was applied (or not begun): every batch
        # this run started is in the fence.
        assert _counted(totals, "batches") == store.fence("marketpipe-candles") + 1  # type: ignore[operator]


def test_sigterm_stops_serve_over_the_cluster_stores(
    postgres_dsn: str, redis_url: str, s3_bucket: S3Endpoint, tmp_path: Path
) -> None:
    warm = PostgresWarehouse(postgres_dsn)
    warm.migrate()
    warm.close()
    port = free_port()
    serve = start(
        "serve", "--backend", "cluster", "--port", str(port), cwd=tmp_path,
        env={
            "MARKETPIPE_CLUSTER__POSTGRES_DSN": postgres_dsn,
            "MARKETPIPE_CLUSTER__REDIS_URL": redis_url,
            "MARKETPIPE_CLUSTER__S3_ENDPOINT": s3_bucket.endpoint,
            "MARKETPIPE_CLUSTER__S3_BUCKET": s3_bucket.bucket,
            "MARKETPIPE_CLUSTER__S3_ACCESS_KEY": s3_bucket.access_key,
            "MARKETPIPE_CLUSTER__S3_SECRET_KEY": s3_bucket.secret_key,
        },
    )  # fmt: skip
    serve.wait_until(lambda: health(port) is not None, "the API")
    _stopped_cleanly(serve)
