"""Binance spot stream frames, byte for byte, and the `<recv_ns> <json>` recording format.

Frames are formatted by hand rather than through a JSON encoder: it is faster, and it
keeps Binance's exact key order and fixed 8-decimal strings.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from marketpipe.model.symbols import to_native
from marketpipe.simulator.columns import UNITS, TradeColumns, format_units


def stream_name(native: str, kind: str) -> str:
    """`BTCUSDT`, `trade` -> `btcusdt@trade` (stream names are lowercase)."""
    return f"{native.lower()}@{kind}"


def trade_payload(
    native: str, trade_id: int, price_units: int, qty_units: int, t_ms: int, e_ms: int, maker: bool
) -> bytes:
    """A `<symbol>@trade` payload exactly as Binance spot prints it."""
    return (
        f'{{"e":"trade","E":{e_ms},"s":"{native}","t":{trade_id},'
        f'"p":"{price_units // UNITS}.{price_units % UNITS:08d}",'
        f'"q":"{qty_units // UNITS}.{qty_units % UNITS:08d}",'
        f'"T":{t_ms},"m":{"true" if maker else "false"},"M":true}}'
    ).encode()


def book_ticker_payload(
    native: str, update_id: int, bid: int, bid_qty: int, ask: int, ask_qty: int
) -> bytes:
    """A spot `<symbol>@bookTicker` payload (spot carries no event time)."""
    return (
        f'{{"u":{update_id},"s":"{native}","b":"{format_units(bid)}","B":"{format_units(bid_qty)}",'
        f'"a":"{format_units(ask)}","A":"{format_units(ask_qty)}"}}'
    ).encode()


def combined(stream: bytes, payload: bytes) -> bytes:
    """Wrap a raw payload the way `/stream?streams=` delivers it."""
    return b'{"stream":"' + stream + b'","data":' + payload + b"}"


def server_shutdown_payload(e_ms: int) -> bytes:
    return f'{{"e":"serverShutdown","E":{e_ms}}}'.encode()


def iter_trade_lines(
    columns: TradeColumns, seed: int = 0, latency_us: tuple[int, int] = (300, 3000)
) -> Iterator[bytes]:
    """Recording lines `<recv_ns> <combined frame>\\n` of `columns`, in their order.

    `E` trails `T` by 0–1 ms and receipt trails `E` by a random latency, as in real captures.
    """
    rng = np.random.default_rng(seed)
    n = len(columns)
    t_ms = columns.ts_us // 1000
    e_ms = t_ms + rng.integers(0, 2, size=n)
    recv_ns = e_ms * 1_000_000 + rng.integers(latency_us[0], latency_us[1], size=n) * 1000
    natives = [to_native(s) for s in columns.symbols]
    streams = [stream_name(s, "trade") for s in natives]
    for s, t, p, q, tm, em, m, r in zip(
        columns.symbol_idx.tolist(),
        columns.trade_id.tolist(),
        columns.price_units.tolist(),
        columns.qty_units.tolist(),
        t_ms.tolist(),
        e_ms.tolist(),
        columns.buyer_maker.tolist(),
        recv_ns.tolist(),
        strict=True,
    ):
        yield (
            f'{r} {{"stream":"{streams[s]}","data":{{"e":"trade","E":{em},"s":"{natives[s]}",'
            f'"t":{t},"p":"{p // UNITS}.{p % UNITS:08d}","q":"{q // UNITS}.{q % UNITS:08d}",'
            f'"T":{tm},"m":{"true" if m else "false"},"M":true}}}}\n'
        ).encode()


def write_trade_frames(
    columns: TradeColumns, path: str | Path, seed: int = 0, gzipped: bool | None = None
) -> int:
    """Write `columns` as recorded Binance combined-stream trade frames; returns bytes written.

    Gzip is used when `gzipped` is true, or when it is None and the path ends in `.gz`.
    """
    target = Path(path)
    use_gzip = target.suffix == ".gz" if gzipped is None else gzipped
    written = 0
    batch: list[bytes] = []
    with gzip.open(target, "wb", compresslevel=5) if use_gzip else target.open("wb") as out:
        for line in iter_trade_lines(columns, seed):
            batch.append(line)
            if len(batch) >= 65536:
                chunk = b"".join(batch)
                out.write(chunk)
                written += len(chunk)
                batch.clear()
        chunk = b"".join(batch)
        out.write(chunk)
        written += len(chunk)
    return written
