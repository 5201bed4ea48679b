"""Stock tickers in our symbol model: `AAPL` is `AAPL-USD`, a stock priced in dollars.

`model.symbols.normalize` knows only BASE-QUOTE pairs (`normalize("AAPL")` raises), so the
Finnhub venue maps its US tickers to `<TICKER>-USD` itself: `BRK.B` is `BRK.B-USD`, and the
quote is dropped again on the wire. A ticker is 1 to 15 of A-Z, 0-9 and `.`, starting with a
letter (Finnhub's spelling of US share classes: `BRK.B`).
"""

import re

QUOTE = "USD"
_TICKER = re.compile(r"[A-Z][A-Z0-9.]{0,14}")


def is_ticker(text: str) -> bool:
    return _TICKER.fullmatch(text) is not None


def to_symbol(ticker: str) -> str:
    """`aapl`, `AAPL` or `AAPL-USD` -> `AAPL-USD`; ValueError for anything else."""
    cleaned = ticker.strip().upper()
    if cleaned.endswith(f"-{QUOTE}"):
        cleaned = cleaned[: -len(QUOTE) - 1]
    if not is_ticker(cleaned):
        raise ValueError(f"{ticker!r} is not a US stock ticker (e.g. AAPL, BRK.B)")
    return f"{cleaned}-{QUOTE}"


def to_ticker(symbol: str) -> str:
    """`AAPL-USD` (or `AAPL`) -> Finnhub's `AAPL`."""
    return to_symbol(symbol)[: -len(QUOTE) - 1]
