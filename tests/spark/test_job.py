"""The Spark job's parsing and dead letters over a static frame of Kafka records
(real Spark, no Kafka): a job that names its exchanges processes those and dead-letters the
trades of any other, with an error that names the exchange."""

import json

import pytest
from pyspark.sql import SparkSession

from marketpipe.spark.job import JobConfig, dead_letters, parse_messages

pytestmark = pytest.mark.integration

T0 = 1_723_248_000_000_000  # 2024-08-10 00:00 UTC, µs
RECORD = "key binary, value binary, topic string, partition int, offset long"


def trade(exchange: str, trade_id: int, price: float, ts_event: int) -> bytes:
    return json.dumps({
        "v": 1, "exchange": exchange, "symbol": "BTC-USD", "trade_id": trade_id,
        "price": price, "qty": 1.0, "side": "buy", "ts_event": ts_event, "ts_recv": ts_event,
    }).encode()  # fmt: skip


def test_trades_of_an_exchange_the_job_does_not_process_are_dead_lettered_by_name(
    spark: SparkSession,
) -> None:
    values = [
        trade("coinbase", 7, 100.0, T0 + 1_000_000),
        trade("kraken", 7, 200.0, T0 + 2_000_000),  # same symbol and id, another venue
        trade("bitstamp", 7, 300.0, T0 + 3_000_000),  # not one of the job's
        b'{"v":1,"exchange":"coinbase","trade_id":"x"}',
    ]
    raw = spark.createDataFrame(
        [(b"k", v, "trades", 0, i) for i, v in enumerate(values)], RECORD
    )  # fmt: skip
    config = JobConfig("unused:9092", "trades", "dlq", "/unused", exchanges=("coinbase", "kraken"))
    messages = parse_messages(raw, config)

    dead = dead_letters(messages, config).collect()
    errors = {bytes(r["value"]): dict((h["key"], bytes(h["value"])) for h in r["headers"])
              for r in dead}  # fmt: skip
    assert set(errors) == {values[2], values[3]}
    assert errors[values[2]]["error"] == b"exchange bitstamp is not processed (spark)"
    assert errors[values[3]]["error"] == b"not a v1 trade (spark)"
    assert errors[values[2]]["origin.offset"] == b"2"

    # What the candle queries take (minute_windows needs a stream: the conformance test).
    flags = {r["offset"]: (r["valid"], r["known"]) for r in messages.collect()}
    assert [flags[0], flags[1], flags[2], flags[3][0]] == [(True, True), (True, True),
                                                           (True, False), False]  # fmt: skip


def test_a_job_without_exchanges_processes_every_valid_trade(spark: SparkSession) -> None:
    values = [trade("coinbase", 7, 100.0, T0 + 1_000_000), trade("bitstamp", 7, 300.0, T0)]
    raw = spark.createDataFrame([(b"k", v, "trades", 0, i) for i, v in enumerate(values)], RECORD)
    config = JobConfig("unused:9092", "trades", "dlq", "/unused")
    messages = parse_messages(raw, config)
    assert dead_letters(messages, config).count() == 0
    assert all(r["valid"] and r["known"] for r in messages.collect())
