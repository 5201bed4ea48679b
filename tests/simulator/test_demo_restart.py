"""A demo restarted on the same data dir continues the simulated venue's trade ids, and a trade
the connector drops as already forwarded is counted where the user looks (totals, health)."""

import asyncio

import httpx
import pytest

from marketpipe.config import Settings
from marketpipe.embedded.demo import demo, point_at
from marketpipe.embedded.live import LiveRun
from marketpipe.simulator import SimulatedExchange, SyntheticMarket
from marketpipe.storage.embedded import EmbeddedStore

pytestmark = pytest.mark.integration

SYMBOLS = ["BTC-USDT", "ETH-USDT"]
RATE = 200.0


def demo_settings(settings: Settings) -> Settings:
    api = settings.api.model_copy(update={"port": 0})
    scheduler = settings.scheduler.model_copy(update={"enabled": False})
    return settings.model_copy(update={"symbols": SYMBOLS, "api": api, "scheduler": scheduler})


def stored_ids(settings: Settings) -> dict[str, list[int]]:
    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        rows = store.warm.reader().execute(
            "SELECT symbol, list(trade_id ORDER BY trade_id) FROM trades_recent GROUP BY symbol"
        )
        return {symbol: ids for symbol, ids in rows.fetchall()}
    finally:
        store.close()


def test_first_ids_continue_a_symbol_and_leave_the_others_to_the_seed() -> None:
    fresh = SyntheticMarket(SYMBOLS, RATE, seed=7)
    seeded = SyntheticMarket(["BTCUSDT", "ETH-USDT"], RATE, seed=7, first_ids={"BTCUSDT": 501})
    assert seeded.next_trade_id("BTC-USDT") == 501
    assert seeded.next_trade_id("ETH-USDT") == fresh.next_trade_id("ETH-USDT")
    trades = [t for t in seeded.advance(seeded.start_us + 5_000_000) if t.symbol == "BTC-USDT"]
    assert [t.trade_id for t in trades] == list(range(501, 501 + len(trades)))
    # Only the ids move: prices and times are the seed's, as without first_ids.
    same = [t for t in fresh.advance(fresh.start_us + 5_000_000) if t.symbol == "BTC-USDT"]
    assert len(same) == len(trades) and same[0].price == trades[0].price


async def test_second_demo_on_the_same_data_dir_stores_new_trades_from_its_first_seconds(
    settings: Settings,
) -> None:
    settings = demo_settings(settings)
    first = await demo(settings, duration_s=4.0, trades_per_second=RATE)
    assert first.pipeline is not None and first.pipeline.totals.trades_stored > 300
    before = stored_ids(settings)

    # Two seconds are about a third of the first run's trades: before the fix, all of them
    # would have been dropped as duplicates of the first run's ids.
    second = await demo(settings, duration_s=2.0, trades_per_second=RATE)
    assert second.pipeline is not None
    totals = second.pipeline.totals
    assert totals.trades_stored > 150
    # Only what the start-up catch-up over REST and the stream both delivered, if anything.
    assert totals.duplicates == totals.duplicates_source < totals.trades_stored // 20
    after = stored_ids(settings)
    for symbol in SYMBOLS:
        old, new = before[symbol], after[symbol]
        assert new[: len(old)] == old  # nothing stored was lost
        # The new run's ids follow on from the last stored one, with no hole and no overlap.
        assert new == list(range(old[0], old[0] + len(new)))
        assert len(new) > len(old)


async def test_trades_the_connector_drops_as_seen_are_counted_as_duplicates(
    settings: Settings,
) -> None:
    settings = demo_settings(settings)
    first = await demo(settings, duration_s=4.0, trades_per_second=RATE)
    assert first.pipeline is not None
    stored = first.pipeline.totals.trades_stored
    health: dict[str, object] = {}

    def ready(live: LiveRun) -> None:
        async def probe() -> None:
            await asyncio.sleep(2.5)
            async with httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{live.api_port}/api/v1/system/health"
                health.update((await client.get(url)).json())

        probes.append(asyncio.get_running_loop().create_task(probe()))

    probes: list[asyncio.Task[None]] = []
    # A venue whose ids start afresh (the old demo): every live trade id is at or below the
    # last stored one, so the connector drops each one before the engine sees it.
    async with SimulatedExchange(SyntheticMarket(SYMBOLS, RATE, seed=7)) as exchange:
        live = LiveRun(point_at(settings, exchange))
        await live.run(3.0, ready)
    await asyncio.gather(*probes)
    assert live.pipeline is not None and live.connector is not None
    dropped = live.connector.duplicates_dropped
    assert dropped > 100
    totals = live.pipeline.totals
    assert totals.trades_stored == 0 and stored > dropped
    # Counted at the latest on the consumer's next pass (a quarter second): all of them.
    assert (totals.duplicates, totals.duplicates_source) == (dropped, dropped)
    components = health["components"]
    assert isinstance(components, dict)
    engine, binance = components["engine"], components["binance"]
    assert engine["duplicates"] == engine["duplicates_source"] > 0
    assert binance["duplicates_dropped"] == engine["duplicates_source"]
