"""Single rules of the candle engine at their edges, on both paths (plain Python rows for
small batches, polars for large ones). Expected values are worked out by hand."""

import pyarrow as pa
import pytest

from marketpipe.config import AlertSettings
from marketpipe.model.records import Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import CandleEngine

MIN = 60_000_000
S = 1_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC

PATHS = pytest.mark.parametrize("row_path_max", [10**9, 0], ids=["row-path", "polars-path"])


def engine(row_path_max: int, lateness_us: int = 10 * MIN) -> CandleEngine:
    return CandleEngine(
        AlertRules(AlertSettings()), grace_us=0, allowed_lateness_us=lateness_us,
        row_path_max=row_path_max,
    )  # fmt: skip


def trade(
    trade_id: int, ts: int, price: float = 100.0, qty: float = 1.0, side: str = "buy",
    exchange: str = "binance",
) -> Trade:  # fmt: skip
    return Trade(exchange, "BTC-USDT", trade_id, price, qty, side, ts, ts)  # type: ignore[arg-type]


def table(trades: list[Trade]) -> pa.Table:
    return to_table(trades, TRADE_SCHEMA)


@PATHS
@pytest.mark.parametrize(
    ("minute", "late"),
    [(9, True), (10, False)],
    ids=["window-end-plus-lateness-at-the-watermark", "one-minute-inside"],
)
def test_a_trade_is_too_late_when_its_window_end_plus_lateness_reaches_the_watermark(
    row_path_max: int, minute: int, late: bool
) -> None:
    e = engine(row_path_max)
    e.process(table([trade(1, T0 + 20 * MIN)]))  # watermark 00:20:00 (no grace)
    # At :59 s of its minute, the trade's window still ends at the next whole minute.
    out = e.process(table([trade(2, T0 + minute * MIN + 59 * S)]))
    assert out.late_trades.column("trade_id").to_pylist() == ([2] if late else [])
    assert out.trades.column("trade_id").to_pylist() == [2]
    assert bool(out.candles) is not late


@PATHS
def test_a_new_exchange_has_no_watermark_so_nothing_of_it_is_late(row_path_max: int) -> None:
    e = engine(row_path_max)
    e.process(table([trade(1, T0 + 20 * MIN)]))  # binance has a watermark, coinbase none
    out = e.process(table([trade(5, T0, exchange="coinbase"), trade(2, T0 + 20 * MIN + S)]))
    assert out.late_trades.num_rows == 0
    coinbase = [c for c in out.candles if c.exchange == "coinbase" and c.interval == "1m"]
    assert [(c.open_time, c.trade_count) for c in coinbase] == [(T0, 1)]


@PATHS
def test_each_batch_that_changes_a_final_window_adds_one_revision(row_path_max: int) -> None:
    e = engine(row_path_max)
    e.process(table([trade(1, T0 + 10 * S), trade(2, T0 + 5 * MIN)]))  # minute 0 final
    revisions = []
    for trade_id in (3, 4):
        out = e.process(table([trade(trade_id, T0 + trade_id * S)]))
        [minute] = [c for c in out.candles if c.interval == "1m"]
        revisions.append((minute.revision, minute.trade_count))
    assert revisions == [(1, 2), (2, 3)]


@PATHS
def test_taker_buy_sums_count_buys_only(row_path_max: int) -> None:
    out = engine(row_path_max).process(
        table([trade(1, T0, 4.0, 2.0, "buy"), trade(2, T0 + S, 8.0, 0.5, "sell")])
    )
    [minute] = [c for c in out.candles if c.interval == "1m"]
    assert (minute.volume, minute.quote_volume) == (2.5, 12.0)
    assert (minute.taker_buy_volume, minute.taker_buy_quote_volume) == (2.0, 8.0)


@PATHS
def test_a_trade_id_twice_in_one_batch_keeps_its_first_delivery(row_path_max: int) -> None:
    out = engine(row_path_max).process(
        table([trade(3, T0 + 3 * S, 103.0), trade(1, T0 + S, 101.0), trade(3, T0 + 9 * S, 999.0),
               trade(2, T0 + 2 * S, 102.0)])
    )  # fmt: skip
    assert out.duplicates == 1
    # Fresh trades stay in arrival order, and the first copy of id 3 is the one kept.
    assert out.trades.column("trade_id").to_pylist() == [3, 1, 2]
    assert out.trades.column("price").to_pylist() == [103.0, 101.0, 102.0]
    [minute] = [c for c in out.candles if c.interval == "1m"]
    assert (minute.high, minute.close, minute.last_trade_id) == (103.0, 103.0, 3)
