"""The Coinbase front fed by the real recording (tests/data/coinbase, 2021-04-17)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from marketpipe.simulator.coinbase import CoinbaseFront, RecordedCoinbaseFeed
from tests.simulator.venue_clients import read_json

pytestmark = pytest.mark.integration

RECORDING = Path(__file__).parents[2] / "data" / "coinbase" / "cryptofeed-COINBASE.ws.28.0.gz"


def _recorded(kind: str) -> list[dict[str, Any]]:
    out = []
    with gzip.open(RECORDING, "rt") as lines:
        for line in lines:
            head, _, raw = line.partition(": ")
            if " " not in head and raw.startswith(f'{{"type":"{kind}"'):
                out.append(json.loads(raw))
    return out


async def _replay(shift_times: bool) -> tuple[list[dict[str, Any]], CoinbaseFront, list[Any]]:
    feed = RecordedCoinbaseFeed(RECORDING, shift_times=shift_times, speed=20.0, lead_in_s=0.5)
    products = sorted(s.native for s in feed.specs)
    async with CoinbaseFront(feed) as cb, websockets.connect(cb.ws_url) as ws:
        sub = {"type": "subscribe", "product_ids": products, "channels": ["matches"]}
        await ws.send(json.dumps(sub))
        msgs = await read_json(ws, 3.0)
        async with httpx.AsyncClient(base_url=cb.rest_url) as client:
            rest = (await client.get("/products/SKL-USD/trades")).json()
        return msgs, cb, rest


async def test_the_recorded_matches_are_replayed_in_order_with_their_ids_and_sides() -> None:
    msgs, cb, rest = await _replay(shift_times=True)
    recorded = _recorded("match")
    sent = [m for m in msgs if m["type"] == "match"]
    key = ("trade_id", "product_id", "price", "size", "side", "sequence")
    assert [tuple(m[k] for k in key) for m in sent] == [tuple(m[k] for k in key) for m in recorded]
    # last_match on subscribe: the trade just before each product's first recorded match
    last = {m["product_id"]: m["trade_id"] for m in msgs if m["type"] == "last_match"}
    assert last == {m["product_id"]: m["trade_id"] for m in _recorded("last_match")}
    # times are shifted to now, keeping their spacing
    assert sent[0]["time"] != recorded[0]["time"] and sent[0]["time"].endswith("Z")
    truth = [t for t in cb.ground_truth() if t.symbol == "SKL-USD"]
    assert [t["trade_id"] for t in rest] == [t.trade_id for t in truth][::-1]
    by_id = {t.trade_id: t for t in truth}
    for row in rest:  # REST side is the maker's, like the match it came from
        assert row["side"] == ("sell" if by_id[row["trade_id"]].side == "buy" else "buy")


async def test_without_shifting_the_matches_go_out_as_recorded() -> None:
    msgs, _, _ = await _replay(shift_times=False)
    sent = [m for m in msgs if m["type"] == "match"]
    assert sent == _recorded("match")
