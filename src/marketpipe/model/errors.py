"""One error hierarchy for the whole package, rooted at MarketpipeError."""


class MarketpipeError(Exception):
    """Root of every error marketpipe raises on purpose."""


class ConfigError(MarketpipeError):
    """The configuration is invalid; the message says which field and what to change."""


class FrameError(MarketpipeError):
    """An exchange frame could not be parsed into a record. It is dead-lettered, never fatal."""


class SourceError(MarketpipeError):
    """A source failed in a way its supervisor cannot recover from by reconnecting."""


class StorageError(MarketpipeError):
    """A storage tier refused a read or a write."""


class FencedOut(MarketpipeError):
    """A warehouse refused a commit: another consumer claimed one of its partitions since
    (a rebalance this one missed, e.g. after a pause past its session timeout). Not a
    StorageError, so it is never retried: the batch belongs to the new owner now."""


class QueryError(MarketpipeError):
    """A query's parameters are invalid; the message says which and why."""
