"""Stock tickers in our symbol model: `AAPL` is the equity `AAPL-USD` (see `model.symbols`).

`model.symbols.normalize` reads pairs only (`normalize("AAPL")` raises), so the Finnhub venue
maps its US tickers with the model's equity helpers: `BRK.B` is `BRK.B-USD`, and the quote is
dropped again on the wire.
"""

from marketpipe.model.symbols import EQUITY_QUOTE, equity_symbol, equity_ticker, is_ticker

QUOTE = EQUITY_QUOTE
__all__ = ["QUOTE", "is_ticker", "to_symbol", "to_ticker"]


def to_symbol(ticker: str) -> str:
    """`aapl`, `AAPL` or `AAPL-USD` -> `AAPL-USD`; ValueError for anything else."""
    return equity_symbol(ticker)


def to_ticker(symbol: str) -> str:
    """`AAPL-USD` (or `AAPL`) -> Finnhub's `AAPL`."""
    return equity_ticker(symbol)
