"""The seam between the tier router and the storage tiers (hot, warm, lake).

A tier answers candles, trades and alerts for a half-open time range `[start, end)` (µs) and
says which range of a series it holds completely. The router asks the hottest tier first and
sends only what it lacks to colder ones. Embedded mode implements this over memory, DuckDB and
Parquet (`embedded_tiers.py`); cluster mode plugs Redis, PostgreSQL and S3 in behind the same
protocol.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from marketpipe.model.records import Alert, Candle, Trade

T = TypeVar("T")

Kind = Literal["candles", "trades", "alerts"]


@dataclass(frozen=True, slots=True)
class TimeRange:
    """`[start, end)` in µs since the epoch."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Series:
    """What a coverage question is about: one kind of record of one exchange and symbol.

    `interval` only matters for candles; `symbol=None` means every symbol (alerts feeds).
    """

    kind: Kind
    exchange: str
    symbol: str | None
    interval: str = "1m"


class Tier(Protocol):
    """One storage tier, as the router sees it. Reads only; all methods are thread-safe.

    Results are ordered oldest first, or newest first with `newest_first=True`; `limit` counts
    from that end. Times are µs; `start`/`end` of None mean unbounded.
    """

    name: str

    def coverage(self, series: Series) -> TimeRange | None:
        """The range this tier holds *completely* for `series` (every record in it is here),
        or None if it cannot promise any. `end` is just past the newest record it has."""
        ...

    def candles(
        self, exchange: str, symbol: str, interval: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Candle]:  # fmt: skip
        """Candles whose `open_time` is in `[start, end)`."""
        ...

    def trades(
        self, exchange: str, symbol: str, start: int | None, end: int | None,
        *, limit: int | None = None, newest_first: bool = False,
    ) -> list[Trade]:  # fmt: skip
        """Trades whose `ts_event` is in `[start, end)`, ordered by `(ts_event, trade_id)`."""
        ...

    def alerts(
        self, exchange: str | None, symbol: str | None, start: int | None, end: int | None,
        *, kind: str | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[Alert]:  # fmt: skip
        """Alerts whose `ts` is in `[start, end)`, optionally of one kind."""
        ...


def window(
    items: Sequence[T], key: Callable[[T], int], start: int | None, end: int | None,
    limit: int | None, newest_first: bool,
) -> list[T]:  # fmt: skip
    """A tier's answer from records it holds in memory, oldest first: `[start, end)` by `key`,
    then ordered and limited as the protocol says."""
    picked = [
        x for x in items if (start is None or key(x) >= start) and (end is None or key(x) < end)
    ]
    if newest_first:
        picked.reverse()
    return picked if limit is None else picked[:limit]


def matching_alerts(
    alerts: Iterable[Alert], exchange: str | None, symbol: str | None, kind: str | None
) -> list[Alert]:
    """A hot tier's alerts feed filtered as the protocol's `alerts` asks, oldest first."""
    found = [
        a for a in alerts
        if (exchange is None or a.exchange == exchange)
        and (symbol is None or a.symbol == symbol)
        and (kind is None or a.kind == kind)
    ]  # fmt: skip
    found.sort(key=lambda a: (a.ts, a.alert_id))
    return found
