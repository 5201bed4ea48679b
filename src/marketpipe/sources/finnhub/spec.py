"""Finnhub stock trades as a venue spec: one connection (free tier), a subscribe message per
ticker, trade batches keyed without ids (see frames.py), and no back-fill.

The token travels in the URL (`wss://ws.finnhub.io?token=...`), as Finnhub requires. It is
kept out of each `Subscription.name` (what the supervisor and connector log); the URL itself
is the connector's to keep out of logs and dead letters.
"""

import json
from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import quote

from marketpipe.model.errors import ConfigError
from marketpipe.sources.finnhub.frames import TradeKeys, parse_frame
from marketpipe.sources.finnhub.settings import FinnhubSettings
from marketpipe.sources.finnhub.symbols import to_symbol, to_ticker
from marketpipe.sources.venue import Parsed, Subscription, VenueSpec


def subscribe_message(ticker: str, kind: str = "subscribe") -> str:
    return json.dumps({"type": kind, "symbol": ticker}, separators=(",", ":"))


def with_token(ws_url: str, token: str) -> str:
    separator = "&" if "?" in ws_url else "?"
    return f"{ws_url}{separator}token={quote(token, safe='')}"


class FinnhubSpec(VenueSpec):
    name: ClassVar[str] = "finnhub"
    has_trade_ids: ClassVar[bool] = False  # trades carry no id: keys, not a sequence
    settings: FinnhubSettings

    def __init__(self, settings: FinnhubSettings) -> None:
        super().__init__(settings)
        self.keys = TradeKeys(settings.duplicate_window_frames, settings.ordinal_window_ms)

    def plan(self, symbols: Sequence[str]) -> list[Subscription]:
        settings = self.settings
        if not settings.has_token:
            raise ConfigError("finnhub needs an API token: set MARKETPIPE_FINNHUB__TOKEN")
        ours = list(dict.fromkeys(to_symbol(s) for s in symbols))
        size = settings.symbols_per_connection
        if len(ours) > size * settings.max_connections:
            raise ConfigError(
                f"finnhub: {len(ours)} symbols exceed {settings.max_connections} "
                f"connection(s) of {size} symbols (symbols_per_connection, max_connections)"
            )
        url = with_token(settings.ws_url, settings.token.get_secret_value())
        subscriptions: list[Subscription] = []
        for n, i in enumerate(range(0, len(ours), size)):
            chunk = tuple(ours[i : i + size])
            messages = tuple(subscribe_message(to_ticker(s)) for s in chunk)
            subscriptions.append(Subscription(f"finnhub-ws-{n}", url, chunk, messages))
        return subscriptions

    def parse(self, raw: bytes, recv_us: int) -> Sequence[Parsed]:
        return parse_frame(raw, recv_us, self.keys)
