"""The tier router: answers any `[start, end)` from the tiers that hold it.

Tiers are ordered hottest first. Each says which range of a series it holds completely; the
router gives the hottest tier everything from the start of its coverage onwards, the next tier
what lies before that, and so on. The pieces are disjoint and adjacent, so a range spanning
tiers comes back without duplicates or holes, and no colder tier is asked for what a hotter one
holds.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from marketpipe.model.records import Alert, Candle, Trade
from marketpipe.storage.tiers import Series, Tier

R = TypeVar("R", Candle, Trade, Alert)


@dataclass(frozen=True, slots=True)
class Segment:
    tier: Tier
    start: int | None
    end: int | None


@dataclass(frozen=True, slots=True)
class Routed(Generic[R]):
    """Records, and the names of the tiers that answered (for the `X-Marketpipe-Tiers`
    header)."""

    records: list[R]
    tiers: tuple[str, ...]


class TierRouter:
    def __init__(self, tiers: Sequence[Tier]) -> None:
        if not tiers:
            raise ValueError("the router needs at least one tier")
        self.tiers = tuple(tiers)

    def plan(self, series: Series, start: int | None, end: int | None) -> list[Segment]:
        """Disjoint pieces of `[start, end)`, newest piece (hottest tier) first."""
        segments: list[Segment] = []
        upper = end
        for tier in self.tiers:
            covered = tier.coverage(series)
            if covered is None:
                continue
            lower = covered.start if start is None else max(start, covered.start)
            if upper is None or lower < upper:
                segments.append(Segment(tier, lower, upper))
                upper = lower
            if start is not None and upper is not None and upper <= start:
                break
        return segments

    def latest(self, series: Series) -> int | None:
        """Just past the newest record any tier holds for `series`."""
        ends = [c.end for t in self.tiers if (c := t.coverage(series)) is not None]
        return max(ends) if ends else None

    def _gather(
        self,
        segments: list[Segment],
        fetch: Callable[[Segment, int | None], list[R]],
        limit: int | None,
        newest_first: bool,
    ) -> Routed[R]:
        ordered = segments if newest_first else list(reversed(segments))
        records: list[R] = []
        used: list[str] = []
        for segment in ordered:
            remaining = None if limit is None else limit - len(records)
            if remaining is not None and remaining <= 0:
                break
            part = fetch(segment, remaining)
            used.append(segment.tier.name)
            records.extend(part)
        return Routed(records, tuple(dict.fromkeys(used)))

    def candles(
        self, exchange: str, symbol: str, interval: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> Routed[Candle]:  # fmt: skip
        series = Series("candles", exchange, symbol, interval)
        return self._gather(
            self.plan(series, start, end),
            lambda s, n: s.tier.candles(
                exchange, symbol, interval, s.start, s.end, limit=n, newest_first=newest_first
            ),
            limit,
            newest_first,
        )

    def trades(
        self, exchange: str, symbol: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> Routed[Trade]:  # fmt: skip
        series = Series("trades", exchange, symbol)
        return self._gather(
            self.plan(series, start, end),
            lambda s, n: s.tier.trades(
                exchange, symbol, s.start, s.end, limit=n, newest_first=newest_first
            ),
            limit,
            newest_first,
        )

    def alerts(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> Routed[Alert]:  # fmt: skip
        # Alert feeds span exchanges; coverage is asked per exchange given, else for all.
        series = Series("alerts", exchange or "*", symbol)
        return self._gather(
            self.plan(series, start, end),
            lambda s, n: s.tier.alerts(
                exchange, symbol, s.start, s.end, kind=kind, limit=n, newest_first=newest_first
            ),
            limit,
            newest_first,
        )
