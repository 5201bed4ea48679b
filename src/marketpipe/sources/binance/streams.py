"""Which streams go on which connection, and how each connection asks for them.

Binance spot allows at most 1024 streams per connection, so the streams are split into shards
of at most `max_streams_per_connection`. A shard's streams go in the combined-stream URL
(`/stream?streams=a/b/c`) while that URL stays short; longer lists connect to bare `/stream`
and send SUBSCRIBE messages instead (paced by the caller, since Binance allows 5 incoming
messages a second), because very long URLs are refused by proxies and servers.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from marketpipe.model.symbols import SymbolMap

MAX_URL_CHARS: Final = 2000
STREAMS_PER_SUBSCRIBE: Final = 100
CHANNELS: Final = ("trade", "bookTicker")


@dataclass(frozen=True, slots=True)
class Shard:
    """One connection's worth of streams."""

    name: str
    url: str
    streams: tuple[str, ...]
    symbols: tuple[str, ...]  # normalized symbols whose @trade stream is on this shard
    subscribe_messages: tuple[str, ...]


def stream_names(native: str) -> list[str]:
    lower = native.lower()
    return [f"{lower}@{channel}" for channel in CHANNELS]


def subscribe_messages(streams: Sequence[str], first_id: int = 1) -> list[str]:
    """SUBSCRIBE requests for `streams`, `STREAMS_PER_SUBSCRIBE` names each."""
    return [
        json.dumps(
            {
                "method": "SUBSCRIBE",
                "params": list(streams[i : i + STREAMS_PER_SUBSCRIBE]),
                "id": first_id + n,
            },
            separators=(",", ":"),
        )
        for n, i in enumerate(range(0, len(streams), STREAMS_PER_SUBSCRIBE))
    ]


def plan_shards(
    ws_url: str,
    symbols: Sequence[str],
    symbol_map: SymbolMap,
    max_streams_per_connection: int,
    max_url_chars: int = MAX_URL_CHARS,
) -> list[Shard]:
    """Split the streams of `symbols` (normalized) into shards, in order."""
    base = ws_url.rstrip("/")
    pairs: list[tuple[str, str]] = []  # (stream, normalized symbol)
    for symbol in symbols:
        for stream in stream_names(symbol_map.native(symbol)):
            pairs.append((stream, symbol))
    shards: list[Shard] = []
    size = max(1, max_streams_per_connection)
    for n, i in enumerate(range(0, len(pairs), size)):
        chunk = pairs[i : i + size]
        streams = tuple(stream for stream, _ in chunk)
        traded = tuple(dict.fromkeys(sym for stream, sym in chunk if stream.endswith("@trade")))
        url = f"{base}/stream?streams={'/'.join(streams)}"
        messages: tuple[str, ...] = ()
        if len(url) > max_url_chars:
            url = f"{base}/stream"
            messages = tuple(subscribe_messages(streams))
        shards.append(Shard(f"binance-ws-{n}", url, streams, traded, messages))
    return shards
