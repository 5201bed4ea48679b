"""The records every layer exchanges (DESIGN.md, "Records").

Timestamps are UTC microseconds since the epoch. Prices and quantities are float64.
`symbol` is normalized `BASE-QUOTE`; `exchange` is lowercase.
"""

from typing import Literal

import msgspec

from marketpipe.model.venues import has_sequential_ids

Side = Literal["buy", "sell"]
AlertKind = Literal["whale_trade", "volume_spike", "price_spike", "venue_divergence"]
Severity = Literal["info", "warning", "critical"]


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One exchange trade. `side` is the taker's side (Binance `m=true` means taker sell)."""

    exchange: str
    symbol: str
    trade_id: int
    price: float
    qty: float
    side: Side
    ts_event: int
    ts_recv: int


class Quote(msgspec.Struct, frozen=True, gc=False):
    """Best bid and ask (Binance bookTicker)."""

    exchange: str
    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    ts_event: int
    ts_recv: int


class Candle(msgspec.Struct, frozen=True, gc=False):
    """An OHLCV candle of window `[open_time, close_time)`; `revision` counts re-publications
    after the window went final."""

    exchange: str
    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trade_count: int
    taker_buy_volume: float
    taker_buy_quote_volume: float
    vwap: float
    first_trade_id: int
    last_trade_id: int
    is_final: bool
    revision: int


class Alert(msgspec.Struct, frozen=True, gc=False):
    """A fired alert rule. `alert_id` is a deterministic hash of kind + key, so replays never
    duplicate one."""

    alert_id: str
    kind: AlertKind
    severity: Severity
    exchange: str
    symbol: str
    ts: int
    value: float
    threshold: float
    details: str  # JSON object


class MarketSnapshot(msgspec.Struct, frozen=True, gc=False):
    """One coin's market data from an aggregator (CoinGecko `/coins/markets`), not a trade.

    `asset` is the coin's ticker in upper case (`BTC`), `vs_currency` the quote it is priced
    in (`USD`). Aggregators leave some figures unknown (`null`): they stay None, never 0.
    `ts_source` is the source's `last_updated`, the snapshot's event time.
    """

    source: str
    asset: str
    vs_currency: str
    price: float
    market_cap: float | None
    fully_diluted_valuation: float | None
    volume_24h: float | None
    circulating_supply: float | None
    market_cap_rank: int | None
    ts_source: int
    ts_recv: int


class DeadLetter(msgspec.Struct, frozen=True):
    """Input that could not be processed, kept with why and where it came from."""

    ts: int
    source: str
    error: str
    raw: bytes
    context: str


class Position(msgspec.Struct, frozen=True):
    """Where a source stands on one symbol: the trade ids seen so far, as closed ranges.

    Ranges make dedup, gap detection and completeness one structure: a hole between two
    ranges is a gap; completeness is covered ids over the span.
    """

    exchange: str
    symbol: str
    last_trade_id: int
    max_ts_event: int
    id_ranges: list[tuple[int, int]]
    gaps_found: int
    gaps_filled: int
    trades_seen: int
    duplicates: int

    @property
    def completeness(self) -> float | None:
        """Covered ids over the span; None where ids are keys (completeness not provable)."""
        if not has_sequential_ids(self.exchange, self.last_trade_id):
            return None
        if not self.id_ranges:
            return 1.0
        span = self.id_ranges[-1][1] - self.id_ranges[0][0] + 1
        covered = sum(hi - lo + 1 for lo, hi in self.id_ranges)
        return covered / span

    @property
    def missing_ids(self) -> int:
        if not self.id_ranges:
            return 0
        span = self.id_ranges[-1][1] - self.id_ranges[0][0] + 1
        return span - sum(hi - lo + 1 for lo, hi in self.id_ranges)
