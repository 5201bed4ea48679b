"""Helpers for the venue-front tests: a multi-venue market and a real websockets reader."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection

from marketpipe.simulator.multivenue import MultiVenueMarket

LISTINGS = {
    "binance": ["BTC-USDT", "ETH-USDT"],
    "coinbase": ["BTC-USD", "ETH-USD"],
    "kraken": ["BTC-USD", "ETH-USD"],
}


def market(tps: float = 200.0, seed: int = 5, **kwargs: Any) -> MultiVenueMarket:
    return MultiVenueMarket(LISTINGS, tps, seed, **kwargs)


async def read_json(
    ws: ClientConnection, seconds: float, until: Callable[[dict[str, Any]], bool] | None = None
) -> list[dict[str, Any]]:
    """Messages for `seconds` or until `until` matches one (that one included)."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            break
        body = json.loads(raw)
        out.append(body)
        if until is not None and until(body):
            break
    return out
