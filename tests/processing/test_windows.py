"""The shared window book's clock and settings (`processing/windows.py`)."""

from marketpipe.config import AlertSettings, EngineSettings
from marketpipe.model.records import Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import CandleEngine
from marketpipe.processing.windows import EventTime

S = 1_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC


def test_an_explicit_idle_lag_overrides_the_configured_one() -> None:
    e = CandleEngine(
        AlertRules(AlertSettings()), grace_us=2 * S, allowed_lateness_us=3600 * S,
        idle_lag_us=5 * S,
    )  # fmt: skip
    trade = Trade("binance", "BTC-USDT", 1, 1.0, 1.0, "buy", T0, T0)  # type: ignore[arg-type]
    e.process(to_table([trade], TRADE_SCHEMA))
    e.advance_idle(T0 + 100 * S, lag_us=0)
    assert e.watermark("binance") == T0 + 98 * S  # now less grace, no lag
    e.advance_idle(T0 + 200 * S)
    assert e.watermark("binance") == T0 + 193 * S  # now less grace and the configured lag


def test_whole_seconds_of_idle_lag_become_exact_microseconds() -> None:
    settings = EngineSettings(grace_s=3.0, allowed_lateness_s=7.0, idle_lag_s=2.0)
    timing = EventTime.from_settings(settings)
    assert (timing.grace_us, timing.allowed_lateness_us, timing.idle_lag_us) == (
        3 * S, 7 * S, 2 * S,
    )  # fmt: skip
