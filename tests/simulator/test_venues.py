"""Several venues at once: one market, a front per venue, each speaking its protocol."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest
import websockets

from marketpipe.simulator import Divergence, FaultPlan, SimulatedVenues, first_ids_after
from marketpipe.simulator.finnhub import FinnhubFront, MarketHours
from marketpipe.simulator.venues import SIMULATED_TOKEN
from tests.simulator.venue_clients import LISTINGS, read_json

pytestmark = pytest.mark.integration


async def _first_trades(venues: SimulatedVenues) -> dict[str, list[dict[str, object]]]:
    """A few seconds of BTC trades from every venue, each read with its own protocol."""
    urls = venues.urls()
    out: dict[str, list[dict[str, object]]] = {}

    async def binance() -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(urls["binance"].ws_url + "/ws/btcusdt@trade") as ws,
        ):
            frames = []
            for _ in range(20):
                frames.append(json.loads((await ws.receive(timeout=5)).data))
            out["binance"] = frames

    async def coinbase() -> None:
        async with websockets.connect(urls["coinbase"].ws_url) as ws:
            await ws.send(
                json.dumps(
                    {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]}
                )
            )
            msgs = await read_json(ws, 2.0)
            out["coinbase"] = [m for m in msgs if m["type"] == "match"]

    async def kraken() -> None:
        async with websockets.connect(urls["kraken"].ws_url) as ws:
            sub = {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"]}}
            await ws.send(json.dumps(sub))
            msgs = await read_json(ws, 2.0)
            out["kraken"] = [t for m in msgs if m.get("channel") == "trade" for t in m["data"]]

    await asyncio.gather(binance(), coinbase(), kraken())
    return out


async def test_three_venues_serve_one_asset_at_nearly_one_price() -> None:
    venues = SimulatedVenues.build(LISTINGS, 100, seed=9)
    async with venues:
        trades = await _first_trades(venues)
        truth = {v: venues.ground_truth(v) for v in venues.venues}
    assert set(venues.urls()) == {"binance", "coinbase", "kraken"}
    assert len({u.ws_url for u in venues.urls().values()}) == 3  # a port each
    prices = {
        "binance": float(trades["binance"][-1]["p"]),  # type: ignore[arg-type]
        "coinbase": float(trades["coinbase"][-1]["price"]),  # type: ignore[arg-type]
        "kraken": float(trades["kraken"][-1]["price"]),  # type: ignore[arg-type]
    }
    assert all(len(trades[v]) >= 10 for v in prices)
    spread_bps = (max(prices.values()) / min(prices.values()) - 1) * 1e4
    assert spread_bps < 10.0
    for venue, rows in truth.items():
        assert rows and {t.exchange for t in rows} == {venue}
        assert (
            {t.symbol for t in rows} == {"BTC-USDT", "ETH-USDT"}
            if venue == "binance"
            else {
                "BTC-USD",
                "ETH-USD",
            }
        )
    merged = venues.ground_truth()
    assert len(merged) == sum(len(rows) for rows in truth.values())
    assert [t.ts_event for t in merged] == sorted(t.ts_event for t in merged)


async def test_each_venue_draws_its_own_faults_from_the_plan() -> None:
    plan = FaultPlan(drop_prob=0.2, seed=1)
    venues = SimulatedVenues.build(LISTINGS, 200, seed=3, faults={"coinbase": plan})
    async with venues:
        await asyncio.sleep(0.8)
        counts = venues.fault_counts
    assert counts["coinbase"]["drop"] > 0
    assert counts["binance"] == {} and counts["kraken"] == {}


async def test_a_divergence_shows_in_the_ground_truth_of_one_venue_only() -> None:
    episode = Divergence("coinbase", "BTC", bps=200.0, start_s=0.0, duration_s=60.0)
    venues = SimulatedVenues.build(LISTINGS, 100, seed=4, divergences=[episode])
    async with venues:
        await asyncio.sleep(1.0)
        last = {
            v: [t for t in venues.ground_truth(v) if t.symbol.startswith("BTC")][-1]
            for v in venues.venues
        }
    fair = venues.market.fair_price("BTC", [last["coinbase"].ts_event])[0]
    assert abs((last["coinbase"].price / fair - 1) * 1e4 - 200.0) < 6.0
    for venue in ("binance", "kraken"):
        fair_v = venues.market.fair_price("BTC", [last[venue].ts_event])[0]
        assert abs((last[venue].price / fair_v - 1) * 1e4) < 6.0


async def test_first_ids_continue_each_venues_stored_ids() -> None:
    first = first_ids_after({"kraken": {"BTC-USD": 41}, "binance": {"ETH-USDT": 99}})
    assert first == {"kraken": {"BTC-USD": 42}, "binance": {"ETH-USDT": 100}}
    venues = SimulatedVenues.build(LISTINGS, 100, seed=4, first_ids=first)
    async with venues:
        await asyncio.sleep(0.5)
        kraken = [t.trade_id for t in venues.ground_truth("kraken") if t.symbol == "BTC-USD"]
        binance = [t.trade_id for t in venues.ground_truth("binance") if t.symbol == "ETH-USDT"]
    assert kraken[0] == 42 and binance[0] == 100


async def test_a_port_in_use_fails_the_start_and_stops_the_venues_already_up() -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        venues = SimulatedVenues.build(LISTINGS, 10, seed=1, ports={"kraken": port})
        with pytest.raises(OSError):
            await venues.start()
        assert all(f._runner is None for f in venues.fronts.values())
    finally:
        blocker.close()


def test_an_unknown_venue_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"okx.*binance, coinbase, kraken, finnhub"):
        SimulatedVenues.build({"okx": ["BTC-USDT"]}, 10, seed=1)


async def test_finnhub_serves_stocks_beside_the_crypto_venues_to_a_client_with_its_token() -> None:
    listings = {"binance": ["BTC-USDT"], "finnhub": ["AAPL", "MSFT"]}
    venues = SimulatedVenues.build(listings, 200, seed=5)
    async with venues:
        urls = venues.urls()
        assert urls["finnhub"].token == SIMULATED_TOKEN and urls["binance"].token is None
        url = f"{urls['finnhub'].ws_url}?token={urls['finnhub'].token}"
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "symbol": "MSFT"}))
            body: dict[str, object] = {"type": ""}
            while body["type"] != "trade":
                body = json.loads(await asyncio.wait_for(ws.recv(), 3))
        front = venues.front("finnhub")
        assert isinstance(front, FinnhubFront) and front.feed.hours is None  # around the clock
    data = body["data"]
    assert isinstance(data, list) and {item["s"] for item in data} == {"MSFT"}
    assert {t.symbol for t in venues.ground_truth("finnhub")} == {"AAPL-USD", "MSFT-USD"}


def test_the_market_hours_flag_makes_finnhub_keep_us_hours() -> None:
    venues = SimulatedVenues.build({"finnhub": ["AAPL"]}, 10, seed=1, market_hours=True)
    front = venues.front("finnhub")
    assert isinstance(front, FinnhubFront) and isinstance(front.feed.hours, MarketHours)
