"""The unit of work between processing and storage: everything one micro-batch commits."""

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from marketpipe.model.records import Alert, Candle, DeadLetter, MarketSnapshot, Position, Quote
from marketpipe.model.schemas import TRADE_SCHEMA


@dataclass(slots=True)
class CommitBatch:
    """Committed by a sink in one transaction: all of it lands, or none of it.

    `trades` are new (deduplicated) raw trades, late ones included; `late_trades` are those
    of them too late to merge into a candle. `candles` are full values with replace semantics.
    `snapshots` are market data (CoinGecko), a time series stored insert-or-ignore by
    `(source, asset, vs_currency, ts_source)`.
    """

    trades: pa.Table = field(default_factory=TRADE_SCHEMA.empty_table)
    late_trades: pa.Table = field(default_factory=TRADE_SCHEMA.empty_table)
    candles: list[Candle] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    snapshots: list[MarketSnapshot] = field(default_factory=list)
    duplicates: int = 0

    @property
    def is_empty(self) -> bool:
        return not (
            self.trades.num_rows
            or self.candles
            or self.alerts
            or self.quotes
            or self.positions
            or self.dead_letters
            or self.snapshots
        )


def merge_batches(batches: Sequence[CommitBatch]) -> CommitBatch:
    """Several consecutive batches as one, with the same effect when committed: candles,
    quotes and positions keep their latest value per key, an alert and a snapshot their first."""
    if len(batches) == 1:
        return batches[0]
    candles = {
        (c.exchange, c.symbol, c.interval, c.open_time): c for b in batches for c in b.candles
    }
    alerts: dict[str, Alert] = {}
    for b in batches:
        for a in b.alerts:
            alerts.setdefault(a.alert_id, a)
    quotes = {(q.exchange, q.symbol): q for b in batches for q in b.quotes}
    positions = {(p.exchange, p.symbol): p for b in batches for p in b.positions}
    snapshots: dict[tuple[str, str, str, int], MarketSnapshot] = {}
    for b in batches:
        for s in b.snapshots:
            snapshots.setdefault((s.source, s.asset, s.vs_currency, s.ts_source), s)
    return CommitBatch(
        trades=pa.concat_tables([b.trades for b in batches]),
        late_trades=pa.concat_tables([b.late_trades for b in batches]),
        candles=list(candles.values()),
        alerts=list(alerts.values()),
        quotes=list(quotes.values()),
        positions=list(positions.values()),
        dead_letters=[d for b in batches for d in b.dead_letters],
        snapshots=list(snapshots.values()),
        duplicates=sum(b.duplicates for b in batches),
    )
