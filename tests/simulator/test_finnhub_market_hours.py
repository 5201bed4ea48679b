"""Simulated stocks keeping US market hours, through the Finnhub parser and the candle engine
on a simulated clock: a run spanning the close (or the open) has no trades and no candles in
the closed span, and the idle watermark, advancing through it, finalizes the last open
minutes without inventing any closed ones."""

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from harness.reference import RawTrade, assert_candles_match, reference_candles
from marketpipe.config import AlertSettings
from marketpipe.model.records import Candle, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import CandleEngine
from marketpipe.simulator.finnhub import FinnhubFeed, MarketHours, stock_market
from marketpipe.sources.finnhub.frames import TradeKeys, parse_frame

pytestmark = pytest.mark.unit

NY = ZoneInfo("America/New_York")
MINUTE_US = 60_000_000
POLL_US = 1_000_000


def ny_us(*args: int) -> int:
    return int(datetime(*args, tzinfo=NY).timestamp() * 1_000_000)


def _run(start_us: int, end_us: int) -> tuple[list[Trade], list[Candle], CandleEngine, list[Trade]]:
    """Poll the feed every second of simulated time from `start_us` to `end_us`; parse each
    frame as the connector does, and let the engine's idle watermark follow the clock."""
    feed = FinnhubFeed(
        stock_market(["AAPL", "MSFT"], 20, seed=3, start_us=start_us), hours=MarketHours()
    )
    engine = CandleEngine(
        AlertRules(AlertSettings()), grace_us=2_000_000, allowed_lateness_us=3600 * 1_000_000
    )
    keys = TradeKeys()
    parsed: list[Trade] = []
    candles: list[Candle] = []
    for now in range(start_us + POLL_US, end_us + 1, POLL_US):
        trades = [
            record
            for topic, raw, _ in feed.poll(now)
            if topic.startswith("trade:")
            for record in parse_frame(raw, now, keys)
            if isinstance(record, Trade)
        ]
        parsed += trades
        candles += engine.process(to_table(trades, TRADE_SCHEMA)).candles
        candles += engine.advance_idle(now, lag_us=0).candles
    return feed.ground_truth(), candles, engine, parsed


def _final_minutes(candles: list[Candle]) -> dict[tuple[str, int], Candle]:
    last: dict[tuple[str, int], Candle] = {}
    for c in candles:
        if c.interval == "1m":
            last[(c.symbol, c.open_time)] = c
    return last


def _keyed(trades: list[Trade]) -> list[RawTrade]:
    """The reference's rows with Finnhub's keys (ms * 1000 + ordinal in the ms), recomputed."""
    ordinal: Counter[tuple[str, int]] = Counter()
    rows: list[RawTrade] = []
    for t in sorted(trades, key=lambda t: (t.symbol, t.ts_event, t.trade_id)):
        ms = t.ts_event // 1000
        rows.append((t.symbol, ms * 1000 + ordinal[(t.symbol, ms)], t.price, t.qty, False, ms))
        ordinal[(t.symbol, ms)] += 1
    return rows


def test_a_run_across_the_close_has_no_trades_nor_candles_after_it() -> None:
    close = ny_us(2024, 8, 8, 16, 0)  # a Thursday
    truth, candles, engine, parsed = _run(close - 3 * MINUTE_US, close + 4 * MINUTE_US)
    assert len(truth) > 1000 and len(parsed) == len(truth)
    assert max(t.ts_event for t in truth) < close <= max(t.ts_event for t in truth) + 10_000_000
    assert all(c.open_time < close for c in candles)  # no interval invents a closed window
    minutes = _final_minutes(candles)
    assert sorted({m for _, m in minutes}) == [
        close - 3 * MINUTE_US,
        close - 2 * MINUTE_US,
        close - MINUTE_US,
    ]
    assert all(c.is_final for c in minutes.values())  # the idle watermark finalized them...
    watermark = engine.watermark("finnhub")
    assert watermark is not None and watermark >= close + 3 * MINUTE_US  # ...and went on
    for symbol in ("AAPL-USD", "MSFT-USD"):
        mine = [c for (s, _), c in sorted(minutes.items()) if s == symbol]
        sells = {t.trade_id for t in parsed if t.symbol == symbol and t.side == "sell"}
        rows = [(s, k, p, q, k in sells, ms) for s, k, p, q, _, ms in _keyed(truth) if s == symbol]
        assert_candles_match(mine, reference_candles(rows))


def test_a_run_across_the_open_starts_its_candles_at_the_open() -> None:
    opening = ny_us(2024, 8, 8, 9, 30)
    truth, candles, _, parsed = _run(opening - 3 * MINUTE_US, opening + 3 * MINUTE_US)
    assert len(truth) > 500 and len(parsed) == len(truth)
    assert opening <= min(t.ts_event for t in truth) < opening + 10_000_000
    # 1m, 5m and 15m windows align with 09:30; an hour's window opened at 09:00 holds its trades.
    assert all(c.open_time >= opening for c in candles if c.interval in ("1m", "5m", "15m"))
    assert all(c.close_time > opening for c in candles)
    assert {m for _, m in _final_minutes(candles)} >= {opening, opening + MINUTE_US}


def test_a_weekend_day_has_no_trades_at_all() -> None:
    saturday_noon = ny_us(2024, 8, 10, 12, 0)
    truth, candles, engine, _ = _run(saturday_noon, saturday_noon + 2 * MINUTE_US)
    assert truth == [] and candles == [] and engine.watermark("finnhub") is None
