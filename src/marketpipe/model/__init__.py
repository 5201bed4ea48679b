"""Records, schemas, symbols and errors: the contract every layer shares."""

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import (
    ConfigError,
    FrameError,
    MarketpipeError,
    QueryError,
    SourceError,
    StorageError,
)
from marketpipe.model.records import Alert, Candle, DeadLetter, Position, Quote, Trade

__all__ = [
    "Alert",
    "Candle",
    "CommitBatch",
    "ConfigError",
    "DeadLetter",
    "FrameError",
    "MarketpipeError",
    "Position",
    "QueryError",
    "Quote",
    "SourceError",
    "StorageError",
    "Trade",
]
