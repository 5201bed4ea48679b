"""`marketpipe ingest --bus kafka` live: the Binance connector against the simulated exchange
(malformed frames injected) publishing to a real broker; every trade arrives keyed
`exchange:symbol` with the exchange's values, and bad frames land on the DLQ."""

import pytest
from deploy.kafka.broker import KafkaBroker

from marketpipe import simulator
from marketpipe.bus import serde
from marketpipe.bus.kafka import Topics, read_dead_letters
from marketpipe.cluster.ingest import KafkaIngest, ingest_live
from marketpipe.sources.binance.settings import BinanceSettings
from tests.bus.test_kafka import _consume_all

pytestmark = pytest.mark.integration


async def test_live_connector_publishes_exchange_trades_and_dead_letters(
    kafka_broker: KafkaBroker, kafka_topics: Topics
) -> None:
    market = simulator.SyntheticMarket(["BTC-USDT", "ETH-USDT"], trades_per_second=300, seed=2)
    faults = simulator.FaultPlan(malformed_prob=0.02, seed=4)
    async with simulator.SimulatedExchange(market, faults) as exchange:
        binance = BinanceSettings(ws_url=exchange.ws_url, rest_url=exchange.rest_url)
        ingest = KafkaIngest(kafka_broker.bootstrap, kafka_topics)
        venues = {"binance": (binance, ["BTC-USDT", "ETH-USDT"])}
        totals = await ingest_live(ingest, venues, duration_s=3.0)
        truth = {(t.symbol, t.trade_id): t for t in exchange.ground_truth()}
    assert totals.trades > 100
    messages = _consume_all(kafka_broker, kafka_topics, "check", totals.trades, {})
    trades = [serde.decode_trade(m.value()) for m in messages]  # type: ignore[attr-defined]
    assert len(trades) == totals.trades
    for message, trade in zip(messages, trades, strict=True):
        assert message.key() == f"binance:{trade.symbol}".encode()  # type: ignore[attr-defined]
        real = truth[(trade.symbol, trade.trade_id)]
        assert (trade.price, trade.qty, trade.side, trade.ts_event) == (
            real.price, real.qty, real.side, real.ts_event,
        )  # fmt: skip
    dead = read_dead_letters(kafka_broker.bootstrap, kafka_topics)
    assert len(dead) == totals.dead_letters > 0
    assert all(d.error and d.origin_topic == "source:binance" for d in dead)
