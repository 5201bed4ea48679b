"""Kraken WebSocket v2 messages as the real server prints them.

Prices and quantities are JSON numbers; times RFC 3339 with microseconds. In `trade` data,
`side` is the TAKER's side and `trade_id` is sequential per pair; one message carries the
fills of one taker order (the trades of a pair at one instant).
"""

from __future__ import annotations

import msgspec

from marketpipe.simulator.formats import iso_us, number

_encoder = msgspec.json.Encoder()


def trade_item(
    symbol: str, taker_side: str, price: int, qty: int, ord_type: str, trade_id: int, ts_us: int
) -> str:
    return (
        f'{{"symbol":"{symbol}","side":"{taker_side}","price":{number(price)},'
        f'"qty":{number(qty)},"ord_type":"{ord_type}","trade_id":{trade_id},'
        f'"timestamp":"{iso_us(ts_us)}"}}'
    )


def trade_message(kind: str, items: list[str]) -> bytes:
    return f'{{"channel":"trade","type":"{kind}","data":[{",".join(items)}]}}'.encode()


def ticker_message(
    kind: str,
    symbol: str,
    book: tuple[int, int, int, int],
    last: int,
    stats: tuple[int, int, int, int, int],
    ts_us: int,
) -> bytes:
    """`book`: bid, bid_qty, ask, ask_qty; `stats`: volume, vwap, low, high, open (units)."""
    bid, bid_qty, ask, ask_qty = book
    volume, vwap, low, high, open_ = stats
    change = last - open_
    change_pct = round(change / open_ * 100, 2) if open_ else 0.0
    sign = "-" if change < 0 else ""
    return (
        f'{{"channel":"ticker","type":"{kind}","data":[{{"symbol":"{symbol}",'
        f'"bid":{number(bid)},"bid_qty":{number(bid_qty)},"ask":{number(ask)},'
        f'"ask_qty":{number(ask_qty)},"last":{number(last)},"volume":{number(volume)},'
        f'"vwap":{number(vwap)},"low":{number(low)},"high":{number(high)},'
        f'"change":{sign}{number(abs(change))},"change_pct":{change_pct},'
        f'"timestamp":"{iso_us(ts_us)}"}}]}}'
    ).encode()


HEARTBEAT = b'{"channel":"heartbeat"}'


def status(connection_id: int, system: str = "online") -> bytes:
    """A `status` update: `online` on connect, `maintenance` before a maintenance close."""
    return _encoder.encode(
        {
            "channel": "status",
            "type": "update",
            "data": [
                {
                    "version": "2.0.10",
                    "system": system,
                    "api_version": "v2",
                    "connection_id": connection_id,
                }
            ],
        }
    )


def method_reply(
    method: str,
    req_id: object,
    time_in_us: int,
    time_out_us: int,
    result: dict[str, object] | None = None,
    error: str | None = None,
) -> bytes:
    body: dict[str, object] = {"method": method}
    if error is None:
        if result is not None:
            body["result"] = result
        body["success"] = True
    else:
        body["error"] = error
        body["success"] = False
    body["time_in"] = iso_us(time_in_us)
    body["time_out"] = iso_us(time_out_us)
    if req_id is not None:
        body["req_id"] = req_id
    return _encoder.encode(body)
