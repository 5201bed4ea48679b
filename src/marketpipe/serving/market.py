"""Market views both APIs share: the symbol directory, klines with Binance's gap filling,
and rolling 24 h statistics — all read through the tier router."""

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from marketpipe.model.intervals import INTERVAL_US, MINUTE_US
from marketpipe.model.records import Candle, MarketSnapshot, Position, Quote, Trade
from marketpipe.serving.backend import Backend
from marketpipe.serving.market_data import latest_snapshots
from marketpipe.storage.router import Routed
from marketpipe.storage.tiers import Series

DAY_US = 1440 * MINUTE_US
T = TypeVar("T")


class UnknownSymbol(LookupError):
    """No ingested exchange holds this symbol, and it is not configured."""


class UnknownExchange(LookupError):
    """No exchange of this name has data or is configured."""


@dataclass(frozen=True, slots=True)
class SymbolDirectory:
    """Which questions are possible. A symbol exists on an exchange if data for it is stored
    there, or if it is configured (a venue's symbols in the settings): a configured symbol
    without data yet is a valid question with an empty answer. Anything else is unknown, and
    asking for it is an error, not an empty result."""

    stored: frozenset[tuple[str, str]]
    configured: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(cls, positions: list[Position], configured: "Configured" = ()) -> "SymbolDirectory":
        """`configured`: symbols per venue, or a plain list of Binance's."""
        per_venue = configured if isinstance(configured, Mapping) else {"binance": configured}
        return cls(
            frozenset((p.exchange, p.symbol) for p in positions),
            frozenset((ex, s) for ex, symbols in per_venue.items() for s in symbols),
        )

    @property
    def pairs(self) -> frozenset[tuple[str, str]]:
        return self.stored | self.configured

    def exchanges(self) -> list[str]:
        return sorted({ex for ex, _ in self.pairs})

    def symbols(self, exchange: str | None = None) -> list[str]:
        return sorted({s for ex, s in self.pairs if exchange is None or ex == exchange})

    def exchange(self, name: str) -> str:
        """The lowercase name if it exists, else UnknownExchange."""
        lowered = name.lower()
        if lowered not in self.exchanges():
            raise UnknownExchange(name)
        return lowered

    def resolve(self, symbol: str, exchange: str | None = None) -> str:
        """The normalized symbol if it exists (on `exchange`, or on any), else UnknownSymbol."""
        from marketpipe.model.symbols import normalize

        try:
            normalized = normalize(symbol)
        except ValueError:
            raise UnknownSymbol(symbol) from None
        if normalized not in self.symbols(exchange):
            raise UnknownSymbol(symbol)
        return normalized


# The venue a plain list of configured symbols is ingested from.
CONFIGURED_EXCHANGE = "binance"
Configured = Mapping[str, Sequence[str]] | Sequence[str]


def fill_gaps(candles: list[Candle], width: int, start: int | None = None) -> list[Candle]:
    """Binance's kline rows for windows without trades: o=h=l=c=previous close, zero volume.

    `candles` are ascending; a gap before the first one is filled from `start` only when the
    caller passed the candle before it as `candles[0]`.
    """
    filled: list[Candle] = []
    for candle in candles:
        if filled:
            previous = filled[-1]
            t = previous.open_time + width
            while t < candle.open_time:
                filled.append(_empty_after(previous, t, width))
                previous = filled[-1]
                t += width
        filled.append(candle)
    if start is not None:
        filled = [c for c in filled if c.open_time >= start]
    return filled


def _empty_after(previous: Candle, open_time: int, width: int) -> Candle:
    close = previous.close
    return msgspec.structs.replace(
        previous,
        open_time=open_time,
        close_time=open_time + width,
        open=close,
        high=close,
        low=close,
        volume=0.0,
        quote_volume=0.0,
        trade_count=0,
        taker_buy_volume=0.0,
        taker_buy_quote_volume=0.0,
        vwap=close,
        first_trade_id=-1,
        last_trade_id=-1,
        is_final=previous.is_final,
        revision=0,
    )


@dataclass(frozen=True, slots=True)
class Stats24h:
    """Rolling 24 h statistics, ending at the symbol's newest data (in live: now)."""

    exchange: str
    symbol: str
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    last: float
    last_qty: float
    prev_close: float
    volume: float
    quote_volume: float
    count: int
    first_id: int
    last_id: int

    @property
    def change(self) -> float:
        return self.last - self.open

    @property
    def change_pct(self) -> float:
        return 100.0 * self.change / self.open if self.open else 0.0

    @property
    def weighted_avg(self) -> float:
        return self.quote_volume / self.volume if self.volume else 0.0


class MarketView:
    """Read model over a Backend with short-lived caches for the per-request lookups."""

    def __init__(self, backend: Backend, ttl_s: float = 1.0) -> None:
        self.backend = backend
        self.router = backend.router
        self.ttl_s = ttl_s
        self._cache: dict[object, tuple[float, object]] = {}
        self._responses: dict[object, tuple[int, bytes]] = {}
        self._lock = threading.Lock()
        self.configured_symbols: dict[str, tuple[str, ...]] = {}  # see SymbolDirectory

    def configure_symbols(self, symbols: Configured) -> None:
        """The symbols the pipeline ingests (per venue, or a list of Binance's): valid
        questions before their first trade."""
        per_venue = symbols if isinstance(symbols, Mapping) else {CONFIGURED_EXCHANGE: symbols}
        self.configured_symbols = {ex: tuple(s) for ex, s in per_venue.items()}

    def reusable(self, key: object) -> bytes | None:
        """A response built for `key` at the current data version, if any. Never blocks, so
        it is safe on the event loop."""
        version = self.backend.version() if self.backend.version is not None else None
        if version is None:
            return None
        with self._lock:
            hit = self._responses.get(key)
        return hit[1] if hit is not None and hit[0] == version else None

    def response(self, key: object, build: Callable[[], bytes]) -> bytes:
        """An encoded response, reused until the backend's data version changes (popular
        polls such as the newest 500 klines then cost a dictionary lookup)."""
        version = self.backend.version() if self.backend.version is not None else None
        if version is None:
            return build()
        hit = self.reusable(key)
        if hit is not None:
            return hit
        body = build()
        with self._lock:
            if len(self._responses) >= 1024:
                self._responses.clear()
            self._responses[key] = (version, body)
        return body

    def _cached(self, key: object, compute: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]  # type: ignore[return-value]
        value = compute()
        with self._lock:
            self._cache[key] = (now, value)
        return value

    # ---- directory -----------------------------------------------------------------------

    def positions(self) -> list[Position]:
        return self._cached("positions", self.backend.positions)

    def symbols(self, exchange: str | None = None) -> list[tuple[str, str]]:
        """(exchange, symbol) pairs with data, sorted."""
        return sorted(
            (p.exchange, p.symbol)
            for p in self.positions()
            if exchange is None or p.exchange == exchange
        )

    def directory(self) -> SymbolDirectory:
        return SymbolDirectory.of(self.positions(), self.configured_symbols)

    def resolve(self, symbol: str, exchange: str | None) -> str:
        """The normalized symbol if it exists on `exchange` (None: on any), else UnknownSymbol."""
        return self.directory().resolve(symbol, exchange)

    def quotes(self) -> dict[tuple[str, str], Quote]:
        return self._cached(
            "quotes", lambda: {(q.exchange, q.symbol): q for q in self.backend.quotes()}
        )

    def market_snapshots(self) -> list[MarketSnapshot] | None:
        """The newest market snapshot per (source, asset, vs_currency); None when the backend
        stores no market data at all (as opposed to none received yet: an empty list)."""
        market = self.backend.market
        if market is None:
            return None
        return self._cached("market", lambda: latest_snapshots(market()))

    # ---- candles -------------------------------------------------------------------------

    def klines(
        self,
        exchange: str,
        symbol: str,
        interval: str,
        start: int | None,
        end: int | None,
        limit: int,
    ) -> Routed[Candle]:
        """Binance's klines: `start`/`end` bound open times (`end` exclusive); without
        `start`, the newest `limit`. Empty windows are filled, as Binance does."""
        width = INTERVAL_US[interval]
        router = self.router
        if start is None:
            routed = router.candles(
                exchange, symbol, interval, None, end, limit=limit, newest_first=True
            )
            candles = fill_gaps(list(reversed(routed.records)), width)[-limit:]
            return Routed(candles, routed.tiers)
        start = start + (-start) % width  # the first window opening at or after `start`
        routed = router.candles(exchange, symbol, interval, start, end, limit=limit)
        candles = routed.records
        tiers = routed.tiers
        if not candles or candles[0].open_time > start:
            before = router.candles(
                exchange, symbol, interval, None, start, limit=1, newest_first=True
            )
            if before.records:
                candles = before.records + candles
                tiers = tuple(dict.fromkeys(before.tiers + tiers))
        return Routed(fill_gaps(candles, width, start)[:limit], tiers)

    def last_trade(self, exchange: str, symbol: str) -> Trade | None:
        routed = self.router.trades(exchange, symbol, None, None, limit=1, newest_first=True)
        return routed.records[0] if routed.records else None

    def stats_24h(self, exchange: str, symbol: str) -> Stats24h | None:
        return self._cached(("24h", exchange, symbol), lambda: self._stats(exchange, symbol))

    def _stats(self, exchange: str, symbol: str) -> Stats24h | None:
        newest = self.router.latest(Series("candles", exchange, symbol, "1m"))
        if newest is None:
            return None
        start = newest - DAY_US
        candles = self.router.candles(exchange, symbol, "1m", start, newest).records
        real = [c for c in candles if c.trade_count]
        if not real:
            return None
        before = self.router.candles(
            exchange, symbol, "1m", None, start, limit=1, newest_first=True
        )
        last_trade = self.last_trade(exchange, symbol)
        return Stats24h(
            exchange=exchange,
            symbol=symbol,
            open_time=start,
            close_time=newest,
            open=real[0].open,
            high=max(c.high for c in real),
            low=min(c.low for c in real),
            last=real[-1].close,
            last_qty=last_trade.qty if last_trade is not None else 0.0,
            prev_close=before.records[0].close if before.records else 0.0,
            volume=sum(c.volume for c in real),
            quote_volume=sum(c.quote_volume for c in real),
            count=sum(c.trade_count for c in real),
            first_id=real[0].first_trade_id,
            last_id=real[-1].last_trade_id,
        )

    def all_stats(self, exchange: str | None = None) -> list[Stats24h]:
        found = [self.stats_24h(ex, sym) for ex, sym in self.symbols(exchange)]
        return [s for s in found if s is not None]
