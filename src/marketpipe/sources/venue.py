"""What a venue declares, so one generic connector can run it (`sources/connector.py`).

A venue's own code is its `VenueSpec`: endpoints and limits (its settings), how its symbols
are spelt, which connections carry which subscriptions, how a frame becomes records, and,
for venues whose trade ids are consecutive, how REST pages history by id. Connecting,
reading, heartbeats, reconnects with backoff, the watchdog and gap back-fill are the
connector's and supervisor's, the same for every venue.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from marketpipe.model.records import Quote, Trade
from marketpipe.model.symbols import normalize
from marketpipe.sources.supervisor import ConnectionSettings


class VenueSettings(ConnectionSettings):
    """The settings every venue has; a venue's section extends it with its own limits.

    Endpoints can be overridden like any setting: `MARKETPIPE_<VENUE>__WS_URL`,
    `MARKETPIPE_<VENUE>__REST_URL`.
    """

    enabled: bool = True
    ws_url: str
    rest_url: str
    # The venue's symbols, in its own or our spelling; empty: the venue's defaults.
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_messages_per_second: float = Field(5.0, gt=0)
    rest_timeout_s: float = Field(10.0, gt=0)
    backfill_page_size: int = Field(1000, ge=1)

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):  # `MARKETPIPE_COINBASE__SYMBOLS=BTC-USD,ETH-USD`
            return [part for part in value.replace(" ", ",").split(",") if part]
        return value

    @field_validator("symbols")
    @classmethod
    def _normalize_symbols(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(normalize(symbol) for symbol in value))


class Control(msgspec.Struct, frozen=True):
    """A frame that is not market data: a reply, an error, a heartbeat, or a shutdown notice."""

    kind: Literal["result", "error", "server_shutdown", "heartbeat", "other"]
    body: dict[str, object]


Parsed = Trade | Quote | Control


@dataclass(frozen=True, slots=True)
class Subscription:
    """One connection's worth of subscriptions."""

    name: str
    url: str
    symbols: tuple[str, ...]  # normalized symbols whose trades this connection carries
    messages: tuple[str, ...] = ()  # sent, paced, right after connecting


# Query parameters that carry a credential (Finnhub's `?token=`): never logged or stored.
SECRET_PARAMS = frozenset({"token", "apikey", "api_key", "key", "secret", "signature"})


def redact_url(url: str) -> str:
    """`url` with the values of credential parameters replaced by `***`, for logs, health and
    dead letters (`wss://ws.finnhub.io?token=abc` -> `wss://ws.finnhub.io?token=***`)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (name, "***" if name.lower() in SECRET_PARAMS else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="/,@*")))


class TradeHistory(Protocol):
    """The one thing gap back-fill needs from a venue's REST API."""

    async def trades_from(self, symbol: str, from_id: int, limit: int) -> list[Trade]:
        """`symbol`'s trades with ids from `from_id` on, oldest first, at most `limit`
        (fewer means the present was reached). Raises SourceError when the venue fails."""
        ...


class VenueSpec(ABC):
    """One venue, as the generic connector runs it. One instance per run: `prepare` may
    learn things (a symbol map) that `plan` and `parse` then use."""

    name: ClassVar[str]  # lowercase: the `exchange` of every record
    # Consecutive trade ids per symbol: gaps are found by id and filled over REST.
    has_trade_ids: ClassVar[bool]

    def __init__(self, settings: VenueSettings) -> None:
        self.settings = settings

    async def prepare(self, symbols: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """Before the first connection (e.g. Binance loads exchangeInfo). Must not raise for
        an unreachable venue: it falls back and logs."""

    @abstractmethod
    def plan(self, symbols: Sequence[str]) -> list[Subscription]:
        """Which connection subscribes to what, for normalized `symbols`."""

    @abstractmethod
    def parse(self, raw: bytes, recv_us: int) -> Sequence[Parsed]:
        """Records in one frame (some venues batch several trades). Raises FrameError for a
        frame that is not valid; the connector dead-letters it."""

    def history(self) -> TradeHistory | None:
        """The REST client back-fill pages with; None for venues without trade ids."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what `prepare` or `history` opened."""
