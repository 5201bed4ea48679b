"""The generic connector running CoinbaseSpec against the simulator's Coinbase front (its real
ws-feed and REST protocol), with faults: what comes out is the venue's ground truth."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from marketpipe.model.records import Trade
from marketpipe.simulator import FaultPlan
from marketpipe.simulator.coinbase import CoinbaseFront
from marketpipe.simulator.multivenue import MultiVenueMarket
from marketpipe.sources.coinbase.settings import CoinbaseSettings
from marketpipe.sources.coinbase.spec import CoinbaseSpec
from marketpipe.sources.connector import VenueConnector
from tests.sources.fake_binance import Sink, wait_until

pytestmark = pytest.mark.integration

SYMBOLS = ["BTC-USD", "ETH-USD"]


def settings_for(front: CoinbaseFront, **overrides: object) -> CoinbaseSettings:
    values: dict[str, object] = {
        "ws_url": front.ws_url,
        "rest_url": front.rest_url,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "silence_timeout_s": 1.5,
        "rest_timeout_s": 2.0,
        "rate_limit_pause_s": 0.2,
    }
    values.update(overrides)
    return CoinbaseSettings.model_validate(values)


@contextlib.asynccontextmanager
async def running(connector: VenueConnector) -> AsyncIterator[VenueConnector]:
    task = asyncio.create_task(connector.run())
    try:
        yield connector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def covered(sink: Sink, truth: list[Trade]) -> bool:
    """Every ground-truth id between each symbol's first and last forwarded id arrived."""
    for symbol in SYMBOLS:
        got = {t.trade_id for t in sink.trades(symbol)}
        if len(got) < 20:
            return False
        lo, hi = min(got), max(got)
        if not {t.trade_id for t in truth if t.symbol == symbol and lo <= t.trade_id <= hi} <= got:
            return False
    return True


def assert_equal_to_truth(sink: Sink, truth: list[Trade]) -> None:
    by_key = {(t.symbol, t.trade_id): t for t in truth}
    trades = [r for r in sink.records if isinstance(r, Trade)]
    keys = [(t.symbol, t.trade_id) for t in trades]
    assert len(keys) == len(set(keys))  # nothing twice
    for trade in trades:
        real = by_key[(trade.symbol, trade.trade_id)]
        assert (trade.exchange, trade.price, trade.qty, trade.side, trade.ts_event) == (
            "coinbase",
            real.price,
            real.qty,
            real.side,
            real.ts_event,
        )
    for symbol in SYMBOLS:  # id for id, from the first forwarded to the last
        ids = sorted(t.trade_id for t in trades if t.symbol == symbol)
        assert ids == list(range(ids[0], ids[-1] + 1))


async def test_dropped_matches_are_backfilled_and_malformed_frames_dead_lettered(
    sink: Sink,
) -> None:
    faults = FaultPlan(drop_prob=0.03, malformed_prob=0.02, seed=11)
    market = MultiVenueMarket({"coinbase": SYMBOLS}, 150.0, 7).market("coinbase")
    async with CoinbaseFront(market, faults) as front:
        connector = VenueConnector(CoinbaseSpec(settings_for(front)), SYMBOLS, sink)
        async with running(connector):
            await asyncio.sleep(2.5)
            await wait_until(
                lambda: (
                    connector.status().backfill_pending == 0 and covered(sink, front.ground_truth())
                ),
                within=10,
            )
            status = connector.status()
            truth = front.ground_truth()
    assert_equal_to_truth(sink, truth)
    assert sum(s.gaps_found for s in status.symbols.values()) >= 1
    assert sum(s.backfilled for s in status.symbols.values()) >= 1
    assert status.dead_letters >= 1 and len(sink.dead_letters) == status.dead_letters
    assert all(d.source == "coinbase" for d in sink.dead_letters)
    assert sink.quotes and all(q.bid < q.ask and q.bid_qty > 0 for q in sink.quotes)


async def test_reconnects_catch_up_over_rest(sink: Sink) -> None:
    faults = FaultPlan(disconnect_every_s=0.7, duplicate_prob=0.02, reorder_prob=0.01, seed=4)
    market = MultiVenueMarket({"coinbase": SYMBOLS}, 150.0, 9).market("coinbase")
    async with CoinbaseFront(market, faults) as front:
        connector = VenueConnector(CoinbaseSpec(settings_for(front)), SYMBOLS, sink)
        async with running(connector):
            await asyncio.sleep(2.5)
            await wait_until(
                lambda: (
                    connector.status().backfill_pending == 0 and covered(sink, front.ground_truth())
                ),
                within=10,
            )
            status = connector.status()
            truth = front.ground_truth()
    assert_equal_to_truth(sink, truth)
    assert status.reconnects >= 2
    assert status.dead_letters == 0


async def test_restart_backfills_from_the_stored_position(sink: Sink) -> None:
    market = MultiVenueMarket({"coinbase": SYMBOLS}, 150.0, 3).market("coinbase")
    async with CoinbaseFront(market) as front:
        await asyncio.sleep(1.0)  # trades happen while we are "down"
        truth = [t for t in front.ground_truth() if t.symbol == "BTC-USD"]
        position = truth[len(truth) // 3].trade_id
        connector = VenueConnector(
            CoinbaseSpec(settings_for(front, backfill_page_size=25)),
            ["BTC-USD"],
            sink,
            start_positions={"BTC-USD": position},
        )
        async with running(connector):
            await wait_until(lambda: len(sink.trade_ids("BTC-USD")) > len(truth), within=10)
            await wait_until(lambda: connector.status().backfill_pending == 0, within=10)
    ids = sorted(sink.trade_ids("BTC-USD"))
    assert ids[0] == position + 1 and ids == list(range(ids[0], ids[-1] + 1))
