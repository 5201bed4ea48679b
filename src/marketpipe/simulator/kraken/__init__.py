"""Kraken's front: WebSocket v2 (`trade`, `ticker`, heartbeats) at `/v2` and REST
`/0/public/Trades` paged by time, over a venue's synthetic market or a recording."""

from marketpipe.simulator.kraken.feed import KrakenFeed
from marketpipe.simulator.kraken.front import KrakenFront
from marketpipe.simulator.kraken.recorded import RecordedKrakenFeed

__all__ = ["KrakenFeed", "KrakenFront", "RecordedKrakenFeed"]
