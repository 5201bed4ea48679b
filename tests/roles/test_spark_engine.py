"""The Spark engine (real Spark, real broker): the same final candles and alerts as the
native engine and embedded mode on the recorded files; poison messages to the DLQ."""

from pathlib import Path

import pytest
from deploy.kafka.broker import KafkaBroker
from pyspark.sql import SparkSession

from marketpipe.bus.kafka import RecordProducer, Topics, read_dead_letters
from marketpipe.config import Settings
from marketpipe.roles.ingest import KafkaIngest, ingest_files
from marketpipe.roles.native import EngineConfig
from marketpipe.roles.spark_engine import SparkSink, run_spark
from marketpipe.spark.job import JobConfig, start
from tests.roles.conformance import differences
from tests.roles.memory_store import MemoryProcessorStore
from tests.roles.test_native import _embedded

pytestmark = pytest.mark.integration


def _run(
    spark: SparkSession, broker: KafkaBroker, topics: Topics, store: object, settings: Settings,
    checkpoint: Path,
) -> SparkSink:  # fmt: skip
    config = EngineConfig(settings.alerts, idle_after_s=1.0)
    sink = SparkSink(config, store, broker.bootstrap, topics, "candles")  # type: ignore[arg-type]
    job = JobConfig(broker.bootstrap, topics.trades, topics.dlq, str(checkpoint))
    queries = start(spark, job, sink)
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe"})

    def ends() -> dict[int, int]:
        return {
            p: probe.get_watermark_offsets(TopicPartition(topics.trades, p), timeout=10)[1]
            for p in range(4)
        }

    try:
        run_spark(sink, queries, end_offsets=ends, until_idle=True, max_seconds=600)
    finally:
        probe.close()
    return sink


def test_spark_equals_embedded_on_recorded_files_and_dead_letters_poison(
    spark: SparkSession, kafka_broker: KafkaBroker, kafka_topics: Topics,
    recorded_files: list[Path], settings: Settings, tmp_path: Path,
) -> None:  # fmt: skip
    ingest_files(KafkaIngest(kafka_broker.bootstrap, kafka_topics), recorded_files)
    producer = RecordProducer(kafka_broker.bootstrap, kafka_topics)
    producer.produce(kafka_topics.trades, b"binance:BTC-USDT", b'{"v":1,"oops":true}')
    producer.flush()
    store = MemoryProcessorStore()
    sink = _run(spark, kafka_broker, kafka_topics, store, settings, tmp_path / "ckpt")
    embedded_candles, embedded_alerts = _embedded(settings, recorded_files)
    assert sink.totals.batches > 0
    assert differences(store.candle_map, embedded_candles) == []
    assert set(store.alerts) == set(embedded_alerts)
    dead = read_dead_letters(kafka_broker.bootstrap, kafka_topics)
    assert [d.value for d in dead] == [b'{"v":1,"oops":true}']
    assert dead[0].origin_topic == kafka_topics.trades
