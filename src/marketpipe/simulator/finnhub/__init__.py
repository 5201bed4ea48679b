"""Finnhub's front: the stock-trades WebSocket (token, per-symbol subscribe, trade batches,
pings) over a synthetic market of stocks, optionally keeping US market hours."""

from marketpipe.simulator.finnhub.feed import FinnhubFeed, stock_market
from marketpipe.simulator.finnhub.front import FinnhubFront
from marketpipe.simulator.finnhub.hours import MarketHours

__all__ = ["FinnhubFeed", "FinnhubFront", "MarketHours", "stock_market"]
