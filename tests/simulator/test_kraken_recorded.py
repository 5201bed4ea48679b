"""The Kraken front fed by the real v1 recording (tests/data/kraken, 2021-04-17): its trades
go out as v2 `trade` updates with sequential per-pair ids, and REST history holds the same."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from marketpipe.model.records import Trade
from marketpipe.simulator.kraken import KrakenFront
from marketpipe.simulator.kraken.recorded import RecordedKrakenFeed
from marketpipe.sources.kraken.frames import ArrivalKeys, parse_frame
from tests.simulator.venue_clients import read_json

pytestmark = pytest.mark.integration

RECORDING = Path(__file__).parents[1] / "data" / "kraken" / "cryptofeed-KRAKEN.ws.48.0"


def _recorded() -> list[tuple[str, Decimal, Decimal, str]]:
    """(pair, price, volume, taker side) of each v1 fill, read straight from the file."""
    out = []
    for line in RECORDING.read_text().splitlines():
        head, _, raw = line.partition(": ")
        if " " in head or not raw.startswith("["):
            continue
        body = json.loads(raw)
        if len(body) == 4 and body[2] == "trade":
            for price, volume, _, side, *_ in body[1]:
                taker = {"b": "buy", "s": "sell"}[side]
                out.append((body[3], Decimal(price), Decimal(volume), taker))
    return out


async def _replay() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    feed = RecordedKrakenFeed(RECORDING, speed=20.0, lead_in_s=0.5)
    pairs = sorted(s.native for s in feed.specs)
    async with KrakenFront(feed) as kr, websockets.connect(kr.ws_url) as ws:
        sub = {"method": "subscribe", "params": {"channel": "trade", "symbol": pairs}}
        await ws.send(json.dumps(sub))
        msgs = await read_json(ws, 3.0)
        async with httpx.AsyncClient(base_url=kr.rest_url) as client:
            rest = {
                p: (await client.get("/0/public/Trades", params={"pair": p})).json() for p in pairs
            }
    return msgs, rest


async def test_the_recorded_trades_go_out_as_v2_updates_with_sequential_ids_and_rest_agrees() -> (
    None
):
    msgs, rest = await _replay()
    recorded = _recorded()
    assert len(recorded) == 10
    items = [
        item
        for m in msgs
        if m.get("channel") == "trade" and m.get("type") == "update"
        for item in m["data"]
    ]
    sent = [
        (i["symbol"], Decimal(str(i["price"])), Decimal(str(i["qty"])), i["side"]) for i in items
    ]
    assert sent == recorded
    for pair in {r[0] for r in recorded}:  # ids 1, 2, ... per pair, in recorded order
        assert [i["trade_id"] for i in items if i["symbol"] == pair] == list(
            range(1, 1 + sum(r[0] == pair for r in recorded))
        )
    history = []
    for pair, answer in rest.items():
        assert answer["error"] == []
        (rows,) = [v for k, v in answer["result"].items() if k != "last"]
        assert [row[6] for row in rows] == [i["trade_id"] for i in items if i["symbol"] == pair]
        side = {"b": "buy", "s": "sell"}
        history += [(pair, Decimal(str(r[0])), Decimal(str(r[1])), side[r[3]]) for r in rows]
    assert sorted(history) == sorted(recorded)


async def test_the_kraken_v2_parser_reads_exactly_the_recorded_trades_from_the_front() -> None:
    msgs, _ = await _replay()
    keys = ArrivalKeys()
    parsed = [
        p
        for m in msgs
        if m.get("channel") == "trade"
        for p in parse_frame(json.dumps(m).encode(), 0, keys)
        if isinstance(p, Trade)
    ]
    recorded = _recorded()
    assert len(parsed) == len(recorded) == 10
    for trade, (pair, price, volume, taker) in zip(parsed, recorded, strict=True):
        assert (trade.price, trade.qty, str(trade.side)) == (float(price), float(volume), taker)
        assert trade.symbol.replace("-", "/") == pair
