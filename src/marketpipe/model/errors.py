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


class QueryError(MarketpipeError):
    """A query's parameters are invalid; the message says which and why."""
