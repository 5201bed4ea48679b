"""The tier router: ranges spanning tiers come back whole, without duplicates or holes."""

from pathlib import Path

import pytest

from harness.reference import raw_trades, reference_candles
from marketpipe.config import Settings
from marketpipe.embedded.replay import replay
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Alert, Candle, Trade
from marketpipe.storage.embedded import EmbeddedStore
from marketpipe.storage.embedded_tiers import (
    LakeParquetTier,
    WarmDuckDBTier,
    embedded_router,
)
from marketpipe.storage.router import TierRouter
from marketpipe.storage.tiers import Series, TimeRange

MIN = 60_000_000


def _candle(open_time: int, close: float) -> Candle:
    return Candle(
        "binance", "BTC-USDT", "1m", open_time, open_time + MIN, close, close, close, close,
        1.0, close, 1, 0.0, 0.0, close, 1, 1, True, 0,
    )  # fmt: skip


class ListTier:
    """A tier over a list of 1m candles, holding `[first, last]` completely."""

    def __init__(self, name: str, candles: list[Candle]) -> None:
        self.name = name
        self.items = candles
        self.asked: list[tuple[int | None, int | None]] = []

    def coverage(self, series: Series) -> TimeRange | None:
        if not self.items:
            return None
        return TimeRange(self.items[0].open_time, self.items[-1].close_time)

    def candles(
        self, exchange: str, symbol: str, interval: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        self.asked.append((start, end))
        found = [
            c for c in self.items
            if (start is None or c.open_time >= start) and (end is None or c.open_time < end)
        ]  # fmt: skip
        if newest_first:
            found.reverse()
        return found if limit is None else found[:limit]

    def trades(self, *args: object, **kwargs: object) -> list[Trade]:
        return []

    def alerts(self, *args: object, **kwargs: object) -> list[Alert]:
        return []


def test_a_range_spanning_three_tiers_has_no_duplicates_and_no_holes() -> None:
    everything = [_candle(i * MIN, 100.0 + i) for i in range(30)]
    # Overlapping holdings, as in life: warm also holds what hot holds, lake what warm holds.
    lake = ListTier("lake", everything[:20])
    warm = ListTier("warm", everything[10:])
    hot = ListTier("hot", everything[25:])
    router = TierRouter([hot, warm, lake])
    routed = router.candles("binance", "BTC-USDT", "1m", 5 * MIN, 28 * MIN)
    assert [c.open_time for c in routed.records] == [i * MIN for i in range(5, 28)]
    assert routed.tiers == ("lake", "warm", "hot")
    # Each tier was asked only for its own piece.
    assert hot.asked == [(25 * MIN, 28 * MIN)]
    assert warm.asked == [(10 * MIN, 25 * MIN)]
    assert lake.asked == [(5 * MIN, 10 * MIN)]


def test_newest_first_with_a_limit_stops_at_the_hottest_tier_when_it_suffices() -> None:
    everything = [_candle(i * MIN, 100.0 + i) for i in range(30)]
    hot = ListTier("hot", everything[25:])
    warm = ListTier("warm", everything)
    routed = TierRouter([hot, warm]).candles(
        "binance", "BTC-USDT", "1m", None, None, limit=3, newest_first=True
    )
    assert [c.open_time for c in routed.records] == [29 * MIN, 28 * MIN, 27 * MIN]
    assert routed.tiers == ("hot",)
    assert warm.asked == []
    routed = TierRouter([hot, warm]).candles(
        "binance", "BTC-USDT", "1m", None, None, limit=8, newest_first=True
    )
    assert [c.open_time for c in routed.records] == [i * MIN for i in range(29, 21, -1)]
    assert routed.tiers == ("hot", "warm")


def test_a_range_older_than_the_hot_tier_never_asks_it() -> None:
    everything = [_candle(i * MIN, 100.0 + i) for i in range(30)]
    hot = ListTier("hot", everything[25:])
    warm = ListTier("warm", everything)
    routed = TierRouter([hot, warm]).candles("binance", "BTC-USDT", "1m", 0, 10 * MIN)
    assert len(routed.records) == 10
    assert routed.tiers == ("warm",)
    assert hot.asked == []


@pytest.fixture
def replayed(settings: Settings, recorded_files: list[Path]) -> EmbeddedStore:
    replay(settings, recorded_files)
    return EmbeddedStore(settings.data_dir, read_only=True)


def _ohlcv(c: Candle) -> tuple[object, ...]:
    return (c.open_time // 1000, c.open, c.high, c.low, c.close, round(c.volume, 8), c.trade_count)


def test_embedded_tiers_agree_with_sql_over_the_raw_trades(
    replayed: EmbeddedStore, recorded_files: list[Path]
) -> None:
    reference = [
        (r[1], r[2], r[3], r[4], r[5], round(float(r[6]), 8), r[8])  # type: ignore[arg-type]
        for r in reference_candles(raw_trades(recorded_files))
    ]
    assert len(reference) == 12
    warm = WarmDuckDBTier(replayed.warm)
    lake = LakeParquetTier(replayed.lake)
    args = ("binance", "BTC-USDT", "1m", None, None)
    assert [_ohlcv(c) for c in warm.candles(*args)] == reference
    # The lake recomputes candles from its Parquet trades: the same values.
    assert [_ohlcv(c) for c in lake.candles(*args)] == reference
    five = reference_candles(raw_trades(recorded_files), minutes=5)
    assert [c.trade_count for c in lake.candles("binance", "BTC-USDT", "5m", None, None)] == [
        r[8] for r in five
    ]


def test_embedded_router_merges_hot_warm_and_lake(
    replayed: EmbeddedStore, recorded_files: list[Path]
) -> None:
    warm_candles = WarmDuckDBTier(replayed.warm).candles("binance", "BTC-USDT", "1m", None, None)
    # The hot tier of a live process holds only the newest windows.
    replayed.hot.apply(CommitBatch(candles=warm_candles[-3:]))
    router = embedded_router(replayed)
    routed = router.candles("binance", "BTC-USDT", "1m", None, None)
    assert routed.records == warm_candles
    assert routed.tiers == ("warm", "hot")
    newest = router.candles("binance", "BTC-USDT", "1m", None, None, limit=2, newest_first=True)
    assert newest.records == warm_candles[-1:-3:-1]
    assert newest.tiers == ("hot",)
    trades = router.trades("binance", "BTC-USDT", None, None, limit=5, newest_first=True)
    assert [t.trade_id for t in trades.records] == list(range(3735703162, 3735703157, -1))
    whales = router.alerts(None, None, None, None, kind="whale_trade")
    assert [a.kind for a in whales.records] == ["whale_trade"]
    assert router.latest(Series("candles", "binance", "BTC-USDT")) == warm_candles[-1].close_time


def test_the_lake_answers_what_the_warm_store_no_longer_holds(replayed: EmbeddedStore) -> None:
    lake = LakeParquetTier(replayed.lake)
    trades = lake.trades("binance", "BTC-USDT", None, None)
    assert len(trades) == 19_904
    assert trades[0].trade_id == 3735683259
    # Warm "lost" everything before the 4th minute: the router sends that part to the lake.
    warm = WarmDuckDBTier(replayed.warm)
    candles = warm.candles("binance", "BTC-USDT", "1m", None, None)
    cut = candles[3].open_time

    class TrimmedWarm(WarmDuckDBTier):
        def coverage(self, series: Series) -> TimeRange | None:
            full = super().coverage(series)
            return None if full is None else TimeRange(cut, full.end)

    router = TierRouter([replayed.hot, TrimmedWarm(replayed.warm), lake])
    routed = router.candles("binance", "BTC-USDT", "1m", None, None)
    assert routed.tiers == ("lake", "warm")
    assert [_ohlcv(c) for c in routed.records] == [_ohlcv(c) for c in candles]
