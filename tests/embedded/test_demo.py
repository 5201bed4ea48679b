"""`demo` with several venues: each simulated venue speaks its own protocol under chaos faults,
and what the pipeline stores equals the simulator's ground truth, venue by venue."""

from collections import defaultdict
from typing import Any

import pytest

from harness.reference import RawTrade, assert_candles_match, reference_candles
from marketpipe.config import Settings
from marketpipe.embedded.demo import demo, demo_venues
from marketpipe.model.records import Trade
from marketpipe.observability.native import extension
from marketpipe.simulator import FaultPlan, SimulatedExchange
from marketpipe.simulator.divergence import Divergence
from marketpipe.simulator.venues import SimulatedVenues
from marketpipe.storage.embedded import EmbeddedStore

pytestmark = pytest.mark.integration

VENUES = ["binance", "coinbase", "kraken"]


def _raw(trades: list[Trade]) -> list[RawTrade]:
    """The reference's rows: a seller taker means the buyer was the maker."""
    return [
        (t.symbol, t.trade_id, t.price, t.qty, t.side == "sell", t.ts_event // 1000) for t in trades
    ]


def test_the_demo_runs_every_venue_with_a_connector_and_a_front() -> None:
    assert set(VENUES) <= set(demo_venues())


async def test_every_venue_ends_complete_and_equal_to_its_ground_truth(settings: Settings) -> None:
    api = settings.api.model_copy(update={"port": 0})
    scheduler = settings.scheduler.model_copy(update={"enabled": False})
    settings = settings.model_copy(
        update={"symbols": ["BTC-USDT", "ETH-USDT"], "api": api, "scheduler": scheduler}
    ).choose_venues(VENUES)
    simulated: list[SimulatedExchange | SimulatedVenues] = []
    health: list[dict[str, Any]] = []
    live = await demo(
        settings, duration_s=20.0, trades_per_second=60, faults=FaultPlan.parse("chaos"),
        started=simulated.append, ready=lambda run: health.append(run.status()),
    )  # fmt: skip
    [venues] = simulated
    assert isinstance(venues, SimulatedVenues) and venues.venues == VENUES
    assert all(sum(venues.front(v).fault_counts.values()) > 0 for v in VENUES)  # chaos happened

    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        positions = {(p.exchange, p.symbol): p for p in store.warm.positions()}
        assert set(positions) == {
            ("binance", "BTC-USDT"), ("binance", "ETH-USDT"), ("coinbase", "BTC-USD"),
            ("coinbase", "ETH-USD"), ("kraken", "BTC-USD"), ("kraken", "ETH-USD"),
        }  # fmt: skip
        # Venues within a few bps of each other: no divergence without the scenario.
        assert not store.warm.alerts(None, None, None, None, kind="venue_divergence")
        for key, position in positions.items():
            assert position.completeness == 1.0, (key, position.id_ranges)
            assert position.trades_seen > 50, key
        for venue in VENUES:
            stored: dict[str, tuple[int, int]] = {
                symbol: (p.id_ranges[0][0], p.id_ranges[-1][1])
                for (exchange, symbol), p in positions.items()
                if exchange == venue
            }
            truth: dict[str, list[Trade]] = defaultdict(list)
            for trade in venues.ground_truth(venue):
                lo, hi = stored[trade.symbol]
                if lo <= trade.trade_id <= hi:  # the span the run was connected for
                    truth[trade.symbol].append(trade)
            for symbol, trades in truth.items():
                lo, hi = stored[symbol]
                assert sorted(t.trade_id for t in trades) == list(range(lo, hi + 1)), symbol
                candles = store.warm.candles(
                    exchange=venue, symbol=symbol, interval="1m", start=None, end=None
                )
                assert_candles_match(candles, reference_candles(_raw(trades)))
    finally:
        store.close()
    assert live.pipeline is not None and live.pipeline.totals.trades_stored == sum(
        p.trades_seen for p in positions.values()
    )
    native = health[0]["components"]["native"]
    assert native["active"] is (extension() is not None) and native["status"] == "ok"


async def test_a_venue_moved_away_fires_one_divergence_alert(settings: Settings) -> None:
    """Kraken's BTC 80 bps above the others for 130 s: the others see it at half that (40 bps,
    under the 50 bps threshold), Kraken's episode lasts two or more final minutes."""
    api = settings.api.model_copy(update={"port": 0})
    scheduler = settings.scheduler.model_copy(update={"enabled": False})
    alerts = settings.alerts.model_copy(update={"divergence_s": 60.0})
    settings = settings.model_copy(
        update={"api": api, "scheduler": scheduler, "alerts": alerts}
    ).choose_venues(VENUES, ["BTC-USD"])
    await demo(
        settings, duration_s=150.0, trades_per_second=20,
        divergences=[Divergence("kraken", "BTC", 80.0, 0.0, 130.0)],
    )  # fmt: skip
    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        fired = store.warm.alerts(None, None, None, None, kind="venue_divergence")
    finally:
        store.close()
    assert [(a.exchange, a.symbol) for a in fired] == [("kraken", "BTC-USD")]
    assert 60 < fired[0].value < 100  # about +80 bps against the others' median
