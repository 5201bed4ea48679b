"""Binance's wire formats for our records: kline rows, trade, aggTrade, ticker and book
objects and exchangeInfo symbols, field for field, prices and quantities as 8-decimal strings
and times in milliseconds. Shared by the REST routes and the WebSocket streams."""

from typing import Any

from marketpipe.model.records import Candle, Quote, Trade
from marketpipe.model.symbols import to_native
from marketpipe.serving.market import Stats24h


def d(value: float) -> str:
    """Binance's decimal strings: fixed 8 decimals."""
    return f"{value:.8f}"


def ms(us: int) -> int:
    """Our microseconds as Binance's milliseconds."""
    return us // 1000


def kline_row(c: Candle) -> list[Any]:
    """[open time, o, h, l, c, volume, close time, quote volume, trades, taker buy base,
    taker buy quote, ignore] — close time is the window's last millisecond."""
    return [
        ms(c.open_time),
        d(c.open),
        d(c.high),
        d(c.low),
        d(c.close),
        d(c.volume),
        ms(c.close_time) - 1,
        d(c.quote_volume),
        c.trade_count,
        d(c.taker_buy_volume),
        d(c.taker_buy_quote_volume),
        "0",
    ]


def trade_object(t: Trade) -> dict[str, Any]:
    return {
        "id": t.trade_id,
        "price": d(t.price),
        "qty": d(t.qty),
        "quoteQty": d(t.price * t.qty),
        "time": ms(t.ts_event),
        "isBuyerMaker": t.side == "sell",
        "isBestMatch": True,
    }


def aggregate(trades: list[Trade]) -> list[dict[str, Any]]:
    """Binance aggTrades: consecutive trades at one price, millisecond and taker side merge.
    The aggregate id is its first trade id (unique and ascending, as Binance's are)."""
    out: list[dict[str, Any]] = []
    key: tuple[float, int, str] | None = None
    qty = 0.0
    for t in trades:
        k = (t.price, ms(t.ts_event), t.side)
        if k == key and out:
            qty += t.qty
            out[-1]["q"] = d(qty)
            out[-1]["l"] = t.trade_id
            continue
        key, qty = k, t.qty
        out.append(
            {
                "a": t.trade_id,
                "p": d(t.price),
                "q": d(t.qty),
                "f": t.trade_id,
                "l": t.trade_id,
                "T": ms(t.ts_event),
                "m": t.side == "sell",
                "M": True,
            }
        )
    return out


def ticker_object(s: Stats24h, quote: Quote | None, *, mini: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"symbol": to_native(s.symbol)}
    if not mini:
        body |= {
            "priceChange": d(s.change),
            "priceChangePercent": f"{s.change_pct:.3f}",
            "weightedAvgPrice": d(s.weighted_avg),
            "prevClosePrice": d(s.prev_close),
        }
    body["lastPrice"] = d(s.last)
    if not mini:
        body |= {
            "lastQty": d(s.last_qty),
            "bidPrice": d(quote.bid if quote else 0.0),
            "bidQty": d(quote.bid_qty if quote else 0.0),
            "askPrice": d(quote.ask if quote else 0.0),
            "askQty": d(quote.ask_qty if quote else 0.0),
        }
    body |= {
        "openPrice": d(s.open),
        "highPrice": d(s.high),
        "lowPrice": d(s.low),
        "volume": d(s.volume),
        "quoteVolume": d(s.quote_volume),
        "openTime": ms(s.open_time),
        "closeTime": ms(s.close_time) - 1,
        "firstId": s.first_id,
        "lastId": s.last_id,
        "count": s.count,
    }
    return body


def book_object(symbol: str, quote: Quote | None) -> dict[str, Any]:
    return {
        "symbol": to_native(symbol),
        "bidPrice": d(quote.bid if quote else 0.0),
        "bidQty": d(quote.bid_qty if quote else 0.0),
        "askPrice": d(quote.ask if quote else 0.0),
        "askQty": d(quote.ask_qty if quote else 0.0),
    }


def symbol_info(symbol: str) -> dict[str, Any]:
    base, _, quote = symbol.partition("-")
    return {
        "symbol": to_native(symbol),
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": False,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": False,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": d(0.00000001),
                "maxPrice": d(1e9),
                "tickSize": d(0.00000001),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": d(0.00000001),
                "maxQty": d(1e9),
                "stepSize": d(0.00000001),
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }
