"""dbt's marts over HTTP: `/api/v1/analytics/summary/daily`, `/market-overview`,
`/cross-venue/hourly` and `/market-cap/hourly`.

The reader comes from `app.state.marts` (a MartsReader), set by whoever wires the app.
Embedded mode reads `{data_dir}/analytics.duckdb`, the last complete marts file: dbt builds
the next one under another name and renames it into place, so a request opens either the old
or the new file, never a half-built one, and never waits for a build.
"""

import datetime as dt
from pathlib import Path
from typing import Any, Protocol

import duckdb
from fastapi import APIRouter, HTTPException, Query, Request, Response

from marketpipe.model.symbols import normalize
from marketpipe.serving.market_data import requested_asset
from marketpipe.storage.embedded import DataDir


class MartsReader(Protocol):
    def rows(self, sql: str, params: list[Any]) -> tuple[list[dict[str, Any]], str | None]:
        """Rows of a query over the `marts` schema, and when the marts were built (ISO)."""
        ...


class MartsNotBuilt(Exception):
    pass


class DuckDBMarts:
    """Embedded mode: a fresh read-only connection per request to the published marts file."""

    def __init__(self, data_dir: Path) -> None:
        self.path = DataDir(data_dir).marts

    def rows(self, sql: str, params: list[Any]) -> tuple[list[dict[str, Any]], str | None]:
        try:
            con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error:
            raise MartsNotBuilt(f"no marts at {self.path} yet") from None
        try:
            con.execute("SET TimeZone = 'UTC'")
            built = dt.datetime.fromtimestamp(self.path.stat().st_mtime, dt.UTC)
            try:
                cursor = con.execute(sql, params)
                names = [column[0] for column in cursor.description or []]
                rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            except duckdb.CatalogException:
                raise MartsNotBuilt("the marts file lacks this model; rebuild it") from None
        finally:
            con.close()
        return [_plain(row) for row in rows], _iso(built)


class PostgresMarts:
    """Cluster mode: the marts dbt built into schema `marts` of the PostgreSQL warm store."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, params: list[Any]) -> tuple[list[dict[str, Any]], str | None]:
        import psycopg
        from psycopg.rows import dict_row

        try:
            with psycopg.connect(self.url, row_factory=dict_row) as conn:
                conn.execute("SET TimeZone = 'UTC'")
                rows = conn.execute(sql.replace("?", "%s"), params).fetchall()
        except psycopg.errors.UndefinedTable:
            raise MartsNotBuilt("no marts in the warm store's database yet") from None
        except psycopg.OperationalError as exc:
            raise MartsNotBuilt(f"the marts database is unreachable: {exc}") from None
        return [_plain(dict(row)) for row in rows], None


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    for key, value in row.items():
        if isinstance(value, dt.datetime):
            row[key] = _iso(value)
        elif isinstance(value, dt.date):
            row[key] = value.isoformat()
    return row


def _day(text: str | None, name: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise HTTPException(400, f"{name}: {text!r} is not a date like 2024-08-09") from None


def marts_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

    def serve(
        request: Request, sql: str, params: list[Any], response: Response
    ) -> list[dict[str, Any]]:
        reader: MartsReader | None = getattr(request.app.state, "marts", None)
        if reader is None:
            raise HTTPException(503, "this API serves no dbt marts")
        try:
            rows, built = reader.rows(sql, params)
        except MartsNotBuilt as exc:
            raise HTTPException(
                503, f"{exc}: the scheduler builds the marts with dbt (see health)"
            ) from None
        if built:
            response.headers["X-Marts-Built-At"] = built
        return rows

    @router.get(
        "/summary/daily",
        summary="Daily trading summary per symbol (dbt mart trading_summary_daily)",
    )
    def summary_daily(
        request: Request,
        response: Response,
        symbol: str | None = Query(None, description="BTC-USDT or BTCUSDT; default: all"),
        start: str | None = Query(None, description="First UTC day, inclusive (2024-08-09)"),
        end: str | None = Query(None, description="Last UTC day, inclusive"),
        exchange: str | None = Query(None, description="e.g. binance"),
    ) -> list[dict[str, Any]]:
        where: list[str] = ["true"]
        params: list[Any] = []
        if symbol:
            try:
                params.append(normalize(symbol))
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from None
            where.append("symbol = ?")
        if exchange:
            where.append("exchange = ?")
            params.append(exchange.lower())
        first, last = _day(start, "start"), _day(end, "end")
        if first and last and first > last:
            raise HTTPException(400, "start must not be after end")
        if first:
            where.append("trade_date >= ?")
            params.append(first)
        if last:
            where.append("trade_date <= ?")
            params.append(last)
        sql = (
            f"SELECT * FROM marts.trading_summary_daily WHERE {' AND '.join(where)} "
            "ORDER BY trade_date, exchange, symbol"
        )
        return serve(request, sql, params, response)

    @router.get(
        "/market-overview",
        summary="Latest price, 24 h change and volume, and rank per symbol (dbt mart)",
    )
    def market_overview(request: Request, response: Response) -> list[dict[str, Any]]:
        sql = "SELECT * FROM marts.market_overview ORDER BY volume_rank, exchange, symbol"
        return serve(request, sql, [], response)

    @router.get(
        "/cross-venue/hourly",
        summary="Hourly cross-venue spread and volume share per asset (dbt marts)",
    )
    def cross_venue_hourly(
        request: Request,
        response: Response,
        asset: str | None = Query(
            None, description="BTC-USD (dollar quotes are one asset) or BTC; default: all"
        ),
        shares: bool = Query(False, description="one row per venue and hour instead"),
    ) -> list[dict[str, Any]]:
        table = "cross_venue_volume_share_hourly" if shares else "cross_venue_hourly"
        where, params = ["true"], []
        if asset:
            name = asset.strip().upper()
            if not name.replace("-", "").replace(".", "").isalnum() or name.count("-") > 1:
                raise HTTPException(400, f"asset {asset!r} is not BASE or BASE-QUOTE")
            where.append("asset = ?")
            params.append(name if "-" in name else f"{name}-USD")
        order = "hour_start, asset" + (", exchange" if shares else "")
        sql = f"SELECT * FROM marts.{table} WHERE {' AND '.join(where)} ORDER BY {order}"
        return serve(request, sql, params, response)

    @router.get(
        "/market-cap/hourly",
        summary="Our dollar volume per coin and hour as a share of its market cap, and "
        "circulating-supply turnover (dbt mart volume_share_of_market_cap_hourly)",
    )
    def market_cap_hourly(
        request: Request,
        response: Response,
        asset: str | None = Query(
            None, max_length=30, description="BTC, or a pair (BTC-USD, BTCUSDT): its base"
        ),
        start: str | None = Query(None, description="First UTC day, inclusive (2024-08-09)"),
        end: str | None = Query(None, description="Last UTC day, inclusive"),
    ) -> list[dict[str, Any]]:
        where: list[str] = ["true"]
        params: list[Any] = []
        if asset:
            try:
                params.append(requested_asset(asset))
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from None
            where.append("asset = ?")
        first, last = _day(start, "start"), _day(end, "end")
        if first and last and first > last:
            raise HTTPException(400, "start must not be after end")
        # Whole UTC days as hour bounds, so both warehouses compare timestamps alike.
        if first:
            where.append("hour_start >= ?")
            params.append(dt.datetime.combine(first, dt.time(), dt.UTC))
        if last:
            where.append("hour_start < ?")
            params.append(dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC))
        sql = (
            "SELECT * FROM marts.volume_share_of_market_cap_hourly "
            f"WHERE {' AND '.join(where)} ORDER BY hour_start, asset, data_source"
        )
        return serve(request, sql, params, response)

    return router
