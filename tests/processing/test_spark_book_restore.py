"""The Spark job's book across a driver restart, and `apply`'s edges.

A restarted book (positions and stored candles, as `cluster/spark_engine.py` loads them) must
go on exactly as a book that never stopped: the uninterrupted book is the independent
computation every restarted output is compared with. The other tests below pin single rules
of `apply`, `_rollup` and `_position` with values worked out by hand.
"""

from typing import Any

from marketpipe.config import AlertSettings
from marketpipe.model.batch import CommitBatch
from marketpipe.model.intervals import INTERVALS
from marketpipe.model.records import Candle, Position
from marketpipe.processing.spark_book import MinuteBook
from marketpipe.processing.windows import EventTime

MIN = 60_000_000
S = 1_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC, a day boundary

Fill = tuple[int, int, float, float, bool]  # trade id, event time, price, qty, taker buy


def book(grace_us: int = 2 * S, lateness_us: int = 5 * MIN) -> MinuteBook:
    # Two minutes of history and a 2x multiple: the relative volume rule has work to do.
    alerts = AlertSettings(
        whale_notional=50_000.0, volume_spike_history_min=2, volume_spike_multiple=2.0
    )
    return MinuteBook(alerts, EventTime(grace_us=grace_us, allowed_lateness_us=lateness_us))


def minute(fills: list[Fill], symbol: str = "BTC-USDT") -> dict[str, Any]:
    """Spark's full value of the 1m window holding `fills` (all in one minute), computed
    here in plain Python from the fills."""
    ordered = sorted(fills, key=lambda f: (f[1], f[0]))
    first, last = ordered[0], ordered[-1]
    buys = [f for f in fills if f[4]]
    whales = [
        {"exchange": "binance", "symbol": symbol, "trade_id": i, "price": p, "qty": q,
         "side": "buy" if b else "sell", "ts_event": t}
        for i, t, p, q, b in fills if p * q >= 50_000.0
    ]  # fmt: skip
    return {
        "exchange": "binance", "symbol": symbol, "open_time": first[1] - first[1] % MIN,
        "open": first[2], "open_ts": first[1], "open_id": first[0],
        "close": last[2], "close_ts": last[1], "close_id": last[0],
        "high": max(f[2] for f in fills), "low": min(f[2] for f in fills),
        "volume": sum(f[3] for f in fills), "quote_volume": sum(f[2] * f[3] for f in fills),
        "trade_count": len(fills),
        "taker_buy_volume": sum(f[3] for f in buys),
        "taker_buy_quote_volume": sum(f[2] * f[3] for f in buys),
        "whales": whales,
    }  # fmt: skip


# Trades per minute (prices and sizes are small binary fractions: every sum is exact).
M0 = [(1, T0 + 1 * S, 100.0, 1.0, True), (2, T0 + 20 * S, 101.0, 0.5, False)]
M0_MORE = [*M0, (3, T0 + 40 * S, 100.5, 0.25, True)]
M1 = [(4, T0 + MIN + 5 * S, 100.0, 1.0, False), (5, T0 + MIN + 50 * S, 100.25, 1.0, True)]
M2 = [(6, T0 + 2 * MIN + 10 * S, 100.0, 0.5, True)]
M3 = [(7, T0 + 3 * MIN + 30 * S, 99.5, 1.0, True), (8, T0 + 3 * MIN + 59 * S, 99.0, 1.0, False)]
# Minute 4's only trade is at the very start of the minute: its close key (event time) is
# one microsecond after minute 3's stored window ends.
M4 = [(9, T0 + 4 * MIN, 99.25, 1.0, True)]
# A revision of a final minute:
M2_LATE = [*M2, (10, T0 + 2 * MIN + 30 * S, 101.0, 2.0, False)]
# Minute 6: a volume spike (over twice the mean of minutes 4 and 5) and a price spike.
M6 = [(11, T0 + 6 * MIN + S, 100.0, 8.0, True), (12, T0 + 6 * MIN + 9 * S, 103.0, 600.0, True)]
M5 = [(13, T0 + 5 * MIN + 30 * S, 99.0, 1.0, False)]
E0 = [(1, T0 + 2 * MIN + S, 2000.0, 1.0, True), (2, T0 + 3 * MIN + 2 * S, 2001.0, 1.0, False)]

BEFORE = [
    [minute(M0), minute(M1)],
    [minute(M0_MORE), minute(M2), minute(E0[:1], "ETH-USDT")],
    [minute(M3), minute(E0[1:], "ETH-USDT")],
]
AFTER = [
    [minute(M4), minute(M2_LATE)],
    [minute(M6), minute(M5)],  # out of event-time order within the batch
    [minute(M0_MORE)],  # redelivered after its window was evicted: ignored
]


class Store:
    """What the warm store keeps of the book's batches: candles by window, positions."""

    def __init__(self) -> None:
        self.candles: dict[tuple[str, str, str, int], Candle] = {}
        self.positions: dict[tuple[str, str], Position] = {}

    def commit(self, batch: CommitBatch) -> None:
        for c in batch.candles:
            self.candles[(c.exchange, c.symbol, c.interval, c.open_time)] = c
        for p in batch.positions:
            self.positions[(p.exchange, p.symbol)] = p

    def load(self, start: int) -> list[Candle]:
        """Candles from `start` on, interval by interval (as the Spark driver reads them)."""
        return [
            c
            for interval in INTERVALS
            for c in self.candles.values()
            if c.interval == interval and c.open_time >= start
        ]


def summary(batch: CommitBatch) -> tuple[list[Candle], list[Any], list[Position]]:
    candles = sorted(batch.candles, key=lambda c: (c.symbol, c.interval, c.open_time))
    return candles, sorted(batch.alerts, key=lambda a: a.alert_id), batch.positions


def test_a_restarted_book_continues_exactly_as_one_that_never_stopped() -> None:
    steady, before = book(), book()
    store = Store()
    for rows in BEFORE:
        steady.apply(rows)
        store.commit(before.apply(rows))
    positions = sorted(store.positions.values(), key=lambda p: (p.exchange, p.symbol))
    start = before.restore_from(positions)
    assert start is not None
    restarted = book()
    restarted.restore(positions, store.load(start))
    assert restarted.watermarks() == steady.watermarks()
    assert restarted.open_windows == steady.open_windows
    for rows in AFTER:
        expected, got = steady.apply(rows), restarted.apply(rows)
        assert summary(got) == summary(expected)
        assert restarted.watermarks() == steady.watermarks()
    expected = steady.advance_watermark("binance", T0 + 20 * MIN)
    assert summary(restarted.advance_watermark("binance", T0 + 20 * MIN)) == summary(expected)
    assert steady.open_windows == restarted.open_windows


def test_the_comparison_above_covers_spikes_whales_revisions_and_a_late_start_minute() -> None:
    """The scenario itself, checked by hand on the uninterrupted book."""
    steady = book()
    for rows in BEFORE:
        steady.apply(rows)
    first = steady.apply(AFTER[0])
    five = next(c for c in first.candles if c.interval == "5m" and c.symbol == "BTC-USDT")
    # Minute 4's trade at 00:04:00 closes the 5m window, after minute 3's 00:03:59.
    assert (five.close, five.last_trade_id, five.trade_count) == (99.25, 9, 10)
    revised = next(c for c in first.candles if c.interval == "1m" and c.open_time == T0 + 2 * MIN)
    assert (revised.is_final, revised.revision, revised.close) == (True, 1, 101.0)
    steady.apply(AFTER[1])
    out = steady.advance_watermark("binance", T0 + 7 * MIN)
    spikes = sorted((a.kind, a.ts) for a in out.alerts)
    assert spikes == [("price_spike", T0 + 6 * MIN), ("volume_spike", T0 + 6 * MIN)]


def test_restore_sets_the_watermark_to_the_last_event_time_less_grace() -> None:
    b = book(grace_us=2 * S)
    b.restore([position("BTC-USDT", 7, T0 + 10 * S)], [])
    assert b.watermark("binance") == T0 + 8 * S


def test_restored_positions_carry_the_last_trade_id_and_event_time_forward() -> None:
    b = book()
    b.restore([position("BTC-USDT", 50, T0 + 90 * S)], [])
    # A row of older trades (lower ids, earlier event times) leaves both where they were.
    out = b.apply([minute(M0)])
    assert out.positions == [position("BTC-USDT", 50, T0 + 90 * S)]


def position(symbol: str, last_trade_id: int, max_ts_event: int) -> Position:
    return Position(
        exchange="binance", symbol=symbol, last_trade_id=last_trade_id, max_ts_event=max_ts_event,
        id_ranges=[], gaps_found=0, gaps_filled=0, trades_seen=0, duplicates=0,
    )  # fmt: skip


def test_positions_are_the_newest_trade_id_and_event_time_per_symbol_and_nothing_else() -> None:
    out = book().apply([minute(M1), minute(M0), minute(E0, "ETH-USDT")])
    assert out.positions == [
        position("BTC-USDT", 5, T0 + MIN + 50 * S),
        position("ETH-USDT", 2, T0 + 3 * MIN + 2 * S),
    ]


def test_an_evicted_minute_in_a_batch_does_not_hide_the_rows_after_it() -> None:
    b = book(lateness_us=MIN)
    b.apply([minute(M0)])
    b.advance_watermark("binance", T0 + 2 * MIN)  # minute 0: end + lateness reached
    out = b.apply([minute(M0_MORE), minute(M3)])
    assert sorted({(c.interval, c.open_time) for c in out.candles if c.interval == "1m"}) == [
        ("1m", T0 + 3 * MIN)
    ]


def test_the_watermark_follows_the_newest_row_of_a_batch_not_the_last() -> None:
    b = book(grace_us=2 * S)
    b.apply([minute(M1), minute(M0)])  # minute 1 (newer) first
    assert b.watermark("binance") == T0 + MIN + 48 * S


def test_every_change_of_a_final_window_adds_one_revision() -> None:
    b = book(grace_us=0)
    b.apply([minute(M0)])
    b.advance_watermark("binance", T0 + MIN)
    b.apply([minute(M0_MORE)])
    grown = [*M0_MORE, (14, T0 + 50 * S, 100.0, 1.0, True)]
    out = b.apply([minute(grown)])
    one = next(c for c in out.candles if c.interval == "1m")
    assert (one.revision, one.trade_count) == (2, 4)


def test_a_rollup_merges_every_minute_it_holds_even_after_a_minute_without_trades() -> None:
    b = book()
    out = b.apply([minute(M0), minute(M2)])  # no trades in minute 1
    five = next(c for c in out.candles if c.interval == "5m")
    assert (five.trade_count, five.close, five.last_trade_id, five.volume) == (3, 100.0, 6, 2.0)


DAY = 24 * 60 * MIN


def test_a_day_rollup_keeps_its_first_minute_until_the_whole_day_is_past_lateness() -> None:
    lateness = 5 * MIN
    b = book(grace_us=0, lateness_us=lateness)
    b.apply([minute(M0)])
    last = [(20, T0 + DAY - 30 * S, 100.0, 1.0, True)]  # the day's last minute, 23:59
    b.apply([minute(last)])
    # Just before the 23:59 window expires, Spark revises it: the day is rebuilt from every
    # minute it holds, 00:00 included.
    b.advance_watermark("binance", T0 + DAY + lateness - 1)
    revised = [*last, (21, T0 + DAY - 10 * S, 100.0, 1.0, True)]
    out = b.apply([minute(revised)])
    day = next(c for c in out.candles if c.interval == "1d")
    assert (day.trade_count, day.first_trade_id, day.last_trade_id) == (4, 1, 21)


def test_a_days_minutes_are_dropped_once_the_day_is_past_lateness_on_their_exchange_only() -> None:
    lateness = 5 * MIN
    b = book(grace_us=0, lateness_us=lateness)
    b.apply([dict(minute(M0), exchange="coinbase")])  # first in the book's dict
    b.apply([minute(M1)])  # not at the day's start: the day is found by rounding down
    b.advance_watermark("binance", T0 + DAY + lateness - 1)
    assert list(b.minutes[("binance", "BTC-USDT")]) == [T0 + MIN]
    b.advance_watermark("binance", T0 + DAY + lateness)  # the day's end plus lateness
    assert b.minutes[("binance", "BTC-USDT")] == {}
    assert list(b.minutes[("coinbase", "BTC-USDT")]) == [T0]
