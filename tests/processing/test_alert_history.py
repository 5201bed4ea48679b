"""The spike rules' fields and the trailing history beyond one symbol. Values are powers of
two, so every mean and threshold below is exact."""

from marketpipe.config import AlertSettings
from marketpipe.model.records import Candle
from marketpipe.processing.alerts import AlertRules

MIN = 60_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC


def candle(
    open_time: int, quote_volume: float, close: float = 64.0, symbol: str = "BTC-USDT"
) -> Candle:
    return Candle(
        "kraken", symbol, "1m", open_time, open_time + MIN, 64.0, max(64.0, close),
        min(64.0, close), close, 1.0, quote_volume, 1, 0.0, 0.0, quote_volume, 1, 1, True, 0,
    )  # fmt: skip


def rules() -> AlertRules:
    return AlertRules(
        AlertSettings(
            price_spike_pct=0.03125, volume_spike_quote=1024.0, volume_spike_multiple=4.0,
            volume_spike_history_min=4,
        )
    )  # fmt: skip


def test_spike_alerts_name_the_candles_exchange_and_symbol() -> None:
    alerts = rules().on_final_minute(candle(T0, 2048.0, close=66.0, symbol="ETH-USD"))
    assert sorted((a.kind, a.exchange, a.symbol) for a in alerts) == [
        ("price_spike", "kraken", "ETH-USD"),
        ("volume_spike", "kraken", "ETH-USD"),
    ]


def test_a_relative_spike_fires_over_a_trailing_mean_below_one() -> None:
    r = rules()
    for m in range(4):
        r.remember(candle(T0 + m * MIN, 0.25))  # mean 0.25: the threshold is 4 x 0.25 = 1
    [spike] = r.on_final_minute(candle(T0 + 4 * MIN, 1.0))
    assert (spike.kind, spike.value, spike.threshold) == ("volume_spike", 1.0, 1.0)


def test_each_symbols_history_is_pruned_on_its_own() -> None:
    r = rules()
    # ETH's minutes run an hour ahead of BTC's; each keeps its own last 2 x 4 minutes.
    for m in range(20):
        r.remember(candle(T0 + m * MIN, 8.0))
        r.remember(candle(T0 + (60 + m) * MIN, 8.0, symbol="ETH-USD"))
    kept = {s: sorted(v) for (_, s), v in r._volumes.items()}
    assert kept == {
        "BTC-USDT": [T0 + m * MIN for m in range(11, 20)],
        "ETH-USD": [T0 + (60 + m) * MIN for m in range(11, 20)],
    }
    [spike] = r.on_final_minute(candle(T0 + 20 * MIN, 32.0))  # BTC's mean is still 8
    assert spike.threshold == 32.0
