"""User-given instants (API parameters, CLI options) as the records' µs since the epoch."""

from datetime import UTC, datetime

# 9999-12-31T23:59:59.999999Z: the last instant every store (DuckDB, PostgreSQL, Parquet) holds.
MAX_US = 253_402_300_799_999_999
MAX_MS = MAX_US // 1000


def parse_time(text: str, *, epoch_ms: bool = True) -> int:
    """ISO-8601 (naive means UTC) or, with `epoch_ms`, integer epoch milliseconds, to µs.

    ValueError, with a message fit for the user, for anything else or out of range."""
    text = text.strip()
    if epoch_ms and text.isascii() and text.isdigit():
        ms = int(text)
        if ms > MAX_MS:
            raise ValueError(f"{text} is past year 9999 in epoch milliseconds")
        return ms * 1000
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        hint = " or epoch milliseconds" if epoch_ms else ""
        raise ValueError(f"{text!r} is not ISO-8601 (2024-08-09T00:00:00Z){hint}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)
