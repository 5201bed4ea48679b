"""Acceptance: replaying the two real BTCUSDT recordings gives the reference candles and
alerts, idempotently, in any file order, with every trade stored once."""

from pathlib import Path

import pytest

from harness.reference import (
    ReferenceCandle,
    assert_candles_match,
    raw_trades,
    reference_candles,
)
from marketpipe.config import Settings
from marketpipe.embedded.replay import replay
from marketpipe.model.records import Candle
from marketpipe.storage.embedded import EmbeddedStore

pytestmark = pytest.mark.integration

WHALE_TRADE_ID = 3735696283


def stored(settings: Settings) -> tuple[list[Candle], list[Candle], int, list[tuple[str, str]]]:
    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        warm = store.warm
        minutes = warm.candles(
            exchange="binance", symbol="BTC-USDT", interval="1m", start=None, end=None, limit=None
        )
        fives = warm.candles(
            exchange="binance", symbol="BTC-USDT", interval="5m", start=None, end=None, limit=None
        )
        trades = warm.counts()["trades_recent"]
        alerts = [
            (a.kind, a.alert_id)
            for a in warm.alerts(exchange=None, symbol=None, start=None, end=None, limit=None)
        ]
        return minutes, fives, trades, alerts
    finally:
        store.close()


def assert_matches_reference(candles: list[Candle], reference: list[ReferenceCandle]) -> None:
    """The reference's values (harness/reference.py), and every window final."""
    assert_candles_match(candles, reference)
    assert all(candle.is_final for candle in candles)


def test_replay_of_both_files_gives_the_12_reference_candles_and_alerts(
    settings: Settings, recorded_files: list[Path]
) -> None:
    summary = replay(settings, recorded_files)
    minutes, fives, trades, alerts = stored(settings)
    raw = raw_trades(recorded_files)

    assert summary.trades_read == 19_904 and summary.dead_letters == 0
    assert trades == 19_904
    assert len(minutes) == 12
    assert_matches_reference(minutes, reference_candles(raw))
    assert_matches_reference(fives, reference_candles(raw, minutes=5))
    assert minutes[0].open == 61837.63 and minutes[-1].close == 61602.02

    whales = [a for a in alerts if a[0] == "whale_trade"]
    assert len(whales) == 1
    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        (whale,) = store.warm.alerts(
            exchange=None, symbol=None, start=None, end=None, limit=None, kind="whale_trade"
        )
        spikes = store.warm.alerts(
            exchange=None, symbol=None, start=None, end=None, limit=None, kind="volume_spike"
        )
    finally:
        store.close()
    assert f'"trade_id":{WHALE_TRADE_ID}' in whale.details
    assert 420_000 < whale.value < 435_000
    million_minutes = sorted(c.open_time for c in minutes if c.quote_volume >= 1_000_000)
    assert len(million_minutes) == 8
    assert sorted(a.ts for a in spikes) == million_minutes
    assert {a[0] for a in alerts} == {"whale_trade", "volume_spike"}


def test_lake_holds_every_trade_exactly_once(
    settings: Settings, recorded_files: list[Path]
) -> None:
    replay(settings, recorded_files)
    replay(settings, recorded_files)
    store = EmbeddedStore(settings.data_dir, read_only=True)
    try:
        lake = store.lake.read_trades()
    finally:
        store.close()
    ids = lake.column("trade_id").to_pylist()
    assert len(ids) == 19_904 == len(set(ids))
    files = sorted(p.name for p in (settings.data_dir / "lake").rglob("*.parquet"))
    assert files and all(name.startswith("part-") for name in files)
    assert not list((settings.data_dir / "lake").rglob(".tmp-*"))


def test_replaying_the_same_input_twice_changes_nothing(
    settings: Settings, recorded_files: list[Path]
) -> None:
    replay(settings, recorded_files)
    first = stored(settings)
    again = replay(settings, recorded_files)
    assert again.trades_stored == 0 and again.duplicates == 19_904
    assert stored(settings) == first


def test_files_in_reverse_order_give_the_same_final_candles_with_revisions(
    settings: Settings, recorded_files: list[Path], tmp_path: Path
) -> None:
    replay(settings, recorded_files)
    forward, _, _, forward_alerts = stored(settings)
    backward_settings = settings.model_copy(update={"data_dir": tmp_path / "backward"})
    replay(backward_settings, list(reversed(recorded_files)))
    backward, _, trades, backward_alerts = stored(backward_settings)

    def values(c: Candle) -> tuple[object, ...]:
        return (
            c.open_time,
            c.open,
            c.high,
            c.low,
            c.close,
            c.trade_count,
            c.first_trade_id,
            c.last_trade_id,
            round(c.volume, 8),
            round(c.quote_volume, 4),
        )

    assert trades == 19_904
    assert [values(c) for c in backward] == [values(c) for c in forward]
    assert all(c.is_final for c in backward)
    # The minute spanning both files was final after the first file, then revised.
    assert any(c.revision > 0 for c in backward)
    assert sorted(backward_alerts) == sorted(forward_alerts)
