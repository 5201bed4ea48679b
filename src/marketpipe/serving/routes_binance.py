"""Binance-compatible REST (`/api/v3`): the spot API's market-data endpoints, same formats.

Rows and objects follow Binance's spot API documentation field for field, with prices and
quantities as decimal strings and times in milliseconds. `exchange=` (default binance)
selects another ingested exchange. Parameters are checked by hand so that every bad one gets
Binance's own error code and message.
"""

import json
import re
import time
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from marketpipe.model import times
from marketpipe.model.intervals import INTERVAL_US
from marketpipe.model.symbols import to_native
from marketpipe.serving import errors as e
from marketpipe.serving.binance_rows import (
    aggregate,
    book_object,
    d,
    kline_row,
    ms,
    symbol_info,
    ticker_object,
    trade_object,
)
from marketpipe.serving.market import MarketView, UnknownSymbol

SYMBOL_PATTERN = re.compile(r"^[A-Za-z0-9\-_.]{1,20}$")
# Every interval Binance knows; the ones we build are a subset, the rest get -1120 as well.
BINANCE_INTERVALS = "1s 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M".split()

# Parameters keep Binance's camelCase names (startTime, endTime, fromId, timeZone).
Str = Annotated[str | None, Query()]


def _json(body: Any) -> Response:
    return Response(msgspec.json.encode(body), media_type="application/json")


def _required(name: str, value: str | None) -> str:
    if value is None:
        raise e.BinanceError(
            e.MANDATORY_PARAM,
            f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
        )
    if value == "":
        raise e.BinanceError(e.PARAM_EMPTY, f"Parameter '{name}' was empty.")
    return value


def _int(name: str, value: str | None, low: int, high: int | None = None) -> int | None:
    if value is None:
        return None
    if value == "":
        raise e.BinanceError(e.PARAM_EMPTY, f"Parameter '{name}' was empty.")
    if not re.fullmatch(r"[0-9]{1,20}", value) or int(value) < low:
        raise e.BinanceError(
            e.ILLEGAL_CHARS,
            f"Illegal characters found in parameter '{name}'; legal range is "
            f"'{low}{'' if high is None else f'-{high}'}'.",
        )
    number = int(value)
    return number if high is None else min(number, high)


def _limit(value: str | None, default: int, high: int) -> int:
    found = _int("limit", value, 1, high)
    return default if found is None else found


class BinanceRoutes:
    def __init__(self, view: MarketView) -> None:
        self.view = view
        self.router = APIRouter(prefix="/api/v3", tags=["Binance-compatible REST"])
        r = self.router
        r.add_api_route("/ping", self.ping, methods=["GET"], summary="Test connectivity")
        r.add_api_route("/time", self.time, methods=["GET"], summary="Server time (ms)")
        r.add_api_route(
            "/exchangeInfo",
            self.exchange_info,
            methods=["GET"],
            summary="Symbols served, with Binance's fields",
        )
        r.add_api_route(
            "/klines", self.klines, methods=["GET"], summary="Candles as Binance's 12-field rows"
        )
        r.add_api_route(
            "/uiKlines",
            self.klines,
            methods=["GET"],
            summary="Candles for charts (same rows as klines)",
        )
        r.add_api_route("/trades", self.trades, methods=["GET"], summary="Recent trades")
        r.add_api_route(
            "/aggTrades",
            self.agg_trades,
            methods=["GET"],
            summary="Trades at one price, time and side aggregated",
        )
        r.add_api_route(
            "/ticker/24hr", self.ticker_24hr, methods=["GET"], summary="Rolling 24 h statistics"
        )
        r.add_api_route("/ticker/price", self.ticker_price, methods=["GET"], summary="Latest price")
        r.add_api_route(
            "/ticker/bookTicker", self.book_ticker, methods=["GET"], summary="Best bid and ask"
        )
        r.add_api_route(
            "/depth",
            self.depth,
            methods=["GET"],
            summary="Order book (top of book until books are ingested)",
        )

    # ---- parameter helpers ---------------------------------------------------------------

    def _exchange(self, exchange: str | None) -> str:
        name = (exchange or "binance").lower()
        if exchange is not None and name not in self.view.directory().exchanges():
            raise e.BinanceError(
                e.INVALID_PARAMETER, f"Invalid data sent for a parameter: exchange {exchange!r}."
            )
        return name

    def _symbol(self, value: str | None, exchange: str) -> str:
        text = _required("symbol", value)
        if not SYMBOL_PATTERN.fullmatch(text):
            raise e.BinanceError(
                e.ILLEGAL_CHARS,
                "Illegal characters found in parameter 'symbol'; "
                "legal range is '^[A-Z0-9-_.]{1,20}$'.",
            )
        try:
            return self.view.resolve(text, exchange)
        except UnknownSymbol:
            raise e.BinanceError(e.BAD_SYMBOL, "Invalid symbol.") from None

    def _symbols(self, symbol: str | None, symbols: str | None, exchange: str) -> list[str] | None:
        """One (`symbol`), several (`symbols=["A","B"]`), or None for all."""
        if symbol is not None and symbols is not None:
            raise e.BinanceError(e.BAD_COMBO, "Combination of optional parameters invalid.")
        if symbol is not None:
            return [self._symbol(symbol, exchange)]
        if symbols is None:
            return None
        try:
            names = json.loads(symbols)
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError
        except ValueError:
            raise e.BinanceError(
                e.ILLEGAL_CHARS, "Illegal characters found in parameter 'symbols'."
            ) from None
        return [self._symbol(n, exchange) for n in names]

    # ---- endpoints -----------------------------------------------------------------------

    # async: an endpoint that does no I/O is cheaper on the event loop than a thread hop.
    async def ping(self) -> dict[str, Any]:
        return {}

    async def time(self) -> dict[str, int]:
        return {"serverTime": int(time.time() * 1000)}

    def exchange_info(
        self, symbol: Str = None, symbols: Str = None, exchange: Str = None
    ) -> Response:
        ex = self._exchange(exchange)
        chosen = self._symbols(symbol, symbols, ex)
        names = chosen if chosen is not None else [s for x, s in self.view.symbols(ex)]
        return _json(
            {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": [symbol_info(name) for name in names],
            }
        )

    async def klines(
        self,
        symbol: Str = None,
        interval: Str = None,
        startTime: Str = None,
        endTime: Str = None,
        timeZone: Str = None,
        limit: Str = None,
        exchange: Str = None,
    ) -> Response:
        # The same query at the same data version is answered on the event loop; anything
        # else (validation reads the symbol directory, storage reads) runs in the threadpool.
        raw = ("klines-raw", symbol, interval, startTime, endTime, timeZone, limit, exchange)
        body = self.view.reusable(raw)
        if body is None:
            body = await run_in_threadpool(
                self.view.response,
                raw,
                lambda: self._klines(
                    symbol, interval, startTime, endTime, timeZone, limit, exchange
                ),
            )
        return Response(body, media_type="application/json")

    def _klines(
        self,
        symbol: str | None,
        interval: str | None,
        startTime: str | None,
        endTime: str | None,
        timeZone: str | None,
        limit: str | None,
        exchange: str | None,
    ) -> bytes:
        ex = self._exchange(exchange)
        name = self._symbol(symbol, ex)
        iv = _required("interval", interval)
        if iv not in BINANCE_INTERVALS or iv not in INTERVAL_US:
            raise e.BinanceError(e.BAD_INTERVAL, "Invalid interval.")
        if timeZone not in (None, "0", "+00:00", "0:00"):
            raise e.BinanceError(e.INVALID_PARAMETER, "Invalid data sent for a parameter.")
        start = _int("startTime", startTime, 0, times.MAX_MS)
        end = _int("endTime", endTime, 0, times.MAX_MS)
        if start is not None and end is not None and start > end:
            raise e.BinanceError(e.BAD_COMBO, "Combination of optional parameters invalid.")
        window = (None if start is None else start * 1000, None if end is None else end * 1000 + 1)
        count = _limit(limit, 500, 1000)

        def build() -> bytes:
            routed = self.view.klines(ex, name, iv, *window, count)
            return msgspec.json.encode([kline_row(c) for c in routed.records])

        return self.view.response(("klines", ex, name, iv, window, count), build)

    def trades(self, symbol: Str = None, limit: Str = None, exchange: Str = None) -> Response:
        ex = self._exchange(exchange)
        name = self._symbol(symbol, ex)
        routed = self.view.router.trades(
            ex, name, None, None, limit=_limit(limit, 500, 1000), newest_first=True
        )
        return _json([trade_object(t) for t in reversed(routed.records)])

    def agg_trades(
        self,
        symbol: Str = None,
        fromId: Str = None,
        startTime: Str = None,
        endTime: Str = None,
        limit: Str = None,
        exchange: Str = None,
    ) -> Response:
        ex = self._exchange(exchange)
        name = self._symbol(symbol, ex)
        count = _limit(limit, 500, 1000)
        from_id = _int("fromId", fromId, 0)
        start = _int("startTime", startTime, 0, times.MAX_MS)
        end = _int("endTime", endTime, 0, times.MAX_MS)
        if from_id is not None and (start is not None or end is not None):
            raise e.BinanceError(e.BAD_COMBO, "Combination of optional parameters invalid.")
        router = self.view.router
        if start is not None or end is not None:
            trades = router.trades(
                ex,
                name,
                None if start is None else start * 1000,
                None if end is None else end * 1000 + 1000,
                limit=count * 4,
            ).records
            return _json(aggregate(trades)[:count])
        if from_id is not None:
            # Trade ids are per-symbol and ascending in time: scan forward from the newest.
            trades = [
                t
                for t in router.trades(
                    ex, name, None, None, limit=20_000, newest_first=True
                ).records
                if t.trade_id >= from_id
            ]
            trades.reverse()
            return _json(aggregate(trades)[:count])
        newest = router.trades(ex, name, None, None, limit=count * 4, newest_first=True).records
        newest.reverse()
        return _json(aggregate(newest)[-count:])

    def ticker_24hr(
        self, symbol: Str = None, symbols: Str = None, type: Str = None, exchange: Str = None
    ) -> Response:
        if type not in (None, "FULL", "MINI"):
            raise e.BinanceError(e.INVALID_PARAMETER, "Invalid data sent for a parameter.")
        ex = self._exchange(exchange)
        chosen = self._symbols(symbol, symbols, ex)
        quotes = self.view.quotes()
        names = chosen if chosen is not None else [s for _, s in self.view.symbols(ex)]
        rows = []
        for name in names:
            stats = self.view.stats_24h(ex, name)
            if stats is not None:
                rows.append(ticker_object(stats, quotes.get((ex, name)), mini=type == "MINI"))
        if symbol is not None:
            if not rows:
                raise e.BinanceError(e.BAD_SYMBOL, "Invalid symbol.")
            return _json(rows[0])
        return _json(rows)

    def ticker_price(
        self, symbol: Str = None, symbols: Str = None, exchange: Str = None
    ) -> Response:
        ex = self._exchange(exchange)
        chosen = self._symbols(symbol, symbols, ex)
        names = chosen if chosen is not None else [s for _, s in self.view.symbols(ex)]
        rows = []
        for name in names:
            last = self.view.last_trade(ex, name)
            if last is not None:
                rows.append({"symbol": to_native(name), "price": d(last.price)})
        if symbol is not None:
            if not rows:
                raise e.BinanceError(e.BAD_SYMBOL, "Invalid symbol.")
            return _json(rows[0])
        return _json(rows)

    def book_ticker(
        self, symbol: Str = None, symbols: Str = None, exchange: Str = None
    ) -> Response:
        ex = self._exchange(exchange)
        chosen = self._symbols(symbol, symbols, ex)
        quotes = self.view.quotes()
        names = chosen if chosen is not None else [s for _, s in self.view.symbols(ex)]
        rows = [book_object(name, quotes.get((ex, name))) for name in names]
        return _json(rows[0] if symbol is not None else rows)

    def depth(self, symbol: Str = None, limit: Str = None, exchange: Str = None) -> Response:
        ex = self._exchange(exchange)
        name = self._symbol(symbol, ex)
        _limit(limit, 100, 5000)
        quote = self.view.quotes().get((ex, name))
        if quote is None:
            return _json({"lastUpdateId": 0, "bids": [], "asks": []})
        return _json(
            {
                "lastUpdateId": ms(quote.ts_event),
                "bids": [[d(quote.bid), d(quote.bid_qty)]],
                "asks": [[d(quote.ask), d(quote.ask_qty)]],
            }
        )


# ---- Binance's shapes --------------------------------------------------------------------
