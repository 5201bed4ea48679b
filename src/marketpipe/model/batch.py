"""The unit of work between processing and storage: everything one micro-batch commits."""

from dataclasses import dataclass, field

import pyarrow as pa

from marketpipe.model.records import Alert, Candle, DeadLetter, Position, Quote
from marketpipe.model.schemas import TRADE_SCHEMA


@dataclass(slots=True)
class CommitBatch:
    """Committed by a sink in one transaction: all of it lands, or none of it.

    `trades` are new (deduplicated) raw trades, late ones included; `late_trades` are those
    of them too late to merge into a candle. `candles` are full values with replace semantics.
    """

    trades: pa.Table = field(default_factory=TRADE_SCHEMA.empty_table)
    late_trades: pa.Table = field(default_factory=TRADE_SCHEMA.empty_table)
    candles: list[Candle] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
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
        )
