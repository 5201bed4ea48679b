"""Faults mid-stream (real Kafka, PostgreSQL, S3 and Spark). Each ends with final candles and
alerts identical to a clean run (embedded mode over the same trades) and, where the archive
role runs, zero duplicates in trades_recent and the lake:

- kill -9 of the native processor, then a restart;
- kill -9 of the Spark driver, then a restart from its checkpoint;
- a broker restart while trades are produced, processed and archived;
- PostgreSQL stopped for 30 s while trades are processed and archived.
"""

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from deploy.kafka.broker import KafkaBroker

from marketpipe.bus.kafka import Topics
from marketpipe.cluster.archive import TradeArchiver, open_lake
from marketpipe.cluster.ingest import KafkaIngest
from marketpipe.cluster.native import NativeProcessor
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.cluster.cluster import (
    embedded_results,
    engine_config,
    fresh_warehouse,
    results,
    rows_on_disk,
    synthetic_trades,
)
from tests.cluster.conformance import differences
from tests.servers.s3 import S3Endpoint
from tests.servers.scripts import ScriptServer

pytestmark = pytest.mark.integration

TRADES = 60_000


@pytest.fixture(scope="module")
def trades() -> pa.Table:
    return synthetic_trades(TRADES, seed=23)


@pytest.fixture(scope="module")
def clean(trades: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:  # type: ignore[type-arg]
    from marketpipe.config import load_settings

    settings = load_settings(data_dir=tmp_path_factory.mktemp("clean") / "data")
    return embedded_results(settings, [trades])


def _ingest(broker: KafkaBroker, topics: Topics, trades: pa.Table) -> None:
    ingest = KafkaIngest(broker.bootstrap, topics)
    ingest.trade_table(trades)
    ingest.flush()


def _role(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "marketpipe.cli", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip


def _wait(
    condition: Callable[[], bool], timeout_s: float, what: str,
    process: subprocess.Popen[bytes] | None = None,
) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"role exited early: {err.decode()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _finished(process: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    _, err = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, err.decode()[-3000:]


def _assert_clean(store: PostgresWarehouse, clean: tuple[dict, dict]) -> None:  # type: ignore[type-arg]
    candles, alerts = results(store)
    assert all(c.is_final for c in candles.values())
    assert differences(candles, clean[0]) == []
    assert set(alerts) == set(clean[1])


def test_kill_9_of_the_native_processor_then_restart_ends_as_a_clean_run(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_server: ScriptServer,
    trades: pa.Table, clean: tuple[dict, dict],  # type: ignore[type-arg]
) -> None:  # fmt: skip
    _ingest(kafka_broker, kafka_topics, trades)
    with fresh_warehouse(postgres_server) as store:
        args = ["process", "--engine", "native", "--bootstrap", kafka_broker.bootstrap,
                "--topic-prefix", kafka_topics.prefix, "--dsn", store.dsn, "--partitions", "4",
                "--batch-max", "2000", "--group", "marketpipe-native", "--no-hot",
                "--until-idle"]  # fmt: skip
        victim = _role(args)
        _wait(lambda: sum(store.load_offsets("marketpipe-native", kafka_topics.trades).values())
              > 10_000, 120, "native commits", victim)  # fmt: skip
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        committed = sum(store.load_offsets("marketpipe-native", kafka_topics.trades).values())
        assert 0 < committed < TRADES  # killed mid-stream
        _finished(_role(args))
        assert sum(store.load_offsets("marketpipe-native", kafka_topics.trades).values()) == TRADES
        _assert_clean(store, clean)


@pytest.mark.timeout(900)  # two Spark driver start-ups on a shared 2-core machine
def test_kill_9_of_the_spark_driver_then_restart_ends_as_a_clean_run(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_server: ScriptServer,
    trades: pa.Table, clean: tuple[dict, dict], tmp_path: Path,  # type: ignore[type-arg]
) -> None:  # fmt: skip
    _ingest(kafka_broker, kafka_topics, trades)
    with fresh_warehouse(postgres_server) as store:
        args = ["process", "--engine", "spark", "--master", "local[2]",
                "--bootstrap", kafka_broker.bootstrap, "--topic-prefix", kafka_topics.prefix,
                "--dsn", store.dsn, "--checkpoint-dir", str(tmp_path / "checkpoint"),
                "--batch-max", "12000", "--no-hot", "--until-idle"]  # fmt: skip
        victim = _role(args)
        _wait(lambda: (store.fence("marketpipe-candles") or -1) >= 1, 300, "spark batches", victim)
        victim.send_signal(signal.SIGKILL)  # the driver: its JVM dies with it
        victim.wait()
        applied = store.fence("marketpipe-candles")
        _finished(_role(args))
        assert (store.fence("marketpipe-candles") or 0) > (applied or 0)
        _assert_clean(store, clean)


def _s3(s3: S3Endpoint) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key=s3.access_key, secret_key=s3.secret_key,
        endpoint_override=s3.endpoint, region=s3.region,
    )  # fmt: skip


def _process_and_archive(
    settings_store: PostgresWarehouse, broker: KafkaBroker, topics: Topics, s3: S3Endpoint,
    during: Callable[[], None], produce: Callable[[], None],
) -> TradeArchiver:  # fmt: skip
    """Native processor and archiver in threads while `produce` feeds Kafka and `during`
    injects the fault; both run until caught up and idle."""
    from marketpipe.config import load_settings

    config = engine_config(load_settings())
    processor = NativeProcessor(config, settings_store, broker.bootstrap, topics, "native",
                                consumer_config={})  # fmt: skip
    lake = open_lake(f"{s3.bucket}/lake", _s3(s3))
    archiver = TradeArchiver(settings_store, lake, broker.bootstrap, topics, range_messages=5000)
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        return run

    producer = threading.Thread(target=guarded(produce))
    producer.start()
    fault = threading.Thread(target=guarded(during))
    fault.start()
    workers = [
        threading.Thread(target=guarded(lambda: processor.run(max_seconds=900))),
        threading.Thread(target=guarded(lambda: archiver.run(max_seconds=900))),
    ]
    for w in workers:
        w.start()
    producer.join()
    fault.join()
    # Both roles are done once every trade is in: stop them when idle.
    _wait(lambda: processor.totals.trades >= TRADES and archiver.totals.trades >= TRADES,
          300, "processing after the fault")  # fmt: skip
    time.sleep(config.idle_after_s * 3)
    processor.stop()
    archiver.stop()
    for w in workers:
        w.join(60)
    assert not errors, errors
    return archiver


def _assert_no_duplicates(
    store: PostgresWarehouse, archiver: TradeArchiver, trades: pa.Table
) -> None:
    expected = sorted(trades.column("trade_id").to_pylist())
    warm = store.trades(exchange=None, symbol=None, start=None, end=None, limit=None)
    assert sorted(t.trade_id for t in warm) == expected
    lake = archiver.lake.read_trades()
    assert sorted(lake.column("trade_id").to_pylist()) == expected
    assert rows_on_disk(archiver.lake) == len(expected)  # no trade written twice, even in two files


def _produce_slowly(broker: KafkaBroker, topics: Topics, trades: pa.Table) -> Callable[[], None]:
    def produce() -> None:
        ingest = KafkaIngest(broker.bootstrap, topics)
        for offset in range(0, trades.num_rows, 5000):
            ingest.trade_table(trades.slice(offset, 5000))
            ingest.producer.poll()
            time.sleep(0.5)
        ingest.flush()

    return produce


def test_broker_restart_mid_stream_ends_as_a_clean_run_without_duplicates(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_dsn: str, s3_bucket: S3Endpoint,
    trades: pa.Table, clean: tuple[dict, dict],  # type: ignore[type-arg]
) -> None:  # fmt: skip
    store = PostgresWarehouse(postgres_dsn)
    store.migrate()

    def restart() -> None:
        time.sleep(2.5)
        kafka_broker.restart(down_s=2)

    produce = _produce_slowly(kafka_broker, kafka_topics, trades)
    archiver = _process_and_archive(store, kafka_broker, kafka_topics, s3_bucket, restart, produce)
    _assert_clean(store, clean)
    _assert_no_duplicates(store, archiver, trades)
    store.close()


@pytest.mark.timeout(600)
def test_postgres_stopped_30_s_mid_stream_ends_as_a_clean_run_without_duplicates(
    kafka_broker: KafkaBroker, kafka_topics: Topics, private_postgres: ScriptServer,
    s3_bucket: S3Endpoint, trades: pa.Table, clean: tuple[dict, dict],  # type: ignore[type-arg]
) -> None:  # fmt: skip
    store = PostgresWarehouse(private_postgres.url)
    store.migrate()

    def outage() -> None:
        time.sleep(2.0)
        private_postgres.stop()
        time.sleep(30)
        private_postgres.start()

    produce = _produce_slowly(kafka_broker, kafka_topics, trades)
    archiver = _process_and_archive(store, kafka_broker, kafka_topics, s3_bucket, outage, produce)
    _assert_clean(store, clean)
    _assert_no_duplicates(store, archiver, trades)
    store.close()
