"""The `venue_divergence` rule: one venue's price departs from the other venues' for too long.

Measured on final 1m candles, so it is as deterministic as they are:
- an *asset* is a base in one quote family (`BTC-USDT` on Binance and `BTC-USD` on Coinbase
  are both `BTC-USD`, see `model.symbols.comparable_asset`);
- minute `m` of an asset is judged once every venue that lists it has a watermark past the
  minute's end (all its candles for `m` are final), whatever the batching;
- a venue is *divergent* in `m` when its close differs from the median close of the other
  venues by more than `divergence_bps` of that median. A venue without a trade in `m` takes
  its previous close, for `STALE_MINUTES` at most; at least `divergence_min_venues` venues
  (itself included) must have a price, and until that many venues list the asset its minutes
  wait (the few newest) rather than being judged without them;
- an *episode* is a run of consecutive divergent minutes of one venue; it fires one alert once
  it has lasted `divergence_s` (whole minutes, rounded up), with the id of its first minute.
"""

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from marketpipe.model.intervals import MINUTE_US
from marketpipe.model.records import Alert, Candle
from marketpipe.model.symbols import comparable_asset
from marketpipe.processing.alert_ids import alert_details, alert_id

STALE_MINUTES: Final = 5
BPS: Final = 10_000.0


class DivergenceThresholds(Protocol):
    @property
    def divergence_bps(self) -> float: ...
    @property
    def divergence_s(self) -> float: ...
    @property
    def divergence_min_venues(self) -> int: ...


@dataclass(slots=True)
class _Listing:
    """One venue's side of an asset: its symbol, closes by minute, and its open episode."""

    symbol: str
    closes: dict[int, float] = field(default_factory=dict)
    episode_start: int | None = None
    episode_minutes: int = 0
    fired: bool = False


@dataclass(slots=True)
class _Asset:
    listings: dict[str, _Listing] = field(default_factory=dict)  # by exchange
    judged_until: int | None = None  # open time of the newest minute judged


class DivergenceRule:
    def __init__(self, settings: DivergenceThresholds) -> None:
        self.settings = settings
        self._minutes_needed = max(1, math.ceil(settings.divergence_s / 60))
        self._assets: dict[str, _Asset] = {}

    def remember(self, candle: Candle) -> None:
        """Record a final 1m candle's close (a revision replaces it until the minute is
        judged; after that the minute stays as judged)."""
        asset_name = comparable_asset(candle.symbol, candle.exchange)
        if asset_name is None:
            return
        asset = self._assets.setdefault(asset_name, _Asset())
        listing = asset.listings.get(candle.exchange)
        if listing is None:
            listing = asset.listings[candle.exchange] = _Listing(candle.symbol)
        if asset.judged_until is None or candle.open_time > asset.judged_until:
            listing.closes[candle.open_time] = candle.close

    def judge(self, watermarks: Mapping[str, int]) -> list[Alert]:
        """Judge every minute all of an asset's venues have finalized; alerts of episodes
        that reached their duration, in minute order."""
        alerts: list[Alert] = []
        for name, asset in self._assets.items():
            marks = [watermarks.get(exchange) for exchange in asset.listings]
            if any(mark is None for mark in marks):
                continue
            # Minute m is final on a venue once its end (m + 1 minute) is at the watermark.
            last = min(mark for mark in marks if mark is not None) - MINUTE_US
            last -= last % MINUTE_US
            if len(asset.listings) < self.settings.divergence_min_venues:
                # Too few venues list it yet to judge: keep only what a later one may need.
                self._forget_before(asset, last - STALE_MINUTES * MINUTE_US)
                continue
            start = self._first_unjudged(asset)
            if start is None:
                continue
            for minute in range(start, last + 1, MINUTE_US):
                alerts.extend(self._judge_minute(name, asset, minute))
                asset.judged_until = minute
            self._forget_before(asset, last - STALE_MINUTES * MINUTE_US)
        return alerts

    def _first_unjudged(self, asset: _Asset) -> int | None:
        if asset.judged_until is not None:
            return asset.judged_until + MINUTE_US
        minutes = [m for listing in asset.listings.values() for m in listing.closes]
        return min(minutes) if minutes else None

    def _judge_minute(self, name: str, asset: _Asset, minute: int) -> list[Alert]:
        prices = {
            exchange: price
            for exchange, listing in asset.listings.items()
            if (price := _price_at(listing, minute)) is not None
        }
        alerts: list[Alert] = []
        for exchange, listing in asset.listings.items():
            price = prices.get(exchange)
            others = [p for ex, p in prices.items() if ex != exchange]
            divergent = False
            deviation = 0.0
            reference = 0.0
            if price is not None and len(others) + 1 >= self.settings.divergence_min_venues:
                reference = statistics.median(others)
                deviation = (price - reference) / reference * BPS
                divergent = abs(deviation) > self.settings.divergence_bps
            if not divergent:
                listing.episode_start, listing.episode_minutes, listing.fired = None, 0, False
                continue
            if listing.episode_start is None:
                listing.episode_start = minute
            listing.episode_minutes += 1
            if not listing.fired and listing.episode_minutes >= self._minutes_needed:
                listing.fired = True
                alerts.append(
                    self._alert(name, exchange, listing, minute, deviation, reference, prices)
                )
        return alerts

    def _alert(
        self,
        name: str,
        exchange: str,
        listing: _Listing,
        minute: int,
        deviation: float,
        reference: float,
        prices: dict[str, float],
    ) -> Alert:
        assert listing.episode_start is not None
        threshold = self.settings.divergence_bps
        return Alert(
            alert_id=alert_id("venue_divergence", exchange, listing.symbol, listing.episode_start),
            kind="venue_divergence",
            severity="critical" if abs(deviation) >= 4 * threshold else "warning",
            exchange=exchange,
            symbol=listing.symbol,
            ts=listing.episode_start,
            value=round(deviation, 6),
            threshold=threshold,
            details=alert_details(
                asset=name,
                since=listing.episode_start,
                judged_minute=minute,
                minutes=listing.episode_minutes,
                price=prices[exchange],
                median_of_others=reference,
                venues=sorted(prices),
            ),
        )

    def _forget_before(self, asset: _Asset, oldest: int) -> None:
        for listing in asset.listings.values():
            for minute in [m for m in listing.closes if m < oldest]:
                del listing.closes[minute]


def _price_at(listing: _Listing, minute: int) -> float | None:
    """The venue's close in `minute`, or its last close of the few minutes before."""
    for back in range(STALE_MINUTES + 1):
        price = listing.closes.get(minute - back * MINUTE_US)
        if price is not None:
            return price
    return None
