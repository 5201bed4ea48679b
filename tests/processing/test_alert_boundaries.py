"""Alert rules at their exact boundaries: a value equal to a threshold fires, the next float
below does not. Thresholds and prices are powers of two (or small sums of them), so every
notional and change below is computed exactly and `>=` cannot be confused with `>`.

The whale rule is written twice (the engine's row path and `AlertRules.whales` for large
batches), so each whale case runs through both paths."""

import hashlib
import json
import math

import pyarrow as pa
import pytest

from marketpipe.config import AlertSettings
from marketpipe.model.records import Alert, Candle, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import CandleEngine

MIN = 60_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
WHALE = 65_536.0  # 2**16: price 32_768 x qty 2 is exactly the threshold

# row_path_max: everything on the plain-Python row path, or everything on polars.
PATHS = pytest.mark.parametrize("row_path_max", [10**9, 0], ids=["row-path", "polars-path"])


def engine(row_path_max: int, **alerts: float) -> CandleEngine:
    return CandleEngine(
        AlertRules(AlertSettings(whale_notional=WHALE, **alerts)),
        grace_us=0,
        allowed_lateness_us=3600 * 1_000_000,
        row_path_max=row_path_max,
    )


def trade(trade_id: int, price: float, qty: float, side: str = "buy", ts: int = T0) -> Trade:
    return Trade("binance", "BTC-USDT", trade_id, price, qty, side, ts, ts)  # type: ignore[arg-type]


def table(trades: list[Trade]) -> pa.Table:
    return to_table(trades, TRADE_SCHEMA)


def expected_id(kind: str, key: int) -> str:
    """The documented id: blake2b-128 of `kind|exchange|symbol|key`, computed here directly."""
    text = f"{kind}|binance|BTC-USDT|{key}".encode()
    return hashlib.blake2b(text, digest_size=16).hexdigest()


@PATHS
def test_a_trade_of_exactly_the_whale_notional_fires_and_one_just_below_does_not(
    row_path_max: int,
) -> None:
    below = math.nextafter(2.0, 0.0)  # notional one ulp under the threshold
    assert 32_768.0 * below < WHALE
    out = engine(row_path_max).process(
        table([trade(7, 32_768.0, 2.0, "sell"), trade(8, 32_768.0, below)])
    )
    assert out.alerts == [
        Alert(
            alert_id=expected_id("whale_trade", 7),
            kind="whale_trade",
            severity="warning",
            exchange="binance",
            symbol="BTC-USDT",
            ts=T0,
            value=WHALE,
            threshold=WHALE,
            details=json.dumps(
                {"trade_id": 7, "price": 32_768.0, "qty": 2.0, "side": "sell"},
                separators=(",", ":"),
            ),
        )
    ]


@PATHS
def test_whale_severity_turns_critical_at_exactly_ten_times_the_threshold(
    row_path_max: int,
) -> None:
    below = math.nextafter(20.0, 0.0)
    out = engine(row_path_max).process(
        table([trade(1, 32_768.0, 20.0), trade(2, 32_768.0, below, ts=T0 + 1)])
    )
    by_id = {json.loads(a.details)["trade_id"]: a for a in out.alerts}
    assert (by_id[1].severity, by_id[1].value) == ("critical", 10 * WHALE)
    assert by_id[2].severity == "warning" and by_id[2].value < 10 * WHALE


@PATHS
def test_a_duplicate_or_late_whale_alerts_once_and_only_new_trades_are_checked(
    row_path_max: int,
) -> None:
    e = engine(row_path_max)
    first = e.process(table([trade(1, 32_768.0, 2.0), trade(1, 32_768.0, 2.0)]))
    again = e.process(table([trade(1, 32_768.0, 2.0)]))
    assert [a.alert_id for a in first.alerts] == [expected_id("whale_trade", 1)]
    assert again.alerts == []


def candle(
    open_time: int, open_: float = 64.0, close: float = 64.0, quote_volume: float = 1.0
) -> Candle:
    return Candle(
        "binance", "BTC-USDT", "1m", open_time, open_time + MIN, open_, max(open_, close),
        min(open_, close), close, 1.0, quote_volume, 1, 0.0, 0.0, quote_volume, 1, 1, True, 0,
    )  # fmt: skip


def rules(**overrides: float) -> AlertRules:
    base: dict[str, float] = {
        "price_spike_pct": 0.03125,  # 2**-5: 64 -> 66 is exactly +3.125 %
        "volume_spike_quote": 1024.0,
        "volume_spike_multiple": 4.0,
        "volume_spike_history_min": 4,
    }
    return AlertRules(AlertSettings(**(base | overrides)))


@pytest.mark.parametrize(
    ("close", "fires", "severity"),
    [
        (66.0, True, "warning"),  # +3.125 %: exactly the threshold
        (62.0, True, "warning"),  # -3.125 %: a fall counts as much as a rise
        (math.nextafter(66.0, 0.0), False, None),
        (math.nextafter(62.0, 100.0), False, None),
        (69.0, True, "critical"),  # +7.8125 % = exactly 2.5 x the threshold
        (math.nextafter(69.0, 0.0), True, "warning"),
        (59.0, True, "critical"),  # -7.8125 %
    ],
)
def test_price_spike_fires_at_exactly_the_threshold_either_way(
    close: float, fires: bool, severity: str | None
) -> None:
    alerts = rules().on_final_minute(candle(T0, 64.0, close))
    spikes = [a for a in alerts if a.kind == "price_spike"]
    if not fires:
        assert spikes == []
        return
    (spike,) = spikes
    assert spike.severity == severity
    assert spike.value == close / 64.0 - 1 and spike.threshold == 0.03125
    assert spike.alert_id == expected_id("price_spike", T0) and spike.ts == T0
    assert json.loads(spike.details) == {"open_time": T0, "open": 64.0, "close": close}


def test_a_candle_with_no_open_price_is_never_a_price_spike() -> None:
    assert rules().on_final_minute(candle(T0, 0.0, 64.0)) == []


def test_absolute_volume_spike_fires_at_exactly_the_quote_threshold() -> None:
    r = rules()
    (spike,) = r.on_final_minute(candle(T0, quote_volume=1024.0))
    assert (spike.kind, spike.severity, spike.value, spike.threshold) == (
        "volume_spike", "warning", 1024.0, 1024.0,
    )  # fmt: skip
    assert spike.alert_id == expected_id("volume_spike", T0)
    assert json.loads(spike.details) == {"open_time": T0, "basis": "absolute", "trades": 1}
    assert rules().on_final_minute(candle(T0, quote_volume=math.nextafter(1024.0, 0.0))) == []


def history(r: AlertRules, minutes: range, quote_volume: float = 8.0) -> None:
    for m in minutes:
        r.remember(candle(T0 + m * MIN, quote_volume=quote_volume))


def relative(r: AlertRules, minute: int, quote_volume: float) -> list[Alert]:
    return [
        a
        for a in r.on_final_minute(candle(T0 + minute * MIN, quote_volume=quote_volume))
        if a.kind == "volume_spike"
    ]


def test_relative_volume_spike_fires_at_exactly_multiple_times_the_trailing_mean() -> None:
    r = rules()
    history(r, range(4))  # minutes 0..3, mean 8: the threshold is 4 x 8 = 32
    (spike,) = relative(r, 4, 32.0)
    assert (spike.value, spike.threshold, spike.ts) == (32.0, 32.0, T0 + 4 * MIN)
    assert json.loads(spike.details)["basis"] == "relative"
    assert relative(r, 4, math.nextafter(32.0, 0.0)) == []


def test_relative_rule_needs_a_full_trailing_history_and_counts_missing_minutes_as_zero() -> None:
    r = rules()
    history(r, range(1, 4))  # minutes 1..3 only: minute 4's trailing window starts at 0
    assert relative(r, 4, 1000.0) == []
    # Minute 5's window [1, 5) is full: mean (8+8+8+0)/4 = 6, threshold 24.
    (spike,) = relative(r, 5, 24.0)
    assert spike.threshold == 24.0
    assert relative(r, 5, math.nextafter(24.0, 0.0)) == []


def test_relative_rule_reads_only_the_window_before_the_candle() -> None:
    r = rules()
    history(r, range(4))  # minutes 0..3 at 8
    r.remember(candle(T0 + 4 * MIN, quote_volume=800.0))  # the candle itself: not history
    r.remember(candle(T0 - MIN, quote_volume=800.0))  # before the window: not history
    (spike,) = relative(r, 4, 32.0)
    assert spike.threshold == 32.0
    # Minute 5's window is [1, 5): 8+8+8+800 = 824, mean 206, threshold 824.
    (spike,) = relative(r, 5, 824.0)
    assert spike.threshold == 824.0


def test_a_revised_minute_replaces_its_volume_in_the_history() -> None:
    r = rules()
    history(r, range(4))
    r.remember(candle(T0 + 3 * MIN, quote_volume=16.0))  # revision of minute 3: 8 -> 16
    (spike,) = relative(r, 4, 40.0)  # mean (8+8+8+16)/4 = 10
    assert spike.threshold == 40.0
    assert relative(r, 4, math.nextafter(40.0, 0.0)) == []


def test_history_older_than_two_windows_is_dropped_but_the_rule_stays_armed() -> None:
    r = rules()
    history(r, range(20))
    # Only the last 2 x 4 minutes are kept; the first final minute is still remembered.
    kept = sorted(r._volumes[("binance", "BTC-USDT")])
    assert kept == [T0 + m * MIN for m in range(11, 20)]
    (spike,) = relative(r, 20, 32.0)
    assert spike.threshold == 32.0


def test_an_all_quiet_history_never_fires_a_relative_spike() -> None:
    r = rules()
    history(r, range(4), quote_volume=0.0)
    assert relative(r, 4, 1000.0) == []
