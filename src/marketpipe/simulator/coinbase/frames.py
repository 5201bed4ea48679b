"""Coinbase Exchange ws-feed messages, byte for byte as the real feed prints them.

Key order and number formats follow the recorded frames (`tests/data/` provenance):
prices and sizes are decimal strings in the product's increments (`"0.7912"`, `"985"`),
times ISO-8601 with microseconds and `Z`. In `match`, `side` is the MAKER's side ("sell"
means the taker bought); in `ticker` it is the taker's.
"""

from __future__ import annotations

import msgspec

from marketpipe.simulator.formats import fixed, iso_us, mix64

_encoder = msgspec.json.Encoder()


def order_id(salt: int, trade_id: int, taker: bool) -> str:
    """A deterministic UUID (version 4 layout) for the maker or taker order of a trade."""
    hi = mix64(salt ^ (trade_id << 1) ^ int(taker))
    lo = mix64(hi)
    h = f"{hi:016x}{lo:016x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[lo & 3]}{h[17:20]}-{h[20:32]}"


def match(
    kind: str,
    product: str,
    trade_id: int,
    maker_side: str,
    size: str,
    price: str,
    sequence: int,
    ts_us: int,
    salt: int,
) -> bytes:
    """A `match` (or `last_match`) message."""
    return (
        f'{{"type":"{kind}","trade_id":{trade_id},'
        f'"maker_order_id":"{order_id(salt, trade_id, False)}",'
        f'"taker_order_id":"{order_id(salt, trade_id, True)}",'
        f'"side":"{maker_side}","size":"{size}","price":"{price}","product_id":"{product}",'
        f'"sequence":{sequence},"time":"{iso_us(ts_us)}"}}'
    ).encode()


def ticker(
    product: str,
    sequence: int,
    price: str,
    stats: tuple[str, str, str, str],
    book: tuple[str, str, str, str],
    taker_side: str,
    ts_us: int,
    trade_id: int,
    last_size: str,
) -> bytes:
    """A `ticker` message. `stats`: open, volume, low, high (24 h); `book`: best bid, its
    size, best ask, its size."""
    open_24h, volume, low, high = stats
    bid, bid_size, ask, ask_size = book
    return (
        f'{{"type":"ticker","sequence":{sequence},"product_id":"{product}","price":"{price}",'
        f'"open_24h":"{open_24h}","volume_24h":"{volume}","low_24h":"{low}",'
        f'"high_24h":"{high}","volume_30d":"{volume}","best_bid":"{bid}",'
        f'"best_bid_size":"{bid_size}","best_ask":"{ask}","best_ask_size":"{ask_size}",'
        f'"side":"{taker_side}","time":"{iso_us(ts_us)}","trade_id":{trade_id},'
        f'"last_size":"{last_size}"}}'
    ).encode()


def heartbeat(product: str, sequence: int, last_trade_id: int, ts_us: int) -> bytes:
    return (
        f'{{"type":"heartbeat","last_trade_id":{last_trade_id},"product_id":"{product}",'
        f'"sequence":{sequence},"time":"{iso_us(ts_us)}"}}'
    ).encode()


def subscriptions(channels: dict[str, list[str]]) -> bytes:
    body = {
        "type": "subscriptions",
        "channels": [{"name": name, "product_ids": ids} for name, ids in channels.items()],
    }
    return _encoder.encode(body)


def error(message: str, reason: str) -> bytes:
    return _encoder.encode({"type": "error", "message": message, "reason": reason})


def volume_text(units: int) -> str:
    """24 h volumes print 8 decimals (`"94381.28000000"`)."""
    return fixed(units, 8)
