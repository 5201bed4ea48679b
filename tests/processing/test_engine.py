"""Semantics of DESIGN.md: event time, dedup, watermark with grace, finality, late revisions,
late beyond allowed lateness, rollups, and monoid properties under any order or partition."""

import math
import random

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpipe.config import AlertSettings
from marketpipe.model.records import Candle, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import CandleEngine

MIN = 60_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC


def trade(
    trade_id: int, ts: int, price: float = 100.0, qty: float = 1.0, side: str = "buy"
) -> Trade:
    return Trade("binance", "BTC-USDT", trade_id, price, qty, side, ts, ts)  # type: ignore[arg-type]


def table(trades: list[Trade]) -> pa.Table:
    return to_table(trades, TRADE_SCHEMA)


def engine(grace_s: float = 2, lateness_s: float = 3600) -> CandleEngine:
    return CandleEngine(
        AlertRules(AlertSettings()),
        grace_us=int(grace_s * 1e6),
        allowed_lateness_us=int(lateness_s * 1e6),
    )


def test_open_and_close_follow_event_time_not_arrival_order() -> None:
    e = engine()
    out = e.process(
        table([trade(3, T0 + 30, 103.0), trade(1, T0 + 10, 101.0), trade(2, T0 + 20, 102.0)])
    )
    (candle,) = [c for c in out.candles if c.interval == "1m"]
    assert (candle.open, candle.close, candle.high, candle.low) == (101.0, 103.0, 103.0, 101.0)
    assert (candle.first_trade_id, candle.last_trade_id, candle.trade_count) == (1, 3, 3)


def test_same_event_time_is_ordered_by_trade_id() -> None:
    e = engine()
    out = e.process(table([trade(9, T0, 9.0), trade(8, T0, 8.0)]))
    candle = next(c for c in out.candles if c.interval == "1m")
    assert (candle.open, candle.close) == (8.0, 9.0)


def test_a_trade_delivered_twice_counts_once() -> None:
    e = engine()
    first = e.process(table([trade(1, T0), trade(1, T0), trade(2, T0 + 1)]))
    second = e.process(table([trade(2, T0 + 1)]))
    assert first.duplicates == 1 and second.duplicates == 1
    assert second.trades.num_rows == 0
    assert e.positions()[0].trades_seen == 2


def test_window_goes_final_only_when_watermark_passes_its_end_with_grace() -> None:
    e = engine(grace_s=2)
    e.process(table([trade(1, T0 + 10)]))
    out = e.process(table([trade(2, T0 + MIN + 1_000_000)]))  # watermark = T0 + 59 s
    assert not any(c.is_final for c in out.candles if c.open_time == T0)
    out = e.process(table([trade(3, T0 + MIN + 2_000_000)]))  # watermark = T0 + 60 s: final
    final = [c for c in out.candles if c.interval == "1m" and c.open_time == T0]
    assert final and final[0].is_final and final[0].revision == 0


def test_late_trade_within_lateness_revises_a_final_candle() -> None:
    e = engine(grace_s=0)
    e.process(table([trade(1, T0 + 10, 100.0)]))
    e.process(table([trade(3, T0 + 5 * MIN, 100.0)]))
    out = e.process(table([trade(2, T0 + 20, 150.0)]))
    candle = next(c for c in out.candles if c.interval == "1m" and c.open_time == T0)
    assert (
        candle.is_final
        and candle.revision == 1
        and candle.high == 150.0
        and candle.trade_count == 2
    )
    assert out.late_trades.num_rows == 0


def test_trade_later_than_allowed_lateness_is_kept_raw_and_counted_not_merged() -> None:
    e = engine(grace_s=0, lateness_s=60)
    e.process(table([trade(1, T0 + 10)]))
    e.process(table([trade(3, T0 + 10 * MIN)]))
    out = e.process(table([trade(2, T0 + 20, 999.0)]))
    assert out.late_trades.num_rows == 1 and out.trades.num_rows == 1
    assert not [c for c in out.candles if c.open_time == T0]


def test_flush_finalizes_everything_but_keeps_the_watermark_for_later_revisions() -> None:
    e = engine()
    e.process(table([trade(1, T0 + 10)]))
    flushed = e.flush()
    assert flushed.candles and all(c.is_final for c in flushed.candles)
    out = e.process(table([trade(2, T0 + 11)]))
    candle = next(c for c in out.candles if c.interval == "1m")
    assert candle.revision == 1 and candle.trade_count == 2


def test_whale_alert_fires_once_with_a_deterministic_id() -> None:
    e = engine()
    out = e.process(table([trade(1, T0, 50_000.0, 3.0), trade(2, T0 + 1, 50_000.0, 1.0)]))
    assert [a.kind for a in out.alerts] == ["whale_trade"]
    again = engine().process(table([trade(1, T0, 50_000.0, 3.0)]))
    assert again.alerts[0].alert_id == out.alerts[0].alert_id


def test_price_spike_and_relative_volume_spike_fire_on_final_minutes_only() -> None:
    e = engine(grace_s=0)
    batch = [trade(i + 1, T0 + i * MIN + 1, 100.0, 1.0) for i in range(61)]  # 61 quiet minutes
    batch += [trade(100, T0 + 61 * MIN + 1, 100.0, 10.0), trade(101, T0 + 61 * MIN + 2, 103.0, 1.0)]
    out = e.process(table(batch))
    assert not [a for a in out.alerts if a.ts == T0 + 61 * MIN]  # minute 61 is not final yet
    out = e.process(table([trade(102, T0 + 62 * MIN + 1)]))
    kinds = sorted(a.kind for a in out.alerts if a.ts == T0 + 61 * MIN)
    assert kinds == ["price_spike", "volume_spike"]


trade_lists = st.lists(
    st.tuples(
        st.integers(0, 5 * MIN),
        st.floats(1.0, 1000.0, allow_nan=False),
        st.floats(0.001, 10.0, allow_nan=False),
        st.booleans(),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(trade_lists, st.randoms(use_true_random=False), st.integers(1, 6))
def test_any_order_or_partition_of_the_same_trades_gives_the_same_candles(
    raw: list[tuple[int, float, float, bool]], rng: random.Random, parts: int
) -> None:
    trades = [
        trade(i, T0 + ts, p, q, "buy" if b else "sell") for i, (ts, p, q, b) in enumerate(raw)
    ]

    def run(sequence: list[Trade], cuts: int) -> dict[tuple[str, int], Candle]:
        e = engine(grace_s=3600)  # nothing goes final mid-way: only the monoid is tested here
        size = max(1, math.ceil(len(sequence) / cuts))
        batches = [e.process(table(sequence[i : i + size])) for i in range(0, len(sequence), size)]
        batches.append(e.flush())
        out: dict[tuple[str, int], Candle] = {}
        for b in batches:
            for c in b.candles:
                out[(c.interval, c.open_time)] = c
        return out

    baseline = run(trades, 1)
    shuffled = trades[:]
    rng.shuffle(shuffled)
    other = run(shuffled, parts)
    assert baseline.keys() == other.keys()
    for key, a in baseline.items():
        b = other[key]
        assert (
            a.open,
            a.high,
            a.low,
            a.close,
            a.trade_count,
            a.first_trade_id,
            a.last_trade_id,
        ) == (
            b.open,
            b.high,
            b.low,
            b.close,
            b.trade_count,
            b.first_trade_id,
            b.last_trade_id,
        )
        for name in ("volume", "quote_volume", "taker_buy_volume", "vwap"):
            assert math.isclose(getattr(a, name), getattr(b, name), rel_tol=1e-9, abs_tol=1e-12)
    # rollups are merges of minutes: the 5m candle's volume is the sum of its minutes
    for (interval, open_time), c in baseline.items():
        if interval == "5m":
            parts_volume = sum(
                m.volume
                for (i, t), m in baseline.items()
                if i == "1m" and open_time <= t < open_time + 5 * MIN
            )
            assert math.isclose(c.volume, parts_volume, rel_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["BTC-USDT", "ETH-USDT"]),
            st.integers(0, 40),  # trade id: small, so batches repeat ids (duplicates)
            st.integers(0, 3 * 3600).map(lambda s: s * 1_000_000),  # up to 3 h: late trades
            st.floats(1, 50_000),
            st.floats(0.001, 10),
            st.booleans(),
        ),
        max_size=120,
    ),
    st.integers(1, 5),
)
def test_the_row_path_and_the_vectorized_path_give_the_same_batches(
    rows: list[tuple[str, int, int, float, float, bool]], parts: int
) -> None:
    trades = [
        Trade("binance", s, i, p, q, "buy" if b else "sell", T0 + ts, T0 + ts)  # type: ignore[arg-type]
        for s, i, ts, p, q, b in rows
    ]
    rows_engine = CandleEngine(
        AlertRules(AlertSettings(whale_notional=50_000)), grace_us=2_000_000,
        allowed_lateness_us=600_000_000, row_path_max=10**9,
    )  # fmt: skip
    frame_engine = CandleEngine(
        AlertRules(AlertSettings(whale_notional=50_000)), grace_us=2_000_000,
        allowed_lateness_us=600_000_000, row_path_max=0,
    )  # fmt: skip
    size = max(1, math.ceil(len(trades) / parts))
    batches = [table(trades[i : i + size]) for i in range(0, len(trades), size)]
    for part in batches:
        a, b = rows_engine.process(part), frame_engine.process(part)
        assert sorted(a.trades.column("trade_id").to_pylist()) == sorted(
            b.trades.column("trade_id").to_pylist()
        )
        assert a.trades.schema == b.trades.schema
        assert a.late_trades.sort_by("trade_id").equals(b.late_trades.sort_by("trade_id"))
        assert a.duplicates == b.duplicates
        assert sorted(a.alerts, key=lambda x: x.alert_id) == sorted(
            b.alerts, key=lambda x: x.alert_id
        )
        assert a.positions == b.positions
        by_key = {(c.symbol, c.interval, c.open_time): c for c in b.candles}
        assert len(a.candles) == len(b.candles)
        for c in a.candles:
            d = by_key[(c.symbol, c.interval, c.open_time)]
            assert (c.open, c.high, c.low, c.close, c.trade_count, c.first_trade_id) == (
                d.open, d.high, d.low, d.close, d.trade_count, d.first_trade_id,
            )  # fmt: skip
            assert (c.last_trade_id, c.is_final, c.revision) == (
                d.last_trade_id, d.is_final, d.revision,
            )  # fmt: skip
            for name in ("volume", "quote_volume", "taker_buy_volume", "vwap"):
                assert math.isclose(getattr(c, name), getattr(d, name), rel_tol=1e-9)
    assert rows_engine.watermarks() == frame_engine.watermarks()
