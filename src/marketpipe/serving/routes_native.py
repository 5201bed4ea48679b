"""The native REST API (`/api/v1`): market overview, analytics, system health, raw queries.

Times in responses are ISO-8601 UTC; time parameters take ISO-8601 or epoch milliseconds.
A bad parameter is a 4xx that says what is wrong, never an empty 200 or a 500.
"""

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.responses import JSONResponse

from marketpipe.model import times
from marketpipe.model.errors import QueryError
from marketpipe.model.intervals import INTERVAL_US, INTERVALS
from marketpipe.model.records import Alert, Candle
from marketpipe.model.symbols import to_native
from marketpipe.serving.compare import comparison, venue_prices
from marketpipe.serving.market import MarketView, Stats24h, UnknownExchange, UnknownSymbol
from marketpipe.serving.market_data import snapshot_for
from marketpipe.serving.pipeline_stats import PipelineStats
from marketpipe.serving.rows import iso, position_row, to_rows

IntervalName = Literal["1m", "5m", "15m", "1h", "4h", "1d"]
AlertKindName = Literal["whale_trade", "volume_spike", "price_spike", "venue_divergence"]
TimeParam = Annotated[
    str | None,
    Query(description="ISO-8601 UTC (2024-08-09T00:00:00Z) or epoch milliseconds", max_length=40),
]
ExchangeParam = Annotated[str, Query(description="Ingested exchange", pattern=r"^[a-z0-9_]{1,20}$")]
TIERS_HEADER = "X-Marketpipe-Tiers"


def parse_time(value: str | None, name: str) -> int | None:
    """ISO-8601 or epoch ms to µs; QueryError (a 400) naming the parameter otherwise."""
    if value is None:
        return None
    try:
        return times.parse_time(value)
    except ValueError as exc:
        raise QueryError(f"{name}: {exc}") from None


def _range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise QueryError("start must be before end")
    return t0, t1


def candle_row(c: Candle) -> dict[str, Any]:
    return {
        "open_time": iso(c.open_time),
        "close_time": iso(c.close_time),
        "open": c.open,
        "high": c.high,
        "low": c.low,
        "close": c.close,
        "volume": c.volume,
        "quote_volume": c.quote_volume,
        "trade_count": c.trade_count,
        "taker_buy_volume": c.taker_buy_volume,
        "vwap": c.vwap,
        "is_final": c.is_final,
        "revision": c.revision,
    }


def alert_row(a: Alert) -> dict[str, Any]:
    return to_rows([a])[0]


def stats_row(s: Stats24h) -> dict[str, Any]:
    return {
        "exchange": s.exchange,
        "symbol": s.symbol,
        "native_symbol": to_native(s.symbol),
        "last_price": s.last,
        "open_24h": s.open,
        "high_24h": s.high,
        "low_24h": s.low,
        "change_24h": s.change,
        "change_pct_24h": round(s.change_pct, 4),
        "volume_24h": s.volume,
        "quote_volume_24h": s.quote_volume,
        "trades_24h": s.count,
        "vwap_24h": s.weighted_avg,
        "as_of": iso(s.close_time),
    }


class NativeRoutes:
    def __init__(self, view: MarketView, stats: PipelineStats) -> None:
        self.view = view
        self.stats = stats
        self.market = APIRouter(prefix="/api/v1/market", tags=["market"])
        self.analytics = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
        self.system = APIRouter(prefix="/api/v1/system", tags=["system"])
        self.query = APIRouter(prefix="/api/v1/query", tags=["query"])
        m, a, s, q = self.market, self.analytics, self.system, self.query
        m.add_api_route(
            "/realtime",
            self.realtime,
            methods=["GET"],
            summary="Latest price, best bid/ask and 24 h stats for every symbol",
        )
        m.add_api_route(
            "/summary",
            self.summary,
            methods=["GET"],
            summary="Market-wide 24 h totals, top gainers and losers",
        )
        m.add_api_route(
            "/top-by-volume",
            self.top_by_volume,
            methods=["GET"],
            summary="Symbols by 24 h quote volume",
        )
        m.add_api_route(
            "/top-by-trades",
            self.top_by_trades,
            methods=["GET"],
            summary="Symbols by 24 h trade count",
        )
        m.add_api_route(
            "/compare",
            self.compare,
            methods=["GET"],
            summary="One asset on every venue: price, bid/ask, 1m VWAP, spread in bps, market cap",
        )
        m.add_api_route(
            "/ticker-health",
            self.ticker_health,
            methods=["GET"],
            summary="Freshness and completeness per symbol",
        )
        a.add_api_route(
            "/klines/{symbol}",
            self.klines,
            methods=["GET"],
            summary="Candles of any interval; rows carry is_final and revision",
        )
        a.add_api_route(
            "/trades-count", self.trades_count, methods=["GET"], summary="Trades per window"
        )
        a.add_api_route("/alerts", self.alerts, methods=["GET"], summary="Alerts, newest first")
        a.add_api_route(
            "/alerts/whale-alerts",
            self.whale_alerts,
            methods=["GET"],
            summary="Whale-trade alerts, newest first",
        )
        s.add_api_route(
            "/pipeline",
            self.pipeline,
            methods=["GET"],
            summary="Throughput, lag, connections, completeness, dead letters",
        )
        q.add_api_route(
            "/positions",
            self.positions,
            methods=["GET"],
            summary="Per-symbol positions: last trade, completeness",
        )
        q.add_api_route(
            "/{kind}",
            self.query_records,
            methods=["GET"],
            summary="Candles, trades or alerts (the CLI's `query`)",
        )

    def routers(self) -> list[APIRouter]:
        return [self.market, self.analytics, self.system, self.query]

    def _exchange(self, exchange: str | None) -> str | None:
        """None stays None (every exchange); a name no exchange has is a 404 naming it."""
        if exchange is None:
            return None
        directory = self.view.directory()
        try:
            return directory.exchange(exchange)
        except UnknownExchange:
            known = ", ".join(directory.exchanges()) or "none"
            raise HTTPException(404, f"unknown exchange {exchange!r}; known: {known}") from None

    def _symbol(self, symbol: str, exchange: str | None) -> str:
        self._exchange(exchange)
        try:
            return self.view.resolve(symbol, exchange)
        except UnknownSymbol:
            names = self.view.directory().symbols(exchange)
            known = ", ".join(to_native(s) for s in names[:20]) + (", ..." * (len(names) > 20))
            where = f" on {exchange!r}" if exchange is not None else ""
            raise HTTPException(
                404,
                f"unknown symbol {symbol!r}{where}: no data stored and not configured; "
                f"GET /api/v1/query/positions lists the stored symbols (known: {known or 'none'})",
            ) from None

    # ---- market --------------------------------------------------------------------------

    def realtime(
        self, exchange: Annotated[str | None, Query(max_length=20)] = None
    ) -> list[dict[str, Any]]:
        exchange = self._exchange(exchange)
        quotes = self.view.quotes()
        rows = []
        for s in self.view.all_stats(exchange):
            row = stats_row(s)
            q = quotes.get((s.exchange, s.symbol))
            row |= {
                "bid": q.bid if q else None,
                "bid_qty": q.bid_qty if q else None,
                "ask": q.ask if q else None,
                "ask_qty": q.ask_qty if q else None,
            }
            rows.append(row)
        return rows

    def compare(
        self,
        base: Annotated[str, Query(pattern=r"^[A-Za-z0-9]{1,20}$", description="e.g. BTC")],
        quote: Annotated[
            str | None,
            Query(pattern=r"^[A-Za-z0-9]{1,20}$", description="one quote; default USD-like"),
        ] = None,
    ) -> dict[str, Any]:
        prices = venue_prices(self.view, base, quote)
        if not prices:
            bases = sorted({s.partition("-")[0] for _, s in self.view.symbols()})
            raise HTTPException(
                404,
                f"no venue has traded {base.upper()}"
                + (f" against {quote.upper()}" if quote else " against a USD-like quote")
                + f"; bases with trades: {', '.join(bases[:30]) or 'none'}",
            )
        held = self.view.market_snapshots()
        return comparison(base, prices, snapshot_for(held, base) if held else None)

    def summary(self) -> dict[str, Any]:
        stats = self.view.all_stats()
        ranked = sorted(stats, key=lambda s: s.change_pct)
        return {
            "symbols": len(stats),
            "quote_volume_24h": sum(s.quote_volume for s in stats),
            "trades_24h": sum(s.count for s in stats),
            "advancing": sum(1 for s in stats if s.change > 0),
            "declining": sum(1 for s in stats if s.change < 0),
            "top_gainers": [stats_row(s) for s in reversed(ranked[-3:])],
            "top_losers": [stats_row(s) for s in ranked[:3]],
            "as_of": iso(max((s.close_time for s in stats), default=0)) if stats else None,
        }

    def top_by_volume(
        self, limit: Annotated[int, Query(ge=1, le=100)] = 10
    ) -> list[dict[str, Any]]:
        stats = sorted(self.view.all_stats(), key=lambda s: s.quote_volume, reverse=True)
        return [stats_row(s) for s in stats[:limit]]

    def top_by_trades(
        self, limit: Annotated[int, Query(ge=1, le=100)] = 10
    ) -> list[dict[str, Any]]:
        stats = sorted(self.view.all_stats(), key=lambda s: s.count, reverse=True)
        return [stats_row(s) for s in stats[:limit]]

    def ticker_health(self) -> list[dict[str, Any]]:
        now = time.time()
        rows = []
        for p in self.view.positions():
            row = position_row(p)
            row["age_s"] = round(now - p.max_ts_event / 1e6, 3) if p.max_ts_event else None
            complete = p.completeness
            row["status"] = (
                "unprovable" if complete is None else "ok" if complete >= 0.999 else "incomplete"
            )
            rows.append(row)
        return rows

    # ---- analytics -----------------------------------------------------------------------

    def klines(
        self,
        response: Response,
        symbol: Annotated[str, Path(description="BTCUSDT or BTC-USDT", max_length=30)],
        interval: IntervalName = "1m",
        start: TimeParam = None,
        end: TimeParam = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
        exchange: ExchangeParam = "binance",
    ) -> dict[str, Any]:
        name = self._symbol(symbol, exchange)
        t0, t1 = _range(start, end)
        if t0 is None:
            routed = self.view.router.candles(
                exchange, name, interval, None, t1, limit=limit, newest_first=True
            )
            candles = list(reversed(routed.records))
        else:
            routed = self.view.router.candles(exchange, name, interval, t0, t1, limit=limit)
            candles = routed.records
        response.headers[TIERS_HEADER] = ",".join(routed.tiers) or "none"
        more = t0 is not None and len(candles) == limit
        return {
            "exchange": exchange,
            "symbol": name,
            "interval": interval,
            "tiers": list(routed.tiers),
            "candles": [candle_row(c) for c in candles],
            "next_start": iso(candles[-1].open_time + INTERVAL_US[interval]) if more else None,
        }

    def trades_count(
        self,
        symbol: Annotated[str | None, Query(max_length=30)] = None,
        interval: IntervalName = "1h",
        limit: Annotated[int, Query(ge=1, le=1000)] = 24,
        exchange: ExchangeParam = "binance",
    ) -> list[dict[str, Any]]:
        self._exchange(exchange)
        names = (
            [self._symbol(symbol, exchange)]
            if symbol
            else [s for _, s in self.view.symbols(exchange)]
        )
        rows: list[dict[str, Any]] = []
        for name in names:
            candles = self.view.router.candles(
                exchange, name, interval, None, None, limit=limit, newest_first=True
            ).records
            rows.extend(
                {
                    "exchange": exchange,
                    "symbol": name,
                    "open_time": iso(c.open_time),
                    "interval": interval,
                    "trade_count": c.trade_count,
                }
                for c in reversed(candles)
            )
        return rows

    def alerts(
        self,
        kind: AlertKindName | None = None,
        symbol: Annotated[str | None, Query(max_length=30)] = None,
        start: TimeParam = None,
        end: TimeParam = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        exchange: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,20}$")] = None,
    ) -> list[dict[str, Any]]:
        t0, t1 = _range(start, end)
        exchange = self._exchange(exchange)
        name = self._symbol(symbol, exchange) if symbol else None
        routed = self.view.router.alerts(
            exchange, name, t0, t1, kind=kind, limit=limit, newest_first=True
        )
        return [alert_row(a) for a in routed.records]

    def whale_alerts(
        self,
        symbol: Annotated[str | None, Query(max_length=30)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return self.alerts(kind="whale_trade", symbol=symbol, limit=limit)

    # ---- system and raw queries ----------------------------------------------------------

    def pipeline(self) -> dict[str, Any]:
        return self.stats.snapshot()

    def positions(self) -> list[dict[str, Any]]:
        return [position_row(p) for p in self.view.positions()]

    def query_records(
        self,
        kind: Literal["candles", "trades", "alerts"],
        exchange: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,20}$")] = None,
        symbol: Annotated[str | None, Query(max_length=30)] = None,
        interval: IntervalName = "1m",
        start: Annotated[
            int | None, Query(description="inclusive, µs since the epoch", ge=0, le=times.MAX_US)
        ] = None,
        end: Annotated[
            int | None, Query(description="exclusive, µs since the epoch", ge=0, le=times.MAX_US)
        ] = None,
        limit: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    ) -> list[dict[str, Any]]:
        if start is not None and end is not None and start >= end:
            raise QueryError("start must be before end")
        exchange = self._exchange(exchange)
        name = self._symbol(symbol, exchange) if symbol else None
        router = self.view.router
        if kind == "alerts":
            return to_rows(router.alerts(exchange, name, start, end, limit=limit).records)
        pairs = [(ex, s) for ex, s in self.view.symbols(exchange) if name is None or s == name]
        records: list[Any] = []
        for ex, s in pairs:
            if kind == "candles":
                records += router.candles(ex, s, interval, start, end, limit=limit).records
            else:
                records += router.trades(ex, s, start, end, limit=limit).records
        order = (
            (lambda r: (r.open_time, r.exchange, r.symbol))
            if kind == "candles"
            else (lambda r: (r.ts_event, r.trade_id))
        )
        records.sort(key=order)
        return to_rows(records[:limit] if limit is not None else records)


def health_response(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=200 if body.get("status") == "ok" else 503)


__all__ = ["INTERVALS", "NativeRoutes", "health_response", "parse_time"]
