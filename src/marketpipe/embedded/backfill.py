"""`marketpipe backfill`: fetch a time range of one symbol's trades over REST and run them
through the pipeline, so missing trades are stored and the affected candles recomputed.

Thin over existing parts: the REST client pages `historicalTrades` (starting at the first id
of the range, found through `aggTrades`); the normal Pipeline dedups against the stored id
ranges and merges the new trades into their windows (the candle monoid), committing revised
candles. Its allowed lateness is widened to reach back to the range's start, so trades in
long-final windows revise them instead of being set aside as late.
"""

import time
from dataclasses import dataclass

from marketpipe.config import Settings
from marketpipe.embedded.pipeline import Pipeline
from marketpipe.embedded.stores import open_store
from marketpipe.model.errors import SourceError
from marketpipe.model.records import Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.sources.binance.rest import BinanceRestClient

PAGE = 1000


@dataclass(frozen=True, slots=True)
class RangeBackfill:
    symbol: str
    fetched: int
    stored: int
    duplicates: int
    candles: int
    seconds: float


async def fetch_range(settings: Settings, symbol: str, start_us: int, end_us: int) -> list[Trade]:
    """Every trade of `symbol` (normalized) with start_us <= ts_event < end_us, over REST."""
    native = symbol.replace("-", "")
    trades: list[Trade] = []
    async with BinanceRestClient(settings.binance) as rest:
        next_id = await rest.first_trade_id_at(native, start_us // 1000)
        while next_id is not None:
            page = await rest.historical_trades(native, next_id, PAGE)
            inside = [t for t in page if start_us <= t.ts_event < end_us]
            trades.extend(inside)
            if not page or len(page) < PAGE or page[-1].ts_event >= end_us:
                break
            next_id = page[-1].trade_id + 1
    return trades


async def backfill_range(
    settings: Settings, symbol: str, start_us: int, end_us: int
) -> RangeBackfill:
    if end_us <= start_us:
        raise SourceError("the back-fill range is empty: end must be after start")
    started = time.perf_counter()
    trades = await fetch_range(settings, symbol, start_us, end_us)
    reach_s = max(settings.engine.allowed_lateness_s, time.time() - start_us / 1e6 + 3600)
    widened = settings.model_copy(
        update={"engine": settings.engine.model_copy(update={"allowed_lateness_s": reach_s})}
    )
    store = open_store(widened)
    try:
        pipeline = Pipeline(widened, store)
        batch = pipeline.ingest(to_table(trades, TRADE_SCHEMA))
        store.export_to_lake()
        totals = pipeline.totals
    finally:
        store.close()
    return RangeBackfill(
        symbol=symbol,
        fetched=len(trades),
        stored=totals.trades_stored,
        duplicates=totals.duplicates,
        candles=len(batch.candles),
        seconds=time.perf_counter() - started,
    )
