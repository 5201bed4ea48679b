"""The connector against the project's simulated exchange, with faults injected: what comes out
must be exactly the exchange's ground truth, id for id, whatever the wire did."""

import asyncio
import time

import pytest

from marketpipe import simulator
from marketpipe.model.records import Trade
from marketpipe.sources.binance.connector import BinanceConnector
from marketpipe.sources.binance.settings import BinanceSettings
from tests.sources.fake_binance import Sink, wait_until

pytestmark = pytest.mark.integration

SYMBOLS = ["BTC-USDT", "ETH-USDT"]


def settings_for(exchange: simulator.SimulatedExchange) -> BinanceSettings:
    return BinanceSettings(
        ws_url=exchange.ws_url,
        rest_url=exchange.rest_url,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        silence_timeout_s=0.5,
        rest_timeout_s=2.0,
        max_streams_per_connection=2,  # one symbol per connection: two shards
    )


def complete(sink: Sink, truth: list[Trade]) -> bool:
    """Every ground-truth trade between our first and last id was forwarded."""
    for symbol in SYMBOLS:
        got = {t.trade_id for t in sink.trades(symbol)}
        if not got:
            return False
        expected = {t.trade_id for t in truth if t.symbol == symbol}
        lo, hi = min(got), max(got)
        if not {i for i in expected if lo <= i <= hi} <= got:
            return False
    return True


async def test_connector_output_matches_ground_truth_under_faults(sink: Sink) -> None:
    faults = simulator.FaultPlan(
        disconnect_every_s=0.8,
        drop_prob=0.02,
        duplicate_prob=0.02,
        reorder_prob=0.01,
        malformed_prob=0.01,
        server_shutdown_every_s=1.3,
        server_shutdown_grace_s=0.2,
        rest_429_prob=0.1,
        retry_after_s=0,
        seed=3,
    )
    market = simulator.SyntheticMarket(SYMBOLS, trades_per_second=400, seed=5)
    async with simulator.SimulatedExchange(market, faults) as exchange:
        connector = BinanceConnector(settings_for(exchange), SYMBOLS, sink)
        task = asyncio.create_task(connector.run())
        try:
            await asyncio.sleep(3.0)
            started = time.monotonic()
            await wait_until(
                lambda: (
                    connector.status().backfill_pending == 0
                    and complete(sink, exchange.ground_truth())
                ),
                within=10,
            )
            settle_s = time.monotonic() - started
            status = connector.status()
            truth = {(t.symbol, t.trade_id): t for t in exchange.ground_truth()}
            fault_counts = exchange.fault_counts
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    trades = [r for r in sink.records if isinstance(r, Trade)]
    for trade in trades:  # every forwarded trade is a real one, with the right values
        real = truth[(trade.symbol, trade.trade_id)]
        assert (trade.price, trade.qty, trade.side, trade.ts_event) == (
            real.price,
            real.qty,
            real.side,
            real.ts_event,
        )
    keys = [(t.symbol, t.trade_id) for t in trades]
    duplicates = len(keys) - len(set(keys))
    assert duplicates == 0
    assert status.reconnects >= 2
    assert sum(s.gaps_found for s in status.symbols.values()) >= 1
    assert len(sink.dead_letters) == status.dead_letters
    print(
        f"trades={len(trades)} dead_letters={status.dead_letters} reconnects={status.reconnects} "
        f"gaps={[(k, v.gaps_found, v.gaps_filled) for k, v in status.symbols.items()]} "
        f"settle={settle_s:.2f}s faults={fault_counts}"
    )
