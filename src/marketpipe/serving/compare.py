"""One asset across venues: where it trades, at what price, and how far apart the venues are.

An asset is its base (`BTC`); it may be quoted in several dollar forms (Binance's `BTC-USDT`,
Coinbase's `BTC-USD`), which a trader compares as one market, so by default every USD-like
quote counts. Spreads are in basis points of the median last price.
"""

import statistics
from dataclasses import dataclass
from typing import Any, Final

from marketpipe.model.records import MarketSnapshot
from marketpipe.model.symbols import USD_LIKE
from marketpipe.serving.market import MarketView
from marketpipe.serving.rows import iso, snapshot_row

BPS: Final = 10_000.0


@dataclass(frozen=True, slots=True)
class VenuePrice:
    exchange: str
    symbol: str
    last: float
    last_time: int
    bid: float | None
    ask: float | None
    vwap_1m: float | None
    volume_1m: float | None
    minute: int | None  # open time of the 1m candle the VWAP is of


def venue_prices(view: MarketView, base: str, quote: str | None = None) -> list[VenuePrice]:
    """The newest price of `base` on every venue that has traded it, ordered by venue."""
    quotes = view.quotes()
    wanted = {quote.upper()} if quote else USD_LIKE
    found: list[VenuePrice] = []
    for exchange, symbol in view.symbols():
        asset, _, quoted = symbol.partition("-")
        if asset != base.upper() or quoted not in wanted:
            continue
        trade = view.last_trade(exchange, symbol)
        if trade is None:
            continue
        newest = view.router.candles(exchange, symbol, "1m", None, None, limit=1, newest_first=True)
        candle = newest.records[0] if newest.records else None
        q = quotes.get((exchange, symbol))
        found.append(
            VenuePrice(
                exchange=exchange,
                symbol=symbol,
                last=trade.price,
                last_time=trade.ts_event,
                bid=q.bid if q else None,
                ask=q.ask if q else None,
                vwap_1m=candle.vwap if candle else None,
                volume_1m=candle.volume if candle else None,
                minute=candle.open_time if candle else None,
            )
        )
    return found


def comparison(
    base: str, prices: list[VenuePrice], market: MarketSnapshot | None = None
) -> dict[str, Any]:
    """The compare endpoint's body: each venue's price and its distance from the others, and
    the asset's market cap when an aggregator snapshot of it is stored (`market`: the whole
    snapshot; both null otherwise)."""
    lasts = [p.last for p in prices]
    median = statistics.median(lasts) if lasts else None
    venues = []
    for p in prices:
        others = [o.last for o in prices if o is not p]
        # Against the median of the *others*, as the divergence alert measures it.
        reference = statistics.median(others) if others else None
        venues.append(
            {
                "exchange": p.exchange,
                "symbol": p.symbol,
                "last_price": p.last,
                "last_trade_time": iso(p.last_time),
                "bid": p.bid,
                "ask": p.ask,
                "vwap_1m": p.vwap_1m,
                "volume_1m": p.volume_1m,
                "minute": iso(p.minute) if p.minute is not None else None,
                "vs_others_bps": _bps(p.last - reference, reference) if reference else None,
            }
        )
    bids = [p for p in prices if p.bid is not None]
    asks = [p for p in prices if p.ask is not None]
    # Ties go to the alphabetically first venue, so the answer never flips between calls.
    best_bid = min(bids, key=lambda p: (-(p.bid or 0.0), p.exchange), default=None)
    best_ask = min(asks, key=lambda p: (p.ask or 0.0, p.exchange), default=None)
    return {
        "base": base.upper(),
        "venues": venues,
        "median_price": median,
        "spread_bps": _bps(max(lasts) - min(lasts), median) if median else None,
        "best_bid": _side(best_bid, best_bid.bid if best_bid else None),
        "best_ask": _side(best_ask, best_ask.ask if best_ask else None),
        "cross_bps": _cross_bps(best_bid, best_ask),
        "market_cap": market.market_cap if market is not None else None,
        "market": snapshot_row(market) if market is not None else None,
    }


def _cross_bps(best_bid: VenuePrice | None, best_ask: VenuePrice | None) -> float | None:
    """Positive: one venue's bid is above another's ask, a crossed market across venues."""
    if best_bid is None or best_ask is None or best_bid.bid is None or best_ask.ask is None:
        return None
    return _bps(best_bid.bid - best_ask.ask, best_ask.ask)


def _bps(difference: float, reference: float | None) -> float | None:
    return round(difference / reference * BPS, 4) if reference else None


def _side(price: VenuePrice | None, value: float | None) -> dict[str, Any] | None:
    return None if price is None else {"exchange": price.exchange, "price": value}
