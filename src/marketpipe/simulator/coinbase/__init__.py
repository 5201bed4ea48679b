"""Coinbase Exchange's front: the ws-feed (`matches`, `ticker`, `heartbeat`) and REST
`/products/{id}/trades` with cursor pagination, over a venue's synthetic market."""

from marketpipe.simulator.coinbase.feed import CoinbaseFeed
from marketpipe.simulator.coinbase.front import CoinbaseFront

__all__ = ["CoinbaseFeed", "CoinbaseFront"]
