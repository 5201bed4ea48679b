"""Acceptance: a live run of the real connector against the simulated exchange with faults on
ends with every trade id stored once and candles equal to the simulator's ground truth."""

import asyncio
import time

import httpx
import pytest

from harness.reference import assert_candles_match, reference_candles
from marketpipe.config import Settings
from marketpipe.embedded.demo import point_at
from marketpipe.embedded.live import SETTLE_ENDED_S, SETTLE_STOPPED_S, LiveRun
from marketpipe.model.errors import StorageError
from marketpipe.simulator import FaultPlan, SimulatedExchange, SyntheticMarket
from marketpipe.storage.embedded import EmbeddedStore

pytestmark = pytest.mark.integration

SYMBOLS = ["BTC-USDT", "ETH-USDT"]


def live_settings(settings: Settings) -> Settings:
    binance = settings.binance.model_copy(
        update={"backoff_initial_s": 0.05, "backoff_max_s": 0.5, "silence_timeout_s": 2.0}
    )
    api = settings.api.model_copy(update={"port": 0})
    return settings.model_copy(update={"symbols": SYMBOLS, "binance": binance, "api": api})


async def test_live_run_with_faults_is_complete_and_matches_ground_truth(
    settings: Settings,
) -> None:
    settings = live_settings(settings)
    faults = FaultPlan(
        disconnect_every_s=3.0,
        duplicate_prob=0.02,
        reorder_prob=0.02,
        malformed_prob=0.01,
        drop_prob=0.01,
        seed=11,
    )
    health: dict[str, object] = {}
    exchange_holder: list[object] = []

    def ready(live: LiveRun) -> None:
        async def probe() -> None:
            await asyncio.sleep(2.0)
            async with httpx.AsyncClient() as client:
                response = await client.get(
                    f"http://127.0.0.1:{live.api_port}/api/v1/system/health"
                )
                health.update(response.json())
                metrics = await client.get(f"http://127.0.0.1:{live.api_port}/metrics")
                health["metrics"] = metrics.text

        exchange_holder.append(asyncio.get_running_loop().create_task(probe()))

    async with SimulatedExchange(SyntheticMarket(SYMBOLS, 300, seed=3), faults) as exchange:
        live = LiveRun(point_at(settings, exchange))
        await live.run(12.0, ready)
        truth = exchange.ground_truth()
    assert live.connector is not None
    connector = live.connector.status()
    # Injected duplicates were dropped (at the connector or the engine), gaps found and filled.
    assert sum(s.duplicates_dropped for s in connector.symbols.values()) > 0
    assert sum(s.gaps_filled for s in connector.symbols.values()) > 0
    assert connector.reconnects >= 2
    assert health.get("components"), "health endpoint answered during the run"
    assert "producer_messages_produced_total" in str(health["metrics"])
    assert "consumer_messages_inserted_total" in str(health["metrics"])

    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        positions = {p.symbol: p for p in store.warm.positions()}
        dead = store.warm.counts()["dead_letters"]
        for symbol in SYMBOLS:
            position = positions[symbol]
            assert position.completeness == 1.0, f"{symbol} has holes: {position.id_ranges}"
            (lo, hi) = position.id_ranges[0]
            expected = [t for t in truth if t.symbol == symbol and lo <= t.trade_id <= hi]
            stored = store.warm.trades(
                exchange="binance", symbol=symbol, start=None, end=None, limit=None
            )
            assert [t.trade_id for t in stored] == sorted(t.trade_id for t in expected)
            reference = reference_candles(
                [
                    (t.symbol, t.trade_id, t.price, t.qty, t.side == "sell", t.ts_event // 1000)
                    for t in expected
                ]
            )
            candles = store.warm.candles(
                exchange="binance", symbol=symbol, interval="1m", start=None, end=None, limit=None
            )
            assert_candles_match(candles, reference)
        assert dead > 0  # malformed frames were dead-lettered, not fatal
    finally:
        store.close()


async def test_restart_resumes_from_stored_positions_and_backfills_the_downtime(
    settings: Settings,
) -> None:
    settings = live_settings(settings)
    async with SimulatedExchange(SyntheticMarket(SYMBOLS, 200, seed=5)) as exchange:
        await LiveRun(point_at(settings, exchange)).run(3.0)
        down_from = time.time_ns() // 1000
        await asyncio.sleep(2.0)  # the market trades on while we are down
        down_to = time.time_ns() // 1000
        second = LiveRun(point_at(settings, exchange))
        await second.run(3.0)
        truth = exchange.ground_truth()
    during_downtime = {(t.symbol, t.trade_id) for t in truth if down_from < t.ts_event < down_to}
    assert len(during_downtime) > 100
    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        for position in store.warm.positions():
            assert position.completeness == 1.0, position.id_ranges
            lo, hi = position.id_ranges[0]
            expected = {
                t.trade_id for t in truth if t.symbol == position.symbol and lo <= t.trade_id <= hi
            }
            assert position.trades_seen == len(expected)
        stored = {
            (t.symbol, t.trade_id)
            for t in store.warm.trades(exchange=None, symbol=None, start=None, end=None, limit=None)
        }
        assert during_downtime <= stored  # every trade made while we were down is stored
    finally:
        store.close()
    assert second.connector is not None
    backfilled = sum(s.backfilled for s in second.connector.status().symbols.values())
    assert backfilled > 0, "the downtime was back-filled over REST"


async def test_a_failing_store_ends_the_run_with_its_error_instead_of_hanging(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = live_settings(settings)
    commits = {"n": 0}

    def disk_full(self: EmbeddedStore, batch: object) -> int:
        commits["n"] += 1
        raise StorageError("batch commit failed and was rolled back: No space left on device")

    monkeypatch.setattr(EmbeddedStore, "commit", disk_full)
    async with SimulatedExchange(SyntheticMarket(SYMBOLS, 200, seed=9)) as exchange:
        with pytest.raises(StorageError, match="No space left"):
            await asyncio.wait_for(LiveRun(point_at(settings, exchange)).run(30.0), 20)
    assert commits["n"] == 1
    assert not (settings.data_dir / "marketpipe.lock.json").exists()


def test_id_holes_are_the_ids_between_stored_ranges() -> None:
    from marketpipe.embedded.live import id_holes

    assert id_holes([(9, 9), (1, 5)]) == [(6, 8)]
    assert id_holes([(1, 5), (6, 9)]) == []
    assert id_holes([]) == []


async def test_a_run_that_reaches_its_duration_waits_longer_for_back_fills_than_a_stopped_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bounded run (demo, bench) ends with its back-fills done; a stop() (a signal: docker
    stop kills after 10 s) keeps the short wait."""
    waits: list[float] = []

    async def settle(self: LiveRun, bus: object, timeout_s: float) -> None:
        waits.append(timeout_s)

    monkeypatch.setattr(LiveRun, "_settle", settle)
    settings = live_settings(settings)
    async with SimulatedExchange(SyntheticMarket(SYMBOLS, 50, seed=5), FaultPlan()) as exchange:
        await LiveRun(point_at(settings, exchange)).run(1.0)
        stopped = LiveRun(point_at(settings, exchange))
        await stopped.run(60.0, lambda live: asyncio.get_running_loop().call_later(1.0, live.stop))
    assert waits == [SETTLE_ENDED_S, SETTLE_STOPPED_S]
    assert SETTLE_STOPPED_S < 10.0 < SETTLE_ENDED_S  # under docker stop's grace; over it
