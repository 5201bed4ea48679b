"""The HTTP API. For now: health, Prometheus metrics, and the query endpoint the CLI uses
while a running pipeline holds the data dir."""

from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from marketpipe.model.errors import MarketpipeError
from marketpipe.model.intervals import INTERVALS
from marketpipe.model.symbols import normalize
from marketpipe.observability.metrics import REGISTRY
from marketpipe.serving.routes_marts import DuckDBMarts, marts_router
from marketpipe.serving.rows import position_row, to_rows
from marketpipe.storage.embedded import EmbeddedStore

StatusProvider = Callable[[], dict[str, Any]]


def create_app(store: EmbeddedStore, status: StatusProvider) -> FastAPI:
    app = FastAPI(title="marketpipe", version="0.1.0")
    app.include_router(marts_router(DuckDBMarts(store.dirs.root)))

    @app.get("/api/v1/system/health", summary="Per-component status and the last commit age")
    def health() -> JSONResponse:
        body = status()
        return JSONResponse(body, status_code=200 if body.get("status") == "ok" else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/query/positions", summary="Per-symbol positions: last trade, completeness")
    def positions() -> list[dict[str, Any]]:
        return [position_row(p) for p in store.warm.positions()]

    @app.get("/api/v1/query/{kind}", summary="Candles, trades or alerts from the warm store")
    def query(
        kind: Literal["candles", "trades", "alerts"],
        exchange: str | None = None,
        symbol: str | None = None,
        interval: str = "1m",
        start: int | None = Query(None, description="inclusive, µs since the epoch"),
        end: int | None = Query(None, description="exclusive, µs since the epoch"),
        limit: int | None = Query(None, ge=1, le=1_000_000),
    ) -> list[dict[str, Any]]:
        if interval not in INTERVALS:
            raise HTTPException(400, f"interval must be one of {', '.join(INTERVALS)}")
        try:
            symbol = normalize(symbol) if symbol else None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        try:
            warm = store.warm
            if kind == "candles":
                records: list[Any] = warm.candles(
                    exchange=exchange,
                    symbol=symbol,
                    interval=interval,
                    start=start,
                    end=end,
                    limit=limit,
                )
            elif kind == "trades":
                records = warm.trades(
                    exchange=exchange, symbol=symbol, start=start, end=end, limit=limit
                )
            else:
                records = warm.alerts(
                    exchange=exchange, symbol=symbol, start=start, end=end, limit=limit
                )
        except MarketpipeError as exc:
            raise HTTPException(503, str(exc)) from None
        return to_rows(records)

    return app
