"""How a candle engine is built (`CandleEngine.__init__`, `from_settings`), positions as the
engine reports them, and what `flush` leaves for the watermark."""

import pyarrow as pa
import pytest

from marketpipe.config import AlertSettings, EngineSettings
from marketpipe.model.records import Position, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.candles import CandleAcc
from marketpipe.processing.engine import CandleEngine
from marketpipe.processing.windows import EventTime

MIN = 60_000_000
S = 1_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC

PATHS = pytest.mark.parametrize("row_path_max", [10**9, 0], ids=["row-path", "polars-path"])


def trade(trade_id: int, ts: int, symbol: str = "BTC-USDT") -> Trade:
    return Trade("kraken", symbol, trade_id, 10.0, 1.0, "buy", ts, ts)  # type: ignore[arg-type]


def table(trades: list[Trade]) -> pa.Table:
    return to_table(trades, TRADE_SCHEMA)


def test_the_constructor_defaults_to_the_idle_watermark_with_no_extra_lag() -> None:
    e = CandleEngine(AlertRules(AlertSettings()), grace_us=3, allowed_lateness_us=7)
    assert e.timing == EventTime(
        grace_us=3, allowed_lateness_us=7, idle_watermark=True, idle_lag_us=0
    )


def test_the_engine_of_the_settings_takes_their_timing_and_alert_thresholds() -> None:
    alerts = AlertSettings(whale_notional=123.0)
    e = CandleEngine.from_settings(
        EngineSettings(grace_s=1.5, allowed_lateness_s=60.0, idle_watermark=False,
                       idle_lag_s=0.5),
        alerts,
    )  # fmt: skip
    assert e.timing == EventTime(
        grace_us=1_500_000, allowed_lateness_us=60_000_000, idle_watermark=False,
        idle_lag_us=500_000,
    )  # fmt: skip
    assert e.rules.settings is alerts


@PATHS
def test_only_the_configured_intervals_are_built(row_path_max: int) -> None:
    e = CandleEngine(
        AlertRules(AlertSettings()), grace_us=0, allowed_lateness_us=MIN,
        intervals=("1m", "5m"), row_path_max=row_path_max,
    )  # fmt: skip
    out = e.process(table([trade(1, T0)]))
    assert sorted(c.interval for c in out.candles) == ["1m", "5m"]


def test_the_first_interval_must_be_one_minute() -> None:
    with pytest.raises(ValueError, match=r"^the first interval must be 1m: rollups merge 1m"):
        CandleEngine(
            AlertRules(AlertSettings()), grace_us=0, allowed_lateness_us=0, intervals=("5m",)
        )


@PATHS
def test_positions_report_ids_gaps_duplicates_and_the_newest_event_time(
    row_path_max: int,
) -> None:
    e = CandleEngine(
        AlertRules(AlertSettings()), grace_us=0, allowed_lateness_us=3600 * S,
        row_path_max=row_path_max,
    )  # fmt: skip
    e.process(table([trade(1, T0 + 5 * S), trade(2, T0 + 9 * S), trade(5, T0 + 7 * S)]))
    out = e.process(table([trade(3, T0 + S), trade(2, T0 + 9 * S), trade(8, T0, "ETH-USD")]))
    assert sorted(out.positions, key=lambda p: p.symbol) == [
        Position(exchange="kraken", symbol="BTC-USDT", last_trade_id=5, max_ts_event=T0 + 9 * S,
                 id_ranges=[(1, 3), (5, 5)], gaps_found=1, gaps_filled=0, trades_seen=4,
                 duplicates=1),
        Position(exchange="kraken", symbol="ETH-USD", last_trade_id=8, max_ts_event=T0,
                 id_ranges=[(8, 8)], gaps_found=0, gaps_filled=0, trades_seen=1, duplicates=0),
    ]  # fmt: skip
    e.process(table([trade(4, T0 + 2 * S)]))
    [btc] = [p for p in e.positions() if p.symbol == "BTC-USDT"]
    assert (btc.id_ranges, btc.gaps_found, btc.gaps_filled) == ([(1, 5)], 1, 1)


def test_a_restored_symbol_without_ids_reports_last_trade_id_minus_one() -> None:
    e = CandleEngine(AlertRules(AlertSettings()), grace_us=0, allowed_lateness_us=MIN)
    empty = Position(
        exchange="kraken", symbol="BTC-USDT", last_trade_id=-1, max_ts_event=T0,
        id_ranges=[], gaps_found=0, gaps_filled=0, trades_seen=0, duplicates=0,
    )  # fmt: skip
    e.restore([empty], [])
    assert e.positions() == [empty]


def test_a_flushed_window_is_not_emitted_again_when_the_watermark_passes_it() -> None:
    e = CandleEngine(AlertRules(AlertSettings()), grace_us=0, allowed_lateness_us=10 * MIN)
    e.process(table([trade(1, T0 + S)]))
    assert all(c.is_final for c in e.flush().candles)
    assert e.advance_watermark("kraken", T0 + 2 * MIN).candles == []


def test_a_candle_without_volume_has_its_close_as_vwap() -> None:
    acc = CandleAcc((T0, 1), 5.0, (T0, 1), 6.0, 6.0, 5.0, 0.0, 0.0, 1, 0.0, 0.0)
    candle = acc.to_candle("kraken", "BTC-USDT", "1m", T0, MIN, is_final=True, revision=0)
    assert candle.vwap == 6.0
