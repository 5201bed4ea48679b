"""Coinbase Exchange's front: the ws-feed (`matches`, `ticker`, `heartbeat`) and REST
`/products/{id}/trades` with cursor pagination, over a venue's synthetic market or a
recording of the real feed."""

from marketpipe.simulator.coinbase.feed import CoinbaseFeed
from marketpipe.simulator.coinbase.front import CoinbaseFront
from marketpipe.simulator.coinbase.recorded import RecordedCoinbaseFeed

__all__ = ["CoinbaseFeed", "CoinbaseFront", "RecordedCoinbaseFeed"]
