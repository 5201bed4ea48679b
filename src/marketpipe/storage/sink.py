"""The seam between a pipeline and where it commits: a batch sink.

A pipeline commits each micro-batch to a sink in one atomic step and, on a restart, rebuilds
its engine from what the sink holds: stored positions (id ledgers, watermarks) and the open
windows that may still change. The embedded store (DuckDB + lake + memory), the cluster's
PostgreSQL warehouse and the in-memory sink of `memory_sink.py` all are sinks.
"""

from typing import Protocol

from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Candle, Position


class StateSource(Protocol):
    """What a restarting engine is restored from."""

    def positions(self) -> list[Position]:
        """Every symbol's stored position, ordered by (exchange, symbol)."""
        ...

    def open_windows(self, min_close_time: int) -> list[tuple[Candle, int, int]]:
        """Stored candles closing after `min_close_time`, each with the event times of its
        first and last trades (the order keys the candle monoid needs)."""
        ...


class BatchSink(StateSource, Protocol):
    """Where a pipeline commits: all of a batch lands, or none of it."""

    def commit(self, batch: CommitBatch) -> object: ...
