"""The Spark job's book with several venues: each exchange has its own windows, positions
and watermark, even when two venues list the same symbol with the same trade ids.

Expected values are the rows given (one minute each, so each 1m candle is its row), worked
out by hand.
"""

from typing import Any

from marketpipe.config import AlertSettings
from marketpipe.model.records import Candle
from marketpipe.processing.spark_book import MinuteBook
from marketpipe.processing.windows import EventTime

MIN = 60_000_000
S = 1_000_000
T0 = 1_723_248_000_000_000  # 2024-08-10 00:00 UTC
YEARS_3 = 3 * 365 * 24 * 60 * MIN


def book() -> MinuteBook:
    return MinuteBook(AlertSettings(), EventTime(grace_us=2 * S, allowed_lateness_us=3600 * S))


def row(exchange: str, open_time: int, price: float, first_id: int, last_id: int) -> dict[str, Any]:
    """One of Spark's 1m windows: two trades, at +1 s (open) and +30 s (close)."""
    return {
        "exchange": exchange, "symbol": "BTC-USD", "open_time": open_time, "whales": [],
        "open": price, "open_ts": open_time + S, "open_id": first_id,
        "close": price + 1.0, "close_ts": open_time + 30 * S, "close_id": last_id,
        "high": price + 1.0, "low": price, "volume": 2.0, "quote_volume": 2 * price + 1.0,
        "trade_count": 2, "taker_buy_volume": 1.0, "taker_buy_quote_volume": price,
    }  # fmt: skip


def minutes(candles: list[Candle]) -> dict[tuple[str, int], Candle]:
    return {(c.exchange, c.open_time): c for c in candles if c.interval == "1m"}


def test_two_venues_with_the_same_symbol_and_trade_ids_keep_separate_candles_and_positions() -> (
    None
):
    b = book()
    out = b.apply([row("coinbase", T0, 100.0, 7, 8), row("kraken", T0, 200.0, 7, 8)])
    got = minutes(out.candles)
    assert sorted(got) == [("coinbase", T0), ("kraken", T0)]
    assert (got[("coinbase", T0)].open, got[("coinbase", T0)].close) == (100.0, 101.0)
    assert (got[("kraken", T0)].open, got[("kraken", T0)].close) == (200.0, 201.0)
    assert all(c.trade_count == 2 and c.volume == 2.0 for c in got.values())
    assert {(p.exchange, p.symbol, p.last_trade_id, p.max_ts_event) for p in out.positions} == {
        ("coinbase", "BTC-USD", 8, T0 + 30 * S),
        ("kraken", "BTC-USD", 8, T0 + 30 * S),
    }


def test_a_venue_years_behind_another_is_neither_final_nor_late_by_the_others_clock() -> None:
    b = book()
    b.apply([row("coinbase", T0, 100.0, 1, 2)])
    # Coinbase's clock moves past its first minute: that minute is final, on Coinbase only.
    out = b.apply([row("coinbase", T0 + 2 * MIN, 102.0, 3, 4)])
    assert minutes(out.candles)[("coinbase", T0)].is_final
    # Kraken's trades of three years before arrive now: its own watermark is still unset.
    old = T0 - YEARS_3
    out = b.apply([row("kraken", old, 50.0, 1, 2)])
    got = minutes(out.candles)
    assert list(got) == [("kraken", old)] and not got[("kraken", old)].is_final
    assert (got[("kraken", old)].open, got[("kraken", old)].trade_count) == (50.0, 2)
    # Kraken's next minute finalizes Kraken's old one, and leaves Coinbase's open minute open.
    out = b.apply([row("kraken", old + 2 * MIN, 51.0, 3, 4)])
    finals = {k for k, c in minutes(out.candles).items() if c.is_final}
    assert finals == {("kraken", old)}
