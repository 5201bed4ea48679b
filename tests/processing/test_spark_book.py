"""The Spark job's book on its own: Spark's 1m partials in, candles, rollups and alerts out.

Every expected value below is worked out by hand from the partials given (sums of small
binary fractions, so exact), never by running the engine.
"""

import hashlib
from typing import Any

import pytest

from marketpipe.config import AlertSettings, EngineSettings
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Candle, Position
from marketpipe.processing.spark_book import MinuteBook
from marketpipe.processing.windows import EventTime

MIN = 60_000_000
S = 1_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC, a day boundary
DAY = 24 * 60 * MIN
ROLLUPS = ("5m", "15m", "1h", "4h", "1d")


def book(grace_us: int = 0, lateness_us: int = 3600 * S, **timing: Any) -> MinuteBook:
    return MinuteBook(
        AlertSettings(), EventTime(grace_us=grace_us, allowed_lateness_us=lateness_us, **timing)
    )


def row(open_time: int, **fields: Any) -> dict[str, Any]:
    """One of Spark's 1m windows (its full current value), as `spark/job.py` selects it."""
    return {"exchange": "binance", "symbol": "BTC-USDT", "open_time": open_time,
            "whales": [], **fields}  # fmt: skip


# Minute 0: trades 1..3, first at +1 s (100.0), last at +30 s (101.0).
MINUTE_0 = row(
    T0, open=100.0, open_ts=T0 + 1 * S, open_id=1, close=101.0, close_ts=T0 + 30 * S,
    close_id=3, high=112.0, low=99.0, volume=2.0, quote_volume=210.0, trade_count=3,
    taker_buy_volume=1.0, taker_buy_quote_volume=100.0,
)  # fmt: skip
# Minute 1: trades 4..6, first at +1m5s (104.0), last at +1m50s (105.0). Neither minute
# moves 2 %: no spike alert.
MINUTE_1 = row(
    T0 + MIN, open=104.0, open_ts=T0 + MIN + 5 * S, open_id=4, close=105.0,
    close_ts=T0 + MIN + 50 * S, close_id=6, high=109.0, low=104.0, volume=3.0,
    quote_volume=318.0, trade_count=3, taker_buy_volume=2.0, taker_buy_quote_volume=212.0,
)  # fmt: skip


def by_key(batch: CommitBatch) -> dict[tuple[str, int], Candle]:
    keys = [(c.interval, c.open_time) for c in batch.candles]
    assert len(keys) == len(set(keys)), "a window is emitted once per batch"
    return {(c.interval, c.open_time): c for c in batch.candles}


def alert_id(kind: str, key: int) -> str:
    return hashlib.blake2b(f"{kind}|binance|BTC-USDT|{key}".encode(), digest_size=16).hexdigest()


def test_two_minutes_give_their_candles_and_every_rollup_with_the_first_one_final() -> None:
    out = book(grace_us=2 * S).apply([MINUTE_0, MINUTE_1])
    candles = by_key(out)
    # 1m + 1m + one window of each rollup interval (both minutes share it).
    assert sorted(candles) == sorted([("1m", T0), ("1m", T0 + MIN)] + [(i, T0) for i in ROLLUPS])
    # The watermark is minute 1's last trade minus grace: T0 + 1m48s, past minute 0's end.
    first, second = candles[("1m", T0)], candles[("1m", T0 + MIN)]
    assert (first.is_final, first.revision, first.vwap) == (True, 0, 105.0)
    assert (second.is_final, second.revision, second.vwap) == (False, 0, 106.0)
    for interval in ROLLUPS:
        c = candles[(interval, T0)]
        assert (c.open, c.high, c.low, c.close) == (100.0, 112.0, 99.0, 105.0), interval
        assert (c.volume, c.quote_volume, c.trade_count) == (5.0, 528.0, 6), interval
        assert (c.taker_buy_volume, c.taker_buy_quote_volume) == (3.0, 312.0), interval
        assert (c.vwap, c.first_trade_id, c.last_trade_id) == (105.6, 1, 6), interval
        assert (c.is_final, c.revision) == (False, 0), interval
    assert out.alerts == []
    [position] = out.positions
    assert (position.last_trade_id, position.max_ts_event) == (6, T0 + MIN + 50 * S)


@pytest.mark.parametrize(
    ("last_trade_at", "final"),
    [(T0 + MIN + S, True), (T0 + MIN + S - 1, False)],
    ids=["watermark-at-window-end", "one-microsecond-short"],
)
def test_a_window_is_final_when_the_watermark_reaches_its_end_not_a_microsecond_before(
    last_trade_at: int, final: bool
) -> None:
    b = book(grace_us=S)
    b.apply([MINUTE_0])
    # A trade in minute 1 at `last_trade_at`: the watermark becomes that minus 1 s of grace.
    late_minute = row(
        T0 + MIN, open=108.0, open_ts=last_trade_at, open_id=4, close=108.0,
        close_ts=last_trade_at, close_id=4, high=108.0, low=108.0, volume=1.0,
        quote_volume=108.0, trade_count=1, taker_buy_volume=0.0, taker_buy_quote_volume=0.0,
    )  # fmt: skip
    candles = by_key(b.apply([late_minute]))
    assert b.watermark("binance") == last_trade_at - S
    if final:
        assert candles[("1m", T0)].is_final  # emitted again, now final
    else:
        assert ("1m", T0) not in candles  # unchanged, so not emitted
    assert not candles[("1m", T0 + MIN)].is_final


def test_spark_values_replace_the_window_and_a_final_window_changing_is_a_revision() -> None:
    b = book()
    b.apply([MINUTE_0])
    b.advance_watermark("binance", T0 + MIN)  # minute 0 final
    # Spark hands over minute 0's full new value (one more trade, 7, at +40 s, 101.0 x 2).
    grown = dict(MINUTE_0, close=101.0, close_ts=T0 + 40 * S, close_id=7, volume=4.0,
                 quote_volume=412.0, trade_count=4)  # fmt: skip
    candles = by_key(b.apply([grown]))
    minute = candles[("1m", T0)]
    assert (minute.volume, minute.quote_volume, minute.trade_count) == (4.0, 412.0, 4)
    assert (minute.close, minute.last_trade_id) == (101.0, 7)
    assert (minute.is_final, minute.revision) == (True, 1)
    five = candles[("5m", T0)]  # rebuilt from the new minute value, not merged with the old
    assert (five.volume, five.trade_count, five.is_final, five.revision) == (4.0, 4, False, 0)


def test_a_final_minute_moving_two_percent_alerts_once_it_is_final() -> None:
    b = book()
    spike = row(
        T0, open=64.0, open_ts=T0 + S, open_id=1, close=66.0, close_ts=T0 + 2 * S,
        close_id=2, high=66.0, low=64.0, volume=2.0, quote_volume=130.0, trade_count=2,
        taker_buy_volume=0.0, taker_buy_quote_volume=0.0,
    )  # fmt: skip
    assert b.apply([spike]).alerts == []  # open: spike rules wait for finality
    out = b.advance_watermark("binance", T0 + MIN)
    [alert] = out.alerts
    assert (alert.alert_id, alert.kind, alert.severity) == (
        alert_id("price_spike", T0),
        "price_spike",
        "warning",
    )
    assert (alert.ts, alert.value, alert.threshold) == (T0, 0.03125, 0.02)  # 66/64 - 1
    assert [(c.interval, c.is_final) for c in out.candles] == [("1m", True)]


def test_a_whale_spark_collected_alerts_at_once_and_only_once_per_batch() -> None:
    whale = {"exchange": "binance", "symbol": "BTC-USDT", "trade_id": 9, "price": 100.0,
             "qty": 1000.0, "side": "sell", "ts_event": T0 + 5 * S}  # fmt: skip
    minute = row(
        T0, open=100.0, open_ts=T0 + 5 * S, open_id=9, close=100.0, close_ts=T0 + 5 * S,
        close_id=9, high=100.0, low=100.0, volume=1000.0, quote_volume=100_000.0,
        trade_count=1, taker_buy_volume=0.0, taker_buy_quote_volume=0.0, whales=[whale],
    )  # fmt: skip
    other_symbol = dict(minute, symbol="ETH-USDT", whales=[whale])  # same whale listed twice
    out = book().apply([minute, other_symbol])
    [alert] = out.alerts
    assert (alert.alert_id, alert.kind, alert.severity) == (
        alert_id("whale_trade", 9),
        "whale_trade",
        "warning",
    )
    assert (alert.ts, alert.value, alert.threshold) == (T0 + 5 * S, 100_000.0, 100_000.0)


def test_a_window_is_evicted_when_its_end_plus_lateness_is_reached_and_its_minute_kept() -> None:
    lateness = 600 * S
    b = book(lateness_us=lateness)
    b.apply([MINUTE_0])
    assert b.open_windows == 6  # 1m and five rollups
    b.advance_watermark("binance", T0 + MIN + lateness - 1)
    assert b.open_windows == 6
    grown = dict(MINUTE_0, volume=4.0, quote_volume=420.0, trade_count=4)
    assert by_key(b.apply([grown]))[("1m", T0)].revision == 1  # still within lateness
    b.advance_watermark("binance", T0 + MIN + lateness)
    assert b.open_windows == 5  # the 1m window is gone, its rollups stay open
    ignored = b.apply([dict(MINUTE_0, volume=8.0)])
    assert (ignored.candles, ignored.alerts, ignored.positions) == ([], [], [])
    # The evicted minute's last value still counts in its rollups while its day may change.
    candles = by_key(b.apply([MINUTE_1]))
    assert candles[("1m", T0 + MIN)].is_final  # ends before the watermark: final at once
    five = candles[("5m", T0)]
    assert (five.volume, five.quote_volume, five.trade_count) == (7.0, 738.0, 7)


@pytest.mark.parametrize(("now_offset", "final"), [(3 * S, True), (3 * S - 1, False)])
def test_the_idle_watermark_is_the_wall_clock_less_grace_and_idle_lag(
    now_offset: int, final: bool
) -> None:
    b = book(grace_us=2 * S, idle_lag_us=S)
    b.apply([MINUTE_0])
    out = b.advance_idle(T0 + MIN + now_offset)
    assert b.watermark("binance") == T0 + MIN + now_offset - 3 * S
    assert [(c.interval, c.open_time) for c in out.candles] == ([("1m", T0)] if final else [])
    off = book(grace_us=2 * S, idle_lag_us=S, idle_watermark=False)
    off.apply([MINUTE_0])
    assert off.advance_idle(T0 + DAY).is_empty
    assert off.watermark("binance") == T0 + 30 * S - 2 * S


def position(max_ts_event: int, symbol: str = "BTC-USDT") -> Position:
    return Position(
        exchange="binance", symbol=symbol, last_trade_id=3, max_ts_event=max_ts_event,
        id_ranges=[(1, 3)], gaps_found=0, gaps_filled=0, trades_seen=3, duplicates=0,
    )  # fmt: skip


def test_restore_from_reaches_back_to_the_day_before_the_oldest_window_that_may_change() -> None:
    b = book(grace_us=2 * S, lateness_us=3600 * S)
    assert b.restore_from([]) is None
    # Oldest symbol: last trade at 01:00:01, so its watermark is 00:59:59 and windows ending
    # after 23:59:59 the day before may still change. That day starts at T0 - 1 day, and the
    # book reaches back one more day. (Without grace or lateness it would be T0 - 1 day.)
    positions = [position(T0 + 60 * MIN + S), position(T0 + 5 * 60 * MIN, "ETH-USDT")]
    assert b.restore_from(positions) == T0 - 2 * DAY


def test_restore_reopens_the_windows_that_may_change_and_finalizes_the_passed_ones() -> None:
    b = book(grace_us=0, lateness_us=600 * S)
    stored = [
        Candle("binance", "BTC-USDT", "1m", T0, T0 + MIN, 100.0, 100.0, 100.0, 100.0, 1.0,
               100.0, 1, 0.0, 0.0, 100.0, 1, 1, True, 0),  # expired: end + 10 min <= wm
        Candle("binance", "BTC-USDT", "1m", T0 + 10 * MIN, T0 + 11 * MIN, 101.0, 101.0,
               101.0, 101.0, 1.0, 101.0, 1, 0.0, 0.0, 101.0, 2, 2, False, 0),
    ]  # fmt: skip
    b.restore([position(T0 + 11 * MIN)], stored)
    assert b.watermark("binance") == T0 + 11 * MIN
    assert b.open_windows == 1
    out = b.advance_watermark("binance", T0 + 11 * MIN)  # the restored open window's end
    assert [(c.open_time, c.is_final, c.revision) for c in out.candles] == [
        (T0 + 10 * MIN, True, 0)
    ]


def test_the_timing_comes_from_the_settings_engine_section_in_microseconds() -> None:
    settings = EngineSettings(
        grace_s=1.5, allowed_lateness_s=60.0, idle_watermark=False, idle_lag_s=0.25
    )
    assert EventTime.from_settings(settings) == EventTime(
        grace_us=1_500_000, allowed_lateness_us=60_000_000, idle_watermark=False,
        idle_lag_us=250_000,
    )  # fmt: skip
