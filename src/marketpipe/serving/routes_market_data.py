"""`GET /api/v1/market/snapshots`: the newest aggregator snapshot (CoinGecko) per coin.

Two "nothing" answers, kept apart on purpose: a backend that stores no market data at all
(`Backend.market` is None, e.g. a data dir written before market data existed) answers 503
and says so, because no request could ever succeed there; a backend that stores market data
but has received none yet answers 200 with an empty list, as any empty time series does.
An asset no snapshot is of is a 404 naming the assets there are, never an empty 200.
"""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from marketpipe.model.records import MarketSnapshot
from marketpipe.serving.market import MarketView
from marketpipe.serving.market_data import requested_asset
from marketpipe.serving.rows import snapshot_row

NO_MARKET_DATA = (
    "this API's backend stores no market data (CoinGecko snapshots); "
    "a pipeline with the coingecko source writes them"
)


def market_data_router(view: MarketView) -> APIRouter:
    router = APIRouter(prefix="/api/v1/market", tags=["market"])

    @router.get(
        "/snapshots",
        summary="Newest market snapshot per coin: price, market cap, FDV, 24 h volume, supply, "
        "rank (CoinGecko)",
    )
    def snapshots(
        asset: Annotated[
            str | None,
            Query(
                description="BTC, or a pair in any spelling (BTC-USD, BTCUSDT): its base asset",
                max_length=30,
            ),
        ] = None,
        vs_currency: Annotated[
            str | None,
            Query(pattern=r"^[A-Za-z]{2,10}$", description="e.g. USD; default: every quote"),
        ] = None,
        source: Annotated[
            str | None, Query(pattern=r"^[a-z0-9_]{1,20}$", description="e.g. coingecko")
        ] = None,
    ) -> list[dict[str, Any]]:
        held = view.market_snapshots()
        if held is None:
            raise HTTPException(503, NO_MARKET_DATA)
        chosen = [
            s
            for s in held
            if (vs_currency is None or s.vs_currency == vs_currency.upper())
            and (source is None or s.source == source)
        ]
        if asset is not None:
            chosen = _of_asset(chosen, held, asset)
        return [snapshot_row(s) for s in chosen]

    return router


def _of_asset(
    chosen: list[MarketSnapshot], held: list[MarketSnapshot], asset: str
) -> list[MarketSnapshot]:
    known = sorted({s.asset for s in held})
    try:
        name = requested_asset(asset, known)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    found = [s for s in chosen if s.asset == name]
    if not found:
        listed = ", ".join(known[:30]) + (", ..." if len(known) > 30 else "")
        meant = f" (the base asset of {asset!r})" if name != asset.strip().upper() else ""
        raise HTTPException(
            404,
            f"no market snapshot of {name!r}{meant} with these filters; "
            f"assets with snapshots: {listed or 'none yet'}",
        )
    return found
